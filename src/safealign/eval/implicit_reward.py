"""DPO's implicit reward on held-out preference pairs: does the trained policy prefer the chosen response?

    r(x, y) = β · (log π(y|x) − log π_ref(y|x))        (Rafailov et al., 2023)

A test pair counts as correct when r(x, y_chosen) > r(x, y_rejected). π is the run's merged model and π_ref
the policy it started from (the base for dpo, the sft model for sft_dpo: `model` in the run's config);
prompts and responses are cut exactly as in training. Log-probabilities are summed over response tokens.
"""

from __future__ import annotations

from pathlib import Path

from safealign import losses
from safealign.arms.common import MODEL_DIR, load_split, pad_batch, read_run
from safealign.arms.dpo import DPOArmConfig
from safealign.arms.sft_dpo import SFTDPOConfig
from safealign.eval.stats import rate
from safealign.generate import response_text, trim_context
from safealign.models import load_for_inference, resolve, tokenizer_options


def response_logprobs(model, tokenizer, prompts: list[list[dict]], responses: list[str], batch_size: int = 8):
    """log π(response | prompt) summed over the response's tokens, one per (prompt, response)."""
    import torch

    rows = []
    for messages, response in zip(prompts, responses):
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}],
                                             tokenize=True, return_dict=True)["input_ids"]
        rows.append((full, len(prompt)))
    out = [0.0] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            index = order[start: start + batch_size]
            ids, mask = pad_batch([rows[i][0] for i in index], pad)  # (B, T), right-padded
            ids, mask = ids.to(model.device), mask.to(model.device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
            token_logp = losses.token_logprobs(logits, ids[:, 1:])  # (B, T-1)
            for row, i in enumerate(index):
                full, prompt_length = rows[i]
                out[i] = float(token_logp[row, prompt_length - 1: len(full) - 1].sum())  # the response's tokens
    return out


def implicit_reward_accuracy(run_dir: str | Path, data: str | Path, pairs: int, batch_size: int = 8) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = Path(run_dir)
    arm, _ = read_run(run_dir)
    _, cfg = read_run(run_dir, {"dpo": DPOArmConfig, "sft_dpo": SFTDPOConfig}[arm])
    tokenizer = AutoTokenizer.from_pretrained(run_dir / MODEL_DIR, **tokenizer_options())
    test = load_split(Path(data), "test")[:pairs]
    prompts = [trim_context(tokenizer, pair.context, cfg.max_prompt_tokens) for pair, _ in test]
    chosen = [response_text(tokenizer, pair.chosen, cfg.max_response_tokens) for pair, _ in test]
    rejected = [response_text(tokenizer, pair.rejected, cfg.max_response_tokens) for pair, _ in test]
    logps = {}
    for role, folder in (("policy", run_dir / MODEL_DIR), ("reference", resolve(cfg.model))):
        model = load_for_inference(AutoModelForCausalLM, folder)
        logps[role] = response_logprobs(model, tokenizer, prompts + prompts, chosen + rejected, batch_size)
        del model
    n = len(test)
    import torch

    policy, reference = torch.tensor(logps["policy"]), torch.tensor(logps["reference"])
    margins = losses.dpo_margin(policy[:n], policy[n:], reference[:n], reference[n:], cfg.beta).tolist()
    return {"pairs": n, "beta": cfg.beta, "reference": cfg.model,
            "pairwise_accuracy": rate(sum(m > 0 for m in margins), n).to_dict(),
            "mean_margin": round(sum(margins) / n, 5) if n else None}

