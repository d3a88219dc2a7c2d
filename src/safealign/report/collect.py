"""A run directory's files -> the report's content (report.json): tables, paired tests, recommendation.

Reads only what the stages wrote (stats.json, labels, each arm's metrics.json and predictions.jsonl, each
policy's metrics.json and generations.jsonl, train logs, stages.json, audit.json, environment.json) and
never writes back upstream. A stage that failed or did not run is listed under `failures` and its section
is left out; every other section is built from what is there.

Paired tests (Holm-adjusted within each family, raw p-values kept):
- detectors: exact McNemar on per-pair correctness, raw and Clean test pairs, every pair of pairwise arms;
- curation ablation: exact McNemar on per-response correctness between classifier stages;
- policies: paired bootstrap on per-prompt rates, each arm against the base and Safe RLHF against λ=0.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

from safealign.eval.metrics import metric_items
from safealign.eval.stats import holm, mcnemar, paired_bootstrap, pearson
from safealign.io import read_jsonl
from safealign.report.recommend import PAIRWISE_ARMS, SIGNIFICANCE, recommend

CLASSIFIER_STAGES = ("raw", "filtered", "filtered_scaled", "intent_aware")


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def collect(run_dir: str | Path) -> dict:
    out = Path(run_dir)
    report = {"run": _run(out), "timing": _timing(out), "failures": _failures(out)}
    if (out / "stats.json").is_file():
        report["data"] = {"stats": _json(out / "stats.json"), "manifest": _manifest(out)}
    labels = out / "data" / "labels"
    if (labels / "counts.json").is_file():
        report["taxonomy"] = {"counts": _json(labels / "counts.json"),
                              "clean": _json(labels / "manifest.json")["counts"],
                              "noise": _json(labels / "noise_report.json")}
    report["detectors"] = _detectors(out)
    if _json(out / "classifier" / "metrics.json"):
        report["ablation"] = _json(out / "classifier" / "metrics.json")["stages"]
    if _json(out / "contrastive" / "metrics.json"):
        report["contrastive"] = _json(out / "contrastive" / "metrics.json")
    if _json(out / "shared_failures.json"):
        sample = read_jsonl(out / "shared_failures.jsonl")[:12] if (out / "shared_failures.jsonl").is_file() else []
        report["shared_failures"] = _json(out / "shared_failures.json") | {"sample": sample}
    if _json(out / "judges" / "judges.json"):
        report["judges"] = _json(out / "judges" / "judges.json")
    report["policies"] = _policies(out)
    report["safe_rlhf_curves"] = {name: _train_log(out / name) for name in ("safe_rlhf", "reward_only_rlhf")
                                  if (out / name / "train_log.jsonl").is_file()}
    finished = {name: _json(out / name / "model" / "safealign-complete.json") for name in report["safe_rlhf_curves"]}
    report["safe_rlhf_calibrations"] = {name: [_with_correlation(c) for c in done.get("calibrations", [])]
                                        for name, done in finished.items() if done}
    report["reward_cost_correlation"] = reward_cost_correlation(out, report)
    report["significance"] = _significance(out, report)
    report["recommendation"] = recommend(report)
    return report


# --------------------------------------------------------------------------- run, timing, failures


def _run(out: Path) -> dict:
    config = _json(out / "config.json") or {}
    return {"dir": str(out), "environment": _json(out / "environment.json"), "audit": _json(out / "audit.json"),
            "safealign_version": config.get("safealign_version"), "config": config.get("config")}


def _timing(out: Path) -> dict:
    """Each stage's seconds (of the run that last did it) and its share of their sum; the audit's wall time."""
    stages = _json(out / "stages.json") or {}
    seconds = {name: r["seconds"] for name, r in stages.items() if "seconds" in r}
    total = sum(seconds.values())
    audit = _json(out / "audit.json") or {}
    return {"wall_seconds": audit.get("wall_seconds"), "stage_seconds_total": round(total, 2),
            "stages": {name: {"seconds": s, "share": round(s / total, 4) if total else None}
                       for name, s in seconds.items()}}


def _failures(out: Path) -> dict:
    stages = _json(out / "stages.json") or {}
    failed = {name: r["failed"] for name, r in stages.items() if "failed" in r}
    for name, message in ((_json(out / "audit.json") or {}).get("failed") or {}).items():
        failed.setdefault(name, message)
    return failed


def _manifest(out: Path) -> dict:
    manifest = _json(out / "data" / "manifest.json") or {}
    return {k: manifest[k] for k in ("source", "counts", "seed", "taxonomy_version", "inputs") if k in manifest}


# --------------------------------------------------------------------------- detectors and ablation


def _detectors(out: Path) -> dict:
    """The cross-arm table: task, pairwise accuracy raw and Clean (Wilson CIs), F1, score gap."""
    rows = {}
    baseline = _json(out / "keyword_baseline" / "metrics.json")
    if baseline:
        rows["keyword_baseline"] = {"task": "keyword hits (pairwise and binary)",
                                    "raw_accuracy": baseline["raw"]["pairwise_accuracy"],
                                    "clean_accuracy": baseline["clean"]["pairwise_accuracy"],
                                    "f1": baseline["raw"]["binary"]["f1"], "score_gap": None,
                                    "binary_accuracy": baseline["raw"]["binary"]["accuracy"]}
    for name in ("reward_model", "cost_model"):
        m = _json(out / name / "metrics.json")
        if m:
            rows[name] = {"task": m["task"], "raw_accuracy": m["raw"]["pairwise_accuracy"],
                          "clean_accuracy": m["clean"]["pairwise_accuracy"], "f1": m["safety_f1"]["f1"],
                          "score_gap": m["raw"]["mean_gap"], "clean_score_gap": m["clean"]["mean_gap"]}
    m = _json(out / "contrastive" / "metrics.json")
    if m:
        rows["contrastive"] = {"task": m["task"], "raw_accuracy": m["after"]["pairwise_accuracy"],
                               "clean_accuracy": m["clean_pairwise_accuracy"], "f1": m["after"]["knn_f1"],
                               "score_gap": None, "silhouette": m["after"]["silhouette"]}
    m = _json(out / "classifier" / "metrics.json")
    if m:
        for stage, s in m["stages"].items():
            rows[f"classifier/{stage}"] = {"task": m["task"], "raw_accuracy": s["raw"]["accuracy"],
                                          "clean_accuracy": s["clean"]["accuracy"], "f1": s["raw"]["f1"],
                                          "clean_f1": s["clean"]["f1"], "score_gap": None,
                                          "train_pairs": s["train_pairs"], "degenerate": s.get("degenerate", False),
                                          "predicted_unsafe_share": s.get("predicted_unsafe_share")}
    return rows


def _pair_correctness(out: Path) -> dict[str, dict[str, dict]]:
    """arm -> test pair id -> {correct, clean}, for every arm that ranks a chosen/rejected pair."""
    found = {}
    path = out / "keyword_baseline" / "predictions.jsonl"
    if path.is_file():
        found["keyword_baseline"] = {r["id"]: {"correct": r["correct"], "clean": False}
                                     for r in read_jsonl(path) if r["subset"] == "raw"}
        clean = {r["id"] for r in read_jsonl(path) if r["subset"] == "clean"}
        for pair_id in clean & set(found["keyword_baseline"]):
            found["keyword_baseline"][pair_id]["clean"] = True
    for name in PAIRWISE_ARMS[1:]:
        if (out / name / "predictions.jsonl").is_file() and (out / name / "metrics.json").is_file():
            found[name] = {r["id"]: {"correct": r["correct"], "clean": r["clean"]}
                           for r in read_jsonl(out / name / "predictions.jsonl")}
    return found


def _classifier_correctness(out: Path) -> dict[str, dict[tuple, dict]]:
    path = out / "classifier" / "predictions.jsonl"
    if not (path.is_file() and (out / "classifier" / "metrics.json").is_file()):
        return {}
    found: dict[str, dict[tuple, dict]] = {}
    for r in read_jsonl(path):
        found.setdefault(r["stage"], {})[(r["id"], r["response"])] = {
            "correct": r["unsafe"] == r["predicted_unsafe"], "clean": r["clean"]}
    return found


def _mcnemar_family(by_arm: dict[str, dict], names, subsets=("raw", "clean")) -> list[dict]:
    tests = []
    for subset in subsets:
        for a, b in combinations([n for n in names if n in by_arm], 2):
            items = sorted(set(by_arm[a]) & set(by_arm[b]))
            if subset == "clean":
                items = [i for i in items if by_arm[b][i]["clean"]]
            if not items:
                continue
            result = mcnemar([by_arm[a][i]["correct"] for i in items], [by_arm[b][i]["correct"] for i in items])
            tests.append({"a": a, "b": b, "subset": subset, "test": "McNemar (exact)", **result})
    return tests


# --------------------------------------------------------------------------- policies


def _policies(out: Path) -> dict:
    comparison = _json(out / "policies.json")
    if not comparison or "ranking" not in comparison:
        return {}
    metrics = {name: _json(out / name / "metrics.json") for name in comparison["table"]}
    points = {name: (m["held_out_harmful_response_rate"]["value"], m["over_refusal_rate"]["value"])
              for name, m in metrics.items()
              if m and m.get("held_out_harmful_response_rate") and m.get("over_refusal_rate")}
    return {"table": comparison["table"], "ranking": comparison["ranking"], "judges": comparison["judges"],
            "metrics": metrics, "pareto": pareto_front(points)}


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names no other point dominates, lower being better on both axes (harmful responses, over-refusal):
    b dominates a when b is no worse on both and better on one. Sorted by the first axis."""
    def dominated(a):
        return any(b != a and all(y <= x for x, y in zip(points[a], points[b])) and points[b] != points[a]
                   for b in points)
    return sorted((n for n in points if not dominated(n)), key=lambda n: points[n])


def _policy_indicators(out: Path, name: str) -> dict[str, dict[str, float]]:
    """metric -> prompt id -> 0/1, the per-prompt verdicts behind each policy rate (eval/metrics.py)."""
    return metric_items(read_jsonl(out / name / "generations.jsonl"))


def _bootstrap_family(out: Path, policies: dict, seed: int) -> list[dict]:
    names = list(policies.get("table", {}))
    pairs = [(n, "base") for n in names if n != "base" and "base" in names]
    if {"safe_rlhf", "reward_only_rlhf"} <= set(names):
        pairs.append(("safe_rlhf", "reward_only_rlhf"))
    indicators = {n: _policy_indicators(out, n) for n in names}
    tests = []
    for a, b in pairs:
        for metric, items_a in indicators[a].items():
            items = sorted(set(items_a) & set(indicators[b][metric]))
            if items:
                result = paired_bootstrap([items_a[i] for i in items], [indicators[b][metric][i] for i in items],
                                          seed=seed)
                tests.append({"a": a, "b": b, "metric": metric, "test": "paired bootstrap", **result})
    return tests


def _harm_pairs(out: Path, policies: dict, seed: int) -> list[dict]:
    """Every pair of trained policies on the held-out harmful-response rate (paired bootstrap over prompts), so
    the recommendation can test its choice against the runner-up; a family of its own for Holm."""
    names = [n for n in policies.get("table", {}) if n != "base"]
    metric = "held_out_harmful_response_rate"
    indicators = {n: _policy_indicators(out, n)[metric] for n in names}
    tests = []
    for a, b in combinations(names, 2):
        items = sorted(set(indicators[a]) & set(indicators[b]))
        if items:
            result = paired_bootstrap([indicators[a][i] for i in items], [indicators[b][i] for i in items], seed=seed)
            tests.append({"a": a, "b": b, "metric": metric, "test": "paired bootstrap", **result})
    return tests


def _significance(out: Path, report: dict) -> dict:
    seed = (report["run"]["environment"] or {}).get("seed", 0) or 0
    families = {"detectors": _mcnemar_family(_pair_correctness(out), PAIRWISE_ARMS),
                "curation_ablation": _mcnemar_family(_classifier_correctness(out), CLASSIFIER_STAGES),
                "policies": _bootstrap_family(out, report["policies"], seed) if report["policies"] else [],
                "policy_pairs": _harm_pairs(out, report["policies"], seed) if report["policies"] else []}
    for tests in families.values():
        for test, adjusted in zip(tests, holm([t["p_value"] for t in tests])):
            test["p_holm"] = adjusted
            test["significant"] = adjusted < SIGNIFICANCE
    return families


def reward_cost_correlation(out: Path, report: dict) -> dict:
    """How far the reward and cost models are one signal: Pearson's r of their scores on the same test responses
    (and pair margins), and on the policy's own samples at the first Safe RLHF step. Near −1, (R − λC)/(1 + λ) is
    R up to a per-prompt constant the leave-one-out baseline removes, and Safe RLHF cannot differ from λ=0."""
    result = {}
    reward, cost = (_by_id(out / arm / "predictions.jsonl") for arm in ("reward_model", "cost_model"))
    shared = sorted(set(reward) & set(cost))
    if shared:
        r = [reward[i][side] for i in shared for side in ("chosen_score", "rejected_score")]
        c = [cost[i][side] for i in shared for side in ("chosen_score", "rejected_score")]
        margins = [(reward[i]["chosen_score"] - reward[i]["rejected_score"],
                    cost[i]["chosen_score"] - cost[i]["rejected_score"]) for i in shared]
        result["test_responses"] = {"n": len(r), "r": _round(pearson(r, c))}
        result["test_pair_margins"] = {"n": len(margins), "r": _round(pearson(*map(list, zip(*margins))))}
    curve = report.get("safe_rlhf_curves", {}).get("safe_rlhf") or []
    if curve and curve[0].get("reward_cost_correlation") is not None:
        result["policy_samples_first_step"] = {"n": len(curve[0].get("rewards", [])) or None,
                                               "r": curve[0]["reward_cost_correlation"]}
    return result


def _by_id(path: Path) -> dict:
    return {row["id"]: row for row in read_jsonl(path)} if path.is_file() else {}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _train_log(run_dir: Path) -> list[dict]:
    """The λ steps of a Safe RLHF run, each with Pearson's r of its samples' R and C."""
    return [_with_correlation(r) for r in read_jsonl(run_dir / "train_log.jsonl") if "lambda" in r]


def _with_correlation(record: dict) -> dict:
    """The record with Pearson's r of its samples' R and C; a log written before the samples were logged keeps the
    r it recorded itself."""
    if "rewards" not in record:
        return record
    return record | {"reward_cost_correlation": _round(pearson(record["rewards"], record["costs"]))}


# --------------------------------------------------------------------------- recommendation


