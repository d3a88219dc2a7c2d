"""Greedy generation for evaluation: chat template, batches sorted by length, left padding.

`generate_batched` is what eval uses; `generate_one_by_one` is the naive loop it is benchmarked against
(benchmarks/bench_generate.py checks both give the same text); `generate_vllm` runs the same prompt ids
through vLLM (optional extra, a CUDA GPU) with temperature 0 and decodes the new tokens the same way.

Ragged prefill (`prefill="ragged"`, the default where the model's cache allows it): a left-padded batch
runs every prompt at the batch's longest length, so the prefill pays for the padding too, and prefill is most
of the compute when answers are short. Instead each prompt but its last token goes through the model alone
(no padding; the prompts' shared opening, the chat template's system turn, once for the batch), the key and
value caches are left-padded into one batch, and `generate` decodes the whole batch from there: the
attention mask hides the padded cache slots and positions come from the mask, as in a padded batch.
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


def _common_prefix(sequences: list[list[int]]) -> int:
    first, n = sequences[0], min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != first[i] for s in sequences):
            return i
    return n


def ragged_prefill(model, sequences: list[list[int]], device):
    """The key/value cache of every sequence but its last token, each computed without padding, left-padded
    into one batch: a DynamicCache of width max(len) - 1. None where the model's cache is not made of plain
    DynamicLayers (sliding-window or recurrent layers): the caller then pads the batch instead."""
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    def plain(cache) -> bool:
        return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)

    if min(len(s) for s in sequences) < 2:
        return None
    shared = min(_common_prefix(sequences), min(len(s) for s in sequences) - 2)  # leave >= 1 token to each row
    prefix = []
    with torch.no_grad():
        if shared > 0:
            cache = model(input_ids=torch.tensor([sequences[0][:shared]], device=device), use_cache=True).past_key_values
            if not plain(cache):
                return None
            prefix = [(layer.keys, layer.values) for layer in cache.layers]
        rows = []
        for seq in sequences:
            cache = DynamicCache(ddp_cache_data=prefix) if prefix else None  # update() concatenates: prefix kept
            out = model(input_ids=torch.tensor([seq[shared:-1]], device=device), past_key_values=cache,
                        use_cache=True, position_ids=torch.arange(shared, len(seq) - 1, device=device)[None])
            if not plain(out.past_key_values):
                return None
            rows.append([(layer.keys, layer.values) for layer in out.past_key_values.layers])
    width = max(len(s) for s in sequences) - 1
    layers = []
    for layer in range(len(rows[0])):
        keys = torch.cat([F.pad(row[layer][0], (0, 0, width - row[layer][0].shape[-2], 0)) for row in rows])
        values = torch.cat([F.pad(row[layer][1], (0, 0, width - row[layer][1].shape[-2], 0)) for row in rows])
        layers.append((keys, values))
    return DynamicCache(ddp_cache_data=layers)


def generate_batched(model, tokenizer, prompts: list[Prompt], max_new_tokens: int = 50, batch_size: int = 16,
                     max_prompt_tokens: int = 384, description: str = "generating",
                     prefill: str = "ragged") -> list[str]:
    """Greedy responses, one per prompt, in the prompts' order. prefill: "ragged" (each prompt's cache
    computed without padding; see the module's doc) or "padded" (one left-padded forward pass per batch)."""
    import torch

    if prefill not in ("ragged", "padded"):
        raise ValueError(f"prefill must be 'ragged' or 'padded', not {prefill!r}")
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
            sequences = [encoded[i] for i in index]
            ids, mask = _left_pad(sequences, pad_id)  # (B, T)
            cache = ragged_prefill(model, sequences, device) if prefill == "ragged" else None
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad_id, past_key_values=cache)
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
