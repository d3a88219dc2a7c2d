"""Where a policy eval's generation spends its time: prefill against decoding, and each decoding step's operators.

    python benchmarks/profile_generation.py [--audit runs/audit] [--arm sft dpo]

1. The audit profile's policy eval as it runs (generate_batched on the arm's policy in bfloat16, its prompts, batch
   size and lengths): seconds for 1 new token (prefill) and for max_new_tokens; then the same with transformers'
   generate decoding every row to the batch's last step instead of greedy_decode dropping finished rows, and how
   many responses the two give alike.
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
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM, AutoTokenizer

from safealign import generate
from safealign.arms.common import quiet_transformers
from safealign.audit import load_audit_config
from safealign.data.prepare import read_splits
from safealign.data.prompts import build_prompt_sets
from safealign.eval import policy_eval
from safealign.generate import generate_batched, prompt_ids
from safealign.models import tokenizer_options

RESULTS = Path(__file__).parent / "results" / "generation_profile.json"


def eval_generation(folder: str, data: str, repeats: int = 2) -> dict:
    cfg = replace(load_audit_config("offline").policy_eval, data=data)
    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
    prompts = policy_eval.select_prompts(build_prompt_sets(read_splits(cfg.data)), cfg)
    lengths = [len(prompt_ids(tokenizer, p, cfg.max_prompt_tokens)) for p in prompts]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    generate_batched(model, tokenizer, prompts[:4], 2, 4, cfg.max_prompt_tokens)  # warm-up: first calls are slow

    def timed(new: int, decoding: str) -> tuple[float, list[str]]:
        with mock.patch.object(generate, "plain_greedy", generate.plain_greedy if decoding == "greedy_decode"
                               else lambda model: False):  # "generate": transformers' generate decodes
            start = time.perf_counter()
            out = generate_batched(model, tokenizer, prompts, new, cfg.batch_size, cfg.max_prompt_tokens)
            return time.perf_counter() - start, out

    seconds = {1: timed(1, "greedy_decode")[0]}
    runs: dict[str, list[float]] = {"greedy_decode": [], "generate": []}
    responses = {}
    for _ in range(repeats):  # alternating, the faster of each: runs on this machine vary by 10%
        for decoding in runs:
            elapsed, responses[decoding] = timed(cfg.max_new_tokens, decoding)
            runs[decoding].append(round(elapsed, 1))
    seconds[cfg.max_new_tokens], seconds["generate"] = min(runs["greedy_decode"]), min(runs["generate"])
    new_tokens = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses["greedy_decode"]]
    return {"prompts": len(prompts), "prompt_tokens": sum(lengths), "batch_size": cfg.batch_size,
            "max_new_tokens": cfg.max_new_tokens, "mean_response_tokens": round(sum(new_tokens) / len(new_tokens), 1),
            "prefill_seconds": round(seconds[1], 1),
            "decode_seconds": round(seconds[cfg.max_new_tokens] - seconds[1], 1),
            "generation_seconds": round(seconds[cfg.max_new_tokens], 1),
            "generation_seconds_generate_decoding": round(seconds["generate"], 1),
            "runs_seconds": runs,
            "same_responses": sum(a == b for a, b in zip(responses["generate"], responses["greedy_decode"]))}


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
    parser.add_argument("--arm", nargs="+", default=["sft"], help="policies whose eval generation is timed; the "
                        "first one's decoding step is profiled")
    args = parser.parse_args()
    quiet_transformers()
    folders = {arm: str(Path(args.audit) / arm / "model") for arm in args.arm}
    result = {"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": torch.get_num_threads(),
              "policy_eval": {arm: eval_generation(folder, str(Path(args.audit) / "data"))
                              for arm, folder in folders.items()},
              "decode_step": {"arm": args.arm[0], **decode_step_operators(folders[args.arm[0]], 80, 150)}}
    print(json.dumps(result, indent=1))
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
