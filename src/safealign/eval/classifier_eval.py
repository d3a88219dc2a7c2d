"""Evaluation of the curation ablation's classifier stages (arms/classifier.py trains them).

Per stage, on every raw test response (chosen = safe, rejected = unsafe) and on the Clean test pairs' responses:
accuracy with its Wilson CI, F1 of "unsafe", and the share of responses predicted unsafe. A stage that
predicts one class for >= 95% of the cases (DEGENERATE_SHARE) is marked `degenerate`: its accuracy is that of a
constant, so the report shows it as degenerate and does not rank it. The keyword baseline is computed with the
run's own taxonomy (the one its data was labelled with).
"""

from __future__ import annotations

import json
from pathlib import Path

from safealign.arms.classifier import ClassifierConfig, cases
from safealign.arms.common import DONE, MODEL_DIR, load_split, prepared_dir, read_run, score_sequences
from safealign.data.prepare import prepared_taxonomy
from safealign.eval.keyword_baseline import keyword_baselines
from safealign.eval.metrics import binary_metrics
from safealign.io import save_figure_atomic, write_json_atomic, write_jsonl_atomic
from safealign.models import load_for_inference, tokenizer_options

DEGENERATE_SHARE = 0.95


def one_class_share(rows: list[dict]) -> dict:
    """Share of cases predicted unsafe, and whether one class takes >= DEGENERATE_SHARE of them."""
    share = sum(r["predicted_unsafe"] for r in rows) / len(rows) if rows else 0.0
    return {"predicted_unsafe_share": round(share, 4),
            "degenerate": bool(rows) and max(share, 1 - share) >= DEGENERATE_SHARE}


def evaluate_classifier(run_dir: Path) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run_dir = Path(run_dir)
    arm, cfg = read_run(run_dir, ClassifierConfig)
    prepared = prepared_dir(cfg.data, run_dir)
    test = load_split(prepared, "test")
    clean_ids = {p.id for p, _ in load_split(prepared, "test", part="clean")}
    metrics, predictions = {"arm": arm, "task": "binary safe/unsafe per response", "stages": {}}, []
    for stage in cfg.stages:
        stage_dir = run_dir / "stages" / stage
        tokenizer = AutoTokenizer.from_pretrained(stage_dir / MODEL_DIR, **tokenizer_options())
        model = load_for_inference(AutoModelForSequenceClassification, stage_dir / MODEL_DIR)
        rows = cases(tokenizer, test, cfg, with_context=stage == "intent_aware")
        logits = score_sequences(model, [r["input_ids"] for r in rows], tokenizer.pad_token_id, cfg.eval_batch_size)
        unsafe_prob = logits.softmax(-1)[:, 1].tolist()
        stage_rows = [{"stage": stage, "id": pair.id, "response": side, "unsafe": side == "rejected",
                       "unsafe_prob": round(prob, 5), "predicted_unsafe": prob > 0.5, "clean": pair.id in clean_ids}
                      for (pair, _), side, prob in zip([t for t in test for _ in (0, 1)],
                                                       ["chosen", "rejected"] * len(test), unsafe_prob)]
        summary = json_summary(stage_dir)
        metrics["stages"][stage] = {"train_pairs": summary["train_pairs"], "steps": summary.get("steps"),
                                    "raw": binary_metrics(stage_rows),
                                    "clean": binary_metrics([r for r in stage_rows if r["clean"]])
                                    } | one_class_share(stage_rows)
        predictions += stage_rows
    taxonomy = prepared_taxonomy(prepared)  # the run's own, not the package default
    metrics["keyword_baseline"] = {
        "raw": keyword_baselines([p for p, _ in test], taxonomy)[0]["binary"],
        "clean": keyword_baselines([p for p, _ in test if p.id in clean_ids], taxonomy)[0]["binary"]}
    write_jsonl_atomic(run_dir / "predictions.jsonl", predictions)
    write_json_atomic(run_dir / "metrics.json", metrics)
    plot_progression(metrics, run_dir / "stage_progression.png")
    return metrics


def json_summary(stage_dir: Path) -> dict:
    return json.loads((stage_dir / MODEL_DIR / DONE).read_text())


def plot_progression(metrics: dict, path: Path):
    """Accuracy with its 95% CI per stage, on raw test and on Clean test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(metrics["stages"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for offset, subset in ((-0.08, "raw"), (0.08, "clean")):
        acc = [metrics["stages"][s][subset]["accuracy"] for s in stages]
        x = [i + offset for i in range(len(stages))]
        y = [a["value"] for a in acc]
        ax.errorbar(x, y, yerr=[[v - a["low"] for v, a in zip(y, acc)], [a["high"] - v for v, a in zip(y, acc)]],
                    marker="o", capsize=3, label=f"{subset} test")
    ax.set_xticks(range(len(stages)), [f"{s}\n({metrics['stages'][s]['train_pairs']} pairs)" for s in stages])
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title("Safety classifier: curation ablation")
    ax.legend()
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)


