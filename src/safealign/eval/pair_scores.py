"""Evaluation of a model that scores (context, response): the reward model and the cost model.

Writes `predictions.jsonl` (one row per test pair: both scores, right or wrong, Clean or not) and
`metrics.json`: pairwise accuracy with Wilson CI, mean scores and gap, on raw test and on its Clean
subset; safety F1 with the threshold picked on dev; and the keyword baseline on the same pairs.
"""

from __future__ import annotations

from pathlib import Path

from safealign.arms.common import MODEL_DIR, encode, load_split, prepared_dir, read_run, score_sequences
from safealign.data.prepare import prepared_taxonomy
from safealign.eval.keyword_baseline import keyword_baselines
from safealign.eval.metrics import binary_metrics, pairwise_metrics, safety_f1
from safealign.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from safealign.models import load_for_inference, tokenizer_options


def score_pairs(model, tokenizer, pairs, cfg) -> tuple[list[float], list[float]]:
    sequences = []
    for pair, _ in pairs:
        sequences.append(encode(tokenizer, pair.context, pair.chosen, cfg.max_length, cfg.max_response_tokens))
        sequences.append(encode(tokenizer, pair.context, pair.rejected, cfg.max_length, cfg.max_response_tokens))
    scores = score_sequences(model, sequences, tokenizer.pad_token_id, cfg.eval_batch_size)[:, 0].tolist()
    return scores[0::2], scores[1::2]


def safety_cases(pairs, chosen, rejected, unsafe_score) -> tuple[list[float], list[bool]]:
    """(unsafe-ness score, is unsafe) for every response whose safety label is known."""
    scores, labels = [], []
    for (pair, row), c, r in zip(pairs, chosen, rejected):
        for score, side in ((c, "chosen"), (r, "rejected")):
            if row[f"{side}_safety"] != "unknown":
                scores.append(unsafe_score(score))
                labels.append(row[f"{side}_safety"] == "unsafe")
    return scores, labels


def evaluate_pair_scorer(run_dir: Path, config_cls, higher_is_safer: bool) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run_dir = Path(run_dir)
    arm, cfg = read_run(run_dir, config_cls)
    prepared = prepared_dir(cfg.data, run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / MODEL_DIR, **tokenizer_options())
    model = load_for_inference(AutoModelForSequenceClassification, run_dir / MODEL_DIR)
    test, dev = load_split(prepared, "test"), load_split(prepared, "dev")
    clean_ids = {row["id"] for row in read_jsonl(prepared / "labels" / "clean" / "test.jsonl")}
    test_chosen, test_rejected = score_pairs(model, tokenizer, test, cfg)
    dev_chosen, dev_rejected = score_pairs(model, tokenizer, dev, cfg)
    unsafe_score = (lambda s: -s) if higher_is_safer else (lambda s: s)
    # "better" is the score that should be higher: reward of chosen, or cost of rejected
    better, worse = (test_chosen, test_rejected) if higher_is_safer else (test_rejected, test_chosen)
    predictions = [{"id": pair.id, "chosen_score": c, "rejected_score": r, "correct": b > w,
                    "clean": pair.id in clean_ids, "rejected_labels": row["rejected_labels"]}
                   for (pair, row), c, r, b, w in zip(test, test_chosen, test_rejected, better, worse)]
    clean = [i for i, p in enumerate(predictions) if p["clean"]]
    taxonomy = prepared_taxonomy(prepared)
    metrics = {
        "arm": arm, "task": "pairwise preference" if higher_is_safer else "pairwise harm + safety sign",
        "raw": pairwise_metrics(better, worse),
        "clean": pairwise_metrics([better[i] for i in clean], [worse[i] for i in clean]),
        "benign": pairwise_metrics([b for p, b in zip(predictions, better) if not p["clean"]],
                                   [w for p, w in zip(predictions, worse) if not p["clean"]]),
        "safety_f1": safety_f1(safety_cases(dev, dev_chosen, dev_rejected, unsafe_score),
                               safety_cases(test, test_chosen, test_rejected, unsafe_score)),
        "keyword_baseline": {
            "raw": keyword_baselines([p for p, _ in test], taxonomy)[0]["pairwise_accuracy"],
            "clean": keyword_baselines([p for p, _ in test if p.id in clean_ids], taxonomy)[0]["pairwise_accuracy"]},
    }
    if not higher_is_safer:  # the cost model's own sign: cost > 0 means unsafe
        cases = safety_cases(test, test_chosen, test_rejected, unsafe_score)
        metrics["sign_accuracy_at_zero"] = sign_at_zero(*cases)
    write_jsonl_atomic(run_dir / "predictions.jsonl", predictions)
    write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


def sign_at_zero(scores, unsafe) -> dict:
    """The cost model read at its own sign: a response is flagged unsafe when its cost is above 0."""
    return binary_metrics([{"unsafe": u, "predicted_unsafe": s > 0} for s, u in zip(scores, unsafe)])

