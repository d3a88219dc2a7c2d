"""Where a policy eval's generation spends its time: prefill against decoding, and each decoding step's operators.

    python benchmarks/profile_generation.py [--audit runs/audit] [--arm sft]

1. The audit profile's policy eval as it runs (generate_batched on the arm's policy in bfloat16, its prompts, batch
   size and lengths): seconds for 1 new token (prefill) and for max_new_tokens.
2. One batch of B random prompts of T tokens, half left-padded by 50 (as a sorted batch is), through
   model.generate: torch.profiler's self CPU time per decoding step by operator (21 new tokens minus 1), so the
   prefill is subtracted out.
Results go to benchmarks/results/generation_profile.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM, AutoTokenizer

from safealign.arms.common import quiet_transformers
from safealign.audit import load_audit_config
from safealign.data.prepare import read_splits
from safealign.data.prompts import build_prompt_sets
from safealign.eval import policy_eval
from safealign.generate import generate_batched, prompt_ids
from safealign.models import tokenizer_options

RESULTS = Path(__file__).parent / "results" / "generation_profile.json"


def eval_generation(folder: str, data: str) -> dict:
    cfg = replace(load_audit_config("offline").policy_eval, data=data)
    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
    prompts = policy_eval.select_prompts(build_prompt_sets(read_splits(cfg.data)), cfg)
    lengths = [len(prompt_ids(tokenizer, p, cfg.max_prompt_tokens)) for p in prompts]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    seconds = {}
    for new in (1, cfg.max_new_tokens):
        start = time.perf_counter()
        generate_batched(model, tokenizer, prompts, new, cfg.batch_size, cfg.max_prompt_tokens)
        seconds[new] = time.perf_counter() - start
    return {"prompts": len(prompts), "prompt_tokens": sum(lengths), "batch_size": cfg.batch_size,
            "max_new_tokens": cfg.max_new_tokens, "prefill_seconds": round(seconds[1], 1),
            "decode_seconds": round(seconds[cfg.max_new_tokens] - seconds[1], 1)}


def decode_step_operators(folder: str, batch: int, tokens: int, top: int = 8) -> dict:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    ids = torch.randint(0, model.config.vocab_size, (batch, tokens))
    mask = torch.ones(batch, tokens, dtype=torch.long)
    mask[: batch // 2, :50] = 0

    def run(new: int):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, pad_token_id=0)
            seconds = time.perf_counter() - start
        return seconds, {e.key: e.self_cpu_time_total for e in prof.key_averages()}

    with torch.no_grad():
        run(2)  # warm-up
        one, base = run(1)
        many, steps = run(21)
    per_step = {name: (us - base.get(name, 0)) / 20 / 1000 for name, us in steps.items()}
    ranked = sorted(per_step.items(), key=lambda kv: -kv[1])[:top]
    return {"batch": batch, "prompt_tokens": tokens, "ms_per_step": round((many - one) / 20 * 1000, 1),
            "operators_ms_per_step": {name: round(ms, 1) for name, ms in ranked},
            "matmul_gflop_per_step": round(batch * 2 * model.num_parameters() / 1e9, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audit", default="runs/audit")
    parser.add_argument("--arm", default="sft")
    args = parser.parse_args()
    quiet_transformers()
    folder = str(Path(args.audit) / args.arm / "model")
    result = {"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": torch.get_num_threads(), "arm": args.arm,
              "policy_eval": eval_generation(folder, str(Path(args.audit) / "data")),
              "decode_step": decode_step_operators(folder, 80, 150)}
    print(json.dumps(result, indent=1))
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
