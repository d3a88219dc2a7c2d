"""Eval generation + scoring: batched (length-sorted, grouped prefill) against a naive per-prompt loop.

    python benchmarks/bench_generate.py --reward-run RUN --cost-run RUN [--prompts 48]
        [--runs grouped:48 grouped:32 grouped:16 padded:16]

Same prompts (the first N of the harmful, helpful and benign_lookalike sets, interleaved), same greedy
decoding (max 50 new tokens) with SmolLM2-135M-Instruct, same judges: the naive loop generates one prompt
at a time and scores one response at a time; the batched path is what `safealign eval` runs, here with each
PREFILL:BATCH_SIZE of --runs (prefill "grouped", eval's default, or "padded", one left-padded forward pass per
batch as before). Reports prompts/s of both, the speedup (target >= 5x) and how many responses are identical,
and the time of the prompts' prefill alone (one forward pass per prompt, no logits), which both paths pay:
with decoding free, the speedup could not pass naive / prefill. Writes benchmarks/results/generate.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "generate.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reward-run", required=True)
    parser.add_argument("--cost-run", required=True)
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--runs", nargs="+", default=["grouped:48", "grouped:32", "grouped:16", "padded:16"],
                        help="PREFILL:BATCH_SIZE (prefill: grouped or padded)")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safealign.arms.common import RunScorer, prepared_dir, quiet_transformers, read_run
    from safealign.data.prepare import read_splits
    from safealign.data.prompts import build_prompt_sets
    from safealign.generate import generate_batched, generate_one_by_one, prompt_ids
    from safealign.models import resolve

    quiet_transformers()
    _, cfg = read_run(args.reward_run)  # the prompt sets need a split: the reward run's prepared data
    sets = build_prompt_sets(read_splits(prepared_dir(cfg["data"], Path(args.reward_run))))
    pools = [sets["harmful"], sets["helpful"], sets["benign_lookalike"]]
    prompts = [pool[i] for i in range(args.prompts) for pool in pools if i < len(pool)][: args.prompts]
    folder = resolve("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    judges = [RunScorer(args.reward_run), RunScorer(args.cost_run)]

    start = time.perf_counter()
    naive = generate_one_by_one(model, tokenizer, prompts, args.max_new_tokens)
    naive_scores = [[j.score([p], [r])[0] for p, r in zip(prompts, naive)] for j in judges]
    naive_s = time.perf_counter() - start

    start = time.perf_counter()
    with torch.no_grad():
        for prompt in prompts:
            model(input_ids=torch.tensor([prompt_ids(tokenizer, prompt, 384)]), logits_to_keep=1)
    prefill_s = time.perf_counter() - start

    runs = []
    for run in args.runs:
        prefill, batch_size = run.split(":")[0], int(run.split(":")[1])
        start = time.perf_counter()
        batched = generate_batched(model, tokenizer, prompts, args.max_new_tokens, batch_size, prefill=prefill)
        batched_scores = [j.score(prompts, batched) for j in judges]
        batched_s = time.perf_counter() - start
        same_text_scores = [abs(a - b) for j in range(2) for a, b, x, y in
                            zip(naive_scores[j], batched_scores[j], naive, batched) if x == y]
        runs.append({"prefill": prefill, "batch_size": batch_size, "batched_seconds": round(batched_s, 1),
                     "batched_prompts_per_s": round(len(prompts) / batched_s, 3),
                     "speedup": round(naive_s / batched_s, 2),
                     "identical_responses": sum(a == b for a, b in zip(naive, batched)),
                     "max_score_difference_on_identical_responses": round(max(same_text_scores, default=0.0), 6)})
        print(json.dumps(runs[-1]), flush=True)
    result = {"prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
              "naive_seconds": round(naive_s, 1), "naive_prompts_per_s": round(len(prompts) / naive_s, 3),
              "prefill_seconds_one_by_one": round(prefill_s, 1),
              "speedup_bound_if_decoding_were_free": round(naive_s / prefill_s, 2),
              "batched": runs, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
