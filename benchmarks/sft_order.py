"""Does the order of SFT's batches change the policy it trains? Random order against batches grouped by length.

    python benchmarks/sft_order.py [--audit runs/audit] [--seeds 0 1 2]

For each seed, the audit profile's SFT arm (its config, data and base policy) is trained twice on a finished
audit's data: with batches in random order (as shipped) and grouped by length (the Trainer's length-grouped
sampler: less padding, faster); each policy is evaluated with the audit's policy eval and judges on the held-out
harmful prompts only (the study's unseen ones and 100 AdvBench): harmful-response and refusal rates, and the
training seconds. Results go to benchmarks/results/sft_order.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from safealign.arms import sft
from safealign.audit import load_audit_config, policy_config, policy_eval_config
from safealign.eval.policy_eval import evaluate_policy

RESULTS = Path(__file__).parent / "results" / "sft_order.json"
ORDERS = ("random", "group_by_length")


def train_and_judge(audit: Path, order: str, seed: int, out: Path) -> dict:
    cfg = load_audit_config("offline")
    eval_cfg = replace(policy_eval_config(cfg, audit, audit / "data"), sets=["harmful", "advbench:100"])
    shipped = sft.training_arguments
    sft.training_arguments = lambda *a, **kw: shipped(*a, **kw | {"train_sampling_strategy": order})
    try:
        arm_cfg = replace(policy_config(cfg, "sft", out, audit / "data"), out=str(out / f"{order}_{seed}"),
                          seed=seed)
        start = time.perf_counter()
        run = sft.train(arm_cfg)
        seconds = time.perf_counter() - start
    finally:
        sft.training_arguments = shipped
    metrics = evaluate_policy(run, eval_cfg)
    summary = json.loads((run / "model" / "safealign-complete.json").read_text())
    return {"order": order, "seed": seed, "train_seconds": summary["train_seconds"], "arm_seconds": round(seconds, 1),
            "harmful": metrics["held_out_harmful_response_rate"], "refusal": metrics["held_out_refusal_rate"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audit", default="runs/audit", help="a finished audit: its data and judges")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="sft-order-"))
    runs = []
    for seed in args.seeds:
        for order in ORDERS:
            runs.append(train_and_judge(Path(args.audit), order, seed, out))
            r = runs[-1]
            print(f"{order:16s} seed {seed}: harmful {r['harmful']['successes']}/{r['harmful']['n']}, refusal "
                  f"{r['refusal']['value']:.3f}, train {r['train_seconds']} s", flush=True)
    mean = {order: round(sum(r["harmful"]["value"] for r in runs if r["order"] == order) / len(args.seeds), 4)
            for order in ORDERS}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "seeds": args.seeds,
                                   "mean_harmful_rate": mean, "runs": runs}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
