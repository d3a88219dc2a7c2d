"""Is Safe RLHF's gap to its λ=0 twin a seed's luck? Both arms trained at several seeds on a finished audit.

    python benchmarks/safe_rlhf_seeds.py [--audit runs/audit] [--seeds 0 1 2] [--set KEY=VALUE ...] [--results F]

For each seed, the audit profile's Safe RLHF arm and its λ=0 twin (reward_only_rlhf) are trained as the audit
trains them (the same config, data, SFT start and reference, reward and cost models) but for the seed, and each
policy is judged with the audit's policy eval and judges on the held-out harmful prompts only (the study's
unseen ones and 100 AdvBench): the per-prompt harmful verdicts, the harmful-response and refusal rates, λ at the
end, the steps on which the window's mean cost was above d (the constraint violated: λ rises), each step's share
of samples with C > 0, and the seconds the arm took to train. Per seed: the paired bootstrap difference over
prompts (safe_rlhf − λ=0). Over all seeds: each prompt's harmful share across seeds, per arm, and the paired
bootstrap over prompts of their difference (prompts are the unit resampled; the seeds are averaged inside each
prompt).
`--set` overrides the audit profile as `safealign audit KEY=VALUE` does (e.g. safe_rlhf.steps=16: does the constraint
act given more steps? rlhf_start=base: from the policy no safety SFT has trained), and the results record them.
Results go to benchmarks/results/safe_rlhf_seeds.json, or to --results.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from safealign.arms import safe_rlhf
from safealign.arms.common import MODEL_DIR
from safealign.audit import load_audit_config, policy_config, policy_eval_config
from safealign.eval.metrics import metric_items
from safealign.eval.policy_eval import evaluate_policy
from safealign.eval.stats import paired_bootstrap
from safealign.io import read_jsonl
from safealign.report.recommend import cost_above_d

RESULTS = Path(__file__).parent / "results" / "safe_rlhf_seeds.json"
ARMS = ("safe_rlhf", "reward_only_rlhf")
HARMFUL = "held_out_harmful_response_rate"


def train_and_judge(audit: Path, name: str, seed: int, out: Path, overrides: list[str]) -> dict:
    cfg = load_audit_config("offline", overrides=overrides)
    eval_cfg = replace(policy_eval_config(cfg, audit, audit / "data"), sets=["harmful", "advbench:100"])
    arm_cfg = replace(policy_config(cfg, name, audit, audit / "data"), out=str(out / f"{name}_{seed}"), seed=seed)
    start = time.perf_counter()
    run = safe_rlhf.train(arm_cfg)
    seconds = time.perf_counter() - start
    metrics = evaluate_policy(run, eval_cfg)
    rows = read_jsonl(run / "generations.jsonl")
    summary = json.loads((run / MODEL_DIR / "safealign-complete.json").read_text())
    log = read_jsonl(run / "train_log.jsonl")
    return {"arm": name, "seed": seed, "steps": arm_cfg.steps, "arm_seconds": round(seconds, 1),
            "final_lambda": summary.get("final_lambda"),
            "steps_window_cost_above_d": sum(cost_above_d(r) for r in log),
            "unsafe_share": [r["unsafe_share"] for r in log], "harmful": metrics[HARMFUL],
            "refusal": metrics["held_out_refusal_rate"], "items": metric_items(rows)[HARMFUL]}


def compare(runs: list[dict], seeds: list[int]) -> dict:
    by = {(r["arm"], r["seed"]): r["items"] for r in runs}
    ids = sorted(by[(ARMS[0], seeds[0])])
    per_seed = {}
    for seed in seeds:
        a, b = by[(ARMS[0], seed)], by[(ARMS[1], seed)]
        per_seed[seed] = paired_bootstrap([a[i] for i in ids], [b[i] for i in ids])
    pooled = paired_bootstrap([sum(by[(ARMS[0], s)][i] for s in seeds) / len(seeds) for i in ids],
                              [sum(by[(ARMS[1], s)][i] for s in seeds) / len(seeds) for i in ids])
    return {"prompts": len(ids), "per_seed": per_seed, "pooled_over_seeds": pooled}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audit", default="runs/audit", help="a finished audit: its data, judges, SFT, reward, cost")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the offline audit profile")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="safe-rlhf-seeds-"))
    runs = []
    for seed in args.seeds:
        for name in ARMS:
            runs.append(train_and_judge(Path(args.audit), name, seed, out, args.overrides))
            r = runs[-1]
            print(f"{name:16s} seed {seed}: harmful {r['harmful']['successes']}/{r['harmful']['n']}, refusal "
                  f"{r['refusal']['value']:.3f}, λ {r['final_lambda']:.3f}, {r['arm_seconds']} s to train", flush=True)
    tests = compare(runs, args.seeds)
    for seed, test in tests["per_seed"].items():
        print(f"seed {seed}: safe_rlhf - λ=0 {100 * test['difference']:+.1f} points, p={test['p_value']:.3g}")
    pooled = tests["pooled_over_seeds"]
    print(f"pooled over seeds: {100 * pooled['difference']:+.1f} points [{100 * pooled['low']:.1f}, "
          f"{100 * pooled['high']:.1f}], p={pooled['p_value']:.3g}")
    path = args.results
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "audit": str(args.audit),
                                "seeds": args.seeds, "overrides": args.overrides,
                                "steps": runs[0]["steps"], "tests": tests,
                                "runs": [{k: v for k, v in r.items() if k != "items"} for r in runs]},
                               indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
