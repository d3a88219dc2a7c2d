"""Greedy generation for evaluation: chat template, batches sorted by length, left padding.

`generate_batched` is what eval uses; `generate_one_by_one` is the naive loop it is benchmarked against
(benchmarks/bench_generate.py checks both give the same text); `generate_vllm` runs the same prompt ids
through vLLM (optional extra, a CUDA GPU) with temperature 0 and decodes the new tokens the same way.
"""

from __future__ import annotations

from safealign.data.prompts import Prompt
from safealign.progress import track


def prompt_ids(tokenizer, prompt: Prompt, max_prompt_tokens: int) -> list[int]:
    """The chat-templated prompt, ending with the assistant's turn opener; cut from the left if too long."""
    ids = tokenizer.apply_chat_template(list(prompt.messages), add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]
    return ids[-max_prompt_tokens:]


def _left_pad(sequences: list[list[int]], pad_id: int):
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask


def generate_batched(model, tokenizer, prompts: list[Prompt], max_new_tokens: int = 50, batch_size: int = 16,
                     max_prompt_tokens: int = 384, description: str = "generating") -> list[str]:
    """Greedy responses, one per prompt, in the prompts' order."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    positions = getattr(model.config, "max_position_embeddings", None) or max_prompt_tokens + max_new_tokens
    max_prompt_tokens = min(max_prompt_tokens, positions - max_new_tokens)
    encoded = [prompt_ids(tokenizer, p, max_prompt_tokens) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    device = next(model.parameters()).device
    responses: list[str | None] = [None] * len(prompts)
    model.eval()
    with torch.no_grad():
        for start in track(range(0, len(order), batch_size), description):
            index = order[start: start + batch_size]
            ids, mask = _left_pad([encoded[i] for i in index], pad_id)  # (B, T)
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad_id)
            for row, i in enumerate(index):
                responses[i] = tokenizer.decode(out[row, ids.shape[1]:], skip_special_tokens=True).strip()
    return responses


def generate_one_by_one(model, tokenizer, prompts: list[Prompt], max_new_tokens: int = 50,
                        max_prompt_tokens: int = 384) -> list[str]:
    """The naive loop: one prompt per generate call, no padding."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    positions = getattr(model.config, "max_position_embeddings", None) or max_prompt_tokens + max_new_tokens
    max_prompt_tokens = min(max_prompt_tokens, positions - max_new_tokens)
    responses = []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt_ids(tokenizer, prompt, max_prompt_tokens)])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad_id)
            responses.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return responses


def generate_vllm(folder: str, tokenizer, prompts: list[Prompt], max_new_tokens: int = 50,
                  max_prompt_tokens: int = 384) -> list[str]:
    """Greedy responses through vLLM, in the prompts' order; the same prompt ids and decoding as generate_batched."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        from safealign.errors import SafeAlignError

        raise SafeAlignError("policy_eval.engine=vllm needs vLLM and a CUDA GPU: pip install 'safealign[vllm]'; "
                             "or use engine=transformers") from None
    from safealign.models import load_options

    llm = LLM(model=folder, tokenizer=folder, seed=0, trust_remote_code=load_options()["trust_remote_code"])
    positions = llm.llm_engine.model_config.max_model_len
    max_prompt_tokens = min(max_prompt_tokens, positions - max_new_tokens)
    requests = [{"prompt_token_ids": prompt_ids(tokenizer, p, max_prompt_tokens)} for p in prompts]
    outputs = llm.generate(requests, SamplingParams(temperature=0.0, max_tokens=max_new_tokens), use_tqdm=False)
    return [tokenizer.decode(list(out.outputs[0].token_ids), skip_special_tokens=True).strip() for out in outputs]
