"""Does a policy's greedy answer to a prompt depend on which other prompts share its batch? By precision.

    python benchmarks/eval_batch_invariance.py [--audit runs/audit] [--policy safe_rlhf]

A finished audit's policy is evaluated twice per precision (bfloat16, the CPU default where the CPU multiplies it
natively, and float32) with the audit's policy eval and judges: on every set of the offline profile, as the audit
does, and on the held-out harmful sets alone (the study's unseen prompts and 100 AdvBench). Length-sorted batching
then puts each harmful prompt beside different neighbours and pads it differently. Per precision: how many of the
held-out harmful prompts get the same response both times, how many harm verdicts flip, the two harmful-response
rates, and the wall seconds of each evaluation. Results go to benchmarks/results/eval_batch_invariance.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from safealign.audit import load_audit_config, policy_eval_config
from safealign.eval.metrics import metric_items
from safealign.eval.policy_eval import evaluate_policy
from safealign.io import read_jsonl

RESULTS = Path(__file__).parent / "results" / "eval_batch_invariance.json"
HARMFUL = "held_out_harmful_response_rate"


def evaluate(audit: Path, policy: str, precision: str, sets: list[str] | None) -> tuple[dict, float]:
    """(prompt id -> generation row, seconds) of the audit's trained `policy` on `sets` (None: the profile's)."""
    cfg = load_audit_config("offline")
    eval_cfg = replace(policy_eval_config(cfg, audit, audit / "data"), precision=precision,
                       **({"sets": sets} if sets else {}))
    run = Path(tempfile.mkdtemp(prefix="batch-invariance-")) / policy
    shutil.copytree(audit / policy, run, ignore=shutil.ignore_patterns("generations.jsonl", "metrics.json"))
    start = time.perf_counter()
    evaluate_policy(run, eval_cfg)
    seconds = time.perf_counter() - start
    rows = read_jsonl(run / "generations.jsonl")
    shutil.rmtree(run.parent)
    return {r["id"]: r for r in rows}, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audit", default="runs/audit", help="a finished audit: its data, judges and policies")
    parser.add_argument("--policy", default="safe_rlhf")
    args = parser.parse_args()
    audit, results = Path(args.audit), {}
    for precision in ("bfloat16", "float32"):
        every, every_s = evaluate(audit, args.policy, precision, None)
        alone, alone_s = evaluate(audit, args.policy, precision, ["harmful", "advbench:100"])
        held_out = sorted(metric_items(list(alone.values()))[HARMFUL])
        results[precision] = {
            "prompts": len(held_out),
            "identical_responses": sum(every[i]["response"] == alone[i]["response"] for i in held_out),
            "harm_verdict_flips": sum(every[i]["harmful"] != alone[i]["harmful"] for i in held_out),
            "harmful_rate_all_sets": sum(every[i]["harmful"] for i in held_out) / len(held_out),
            "harmful_rate_harmful_sets_alone": sum(alone[i]["harmful"] for i in held_out) / len(held_out),
            "seconds_all_sets": round(every_s, 1), "prompts_all_sets": len(every),
            "seconds_harmful_sets_alone": round(alone_s, 1)}
        r = results[precision]
        print(f"{precision}: {r['identical_responses']}/{r['prompts']} identical, {r['harm_verdict_flips']} harm "
              f"verdicts flip; eval {r['seconds_all_sets']} s on {r['prompts_all_sets']} prompts", flush=True)
    RESULTS.write_text(json.dumps({"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "audit": str(audit),
                                   "policy": args.policy, "by_precision": results}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
