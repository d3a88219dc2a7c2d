"""SafeAlign's curation ablation: a binary safe/unsafe classifier on responses, trained in stages.

Every pair gives two cases, chosen = safe (0) and rejected = unsafe (1). The stages differ only in data:

- raw:              the training pairs as they are (paper: 15,000 pairs);
- filtered:         Clean pairs only (rejected hits S1-S7), subsampled (paper: 4,590);
- filtered_scaled:  all the Clean pairs there are (paper: 10,250);
- intent_aware:     the filtered_scaled pairs, but the model reads context + response, to test the paper's
                    "intent blindness" claim (a response's harm often depends on what was asked).

Each stage is its own model under <run>/stages/<stage>/, resumable on its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from safealign.arms.common import (ArmConfig, MODEL_DIR, encode, finish_run, is_trained, labelled_data,
                                   last_checkpoint, load_split, pad_batch, prepared_dir, quiet_transformers,
                                   read_run, score_sequences, start_run, training_arguments)
from safealign.eval.metrics import binary_metrics
from safealign.io import save_figure_atomic, write_json_atomic, write_jsonl_atomic
from safealign.models import load_for_inference, load_options, resolve, tokenizer_options

ARM = "classifier"
STAGES = ("raw", "filtered", "filtered_scaled", "intent_aware")


@dataclass
class ClassifierConfig(ArmConfig):
    max_length: int = field(default=64, metadata={"help": "tokens per response (intent_aware: per context + response)"})
    max_response_tokens: int = field(default=48, metadata={"help": "intent_aware: tokens kept of the response"})
    raw_pairs: int | None = field(default=None, metadata={"help": "pairs of the raw stage (None: all)"})
    filtered_pairs: int | None = field(default=220, metadata={
        "help": "Clean pairs of the filtered stage (paper ratio 4,590 of 10,250 = 45% of the scaled stage)"})
    scaled_pairs: int | None = field(default=None, metadata={"help": "Clean pairs of the scaled stages (None: all)"})
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={"help": "stages to train"})

    def __post_init__(self):
        super().__post_init__()
        unknown = sorted(set(self.stages) - set(STAGES))
        if unknown:
            from safealign.errors import SafeAlignError
            raise SafeAlignError(f"unknown classifier stage '{unknown[0]}' (known: {', '.join(STAGES)})")


def stage_pairs(prepared: Path, stage: str, cfg: ClassifierConfig) -> list:
    if stage == "raw":
        return load_split(prepared, "train")[: cfg.raw_pairs]
    clean = load_split(prepared, "train", clean=True)
    clean = random.Random(cfg.seed).sample(clean, len(clean))  # one seeded order: filtered ⊂ scaled
    return clean[: cfg.filtered_pairs] if stage == "filtered" else clean[: cfg.scaled_pairs]


def cases(tokenizer, pairs, cfg: ClassifierConfig, with_context: bool) -> list[dict]:
    rows = []
    for pair, _ in pairs:
        for response, label in ((pair.chosen, 0), (pair.rejected, 1)):
            ids = encode(tokenizer, pair.context if with_context else None, response, cfg.max_length,
                         cfg.max_response_tokens)
            rows.append({"input_ids": ids, "labels": label, "length": len(ids)})
    return rows


class ClassifierCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows):
        import torch

        ids, mask = pad_batch([r["input_ids"] for r in rows], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r["labels"] for r in rows])}


def train(cfg: ClassifierConfig) -> Path:
    run_dir = start_run(ARM, cfg)
    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    for stage in cfg.stages:
        train_stage(cfg, run_dir / "stages" / stage, prepared, stage)
    return run_dir


def train_stage(cfg: ClassifierConfig, stage_dir: Path, prepared: Path, stage: str):
    if is_trained(stage_dir):
        return
    quiet_transformers()
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    folder = resolve(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pairs = stage_pairs(prepared, stage, cfg)
    dataset = Dataset.from_list(cases(tokenizer, pairs, cfg, with_context=stage == "intent_aware"))
    set_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, **load_options())
    model.config.pad_token_id = tokenizer.pad_token_id
    trainer = Trainer(model=model, args=training_arguments(TrainingArguments, cfg, stage_dir),
                      train_dataset=dataset, data_collator=ClassifierCollator(tokenizer.pad_token_id))
    result = trainer.train(resume_from_checkpoint=last_checkpoint(stage_dir))
    finish_run(stage_dir, trainer, tokenizer=tokenizer, summary={
        "stage": stage, "train_pairs": len(pairs), "train_seconds": round(result.metrics["train_runtime"], 2)})


def evaluate(run_dir: Path) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from safealign.data.taxonomy import load_taxonomy
    from safealign.eval.keyword_baseline import keyword_baselines

    run_dir = Path(run_dir)
    arm, cfg = read_run(run_dir, ClassifierConfig)
    prepared = prepared_dir(cfg.data, run_dir)
    test = load_split(prepared, "test")
    clean_ids = {p.id for p, _ in load_split(prepared, "test", clean=True)}
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
        metrics["stages"][stage] = {"train_pairs": summary["train_pairs"], "raw": binary_metrics(stage_rows),
                                    "clean": binary_metrics([r for r in stage_rows if r["clean"]])}
        predictions += stage_rows
    taxonomy = load_taxonomy("default")
    metrics["keyword_baseline"] = {
        "raw": keyword_baselines([p for p, _ in test], taxonomy)[0]["binary"],
        "clean": keyword_baselines([p for p, _ in test if p.id in clean_ids], taxonomy)[0]["binary"]}
    write_jsonl_atomic(run_dir / "predictions.jsonl", predictions)
    write_json_atomic(run_dir / "metrics.json", metrics)
    plot_progression(metrics, run_dir / "stage_progression.png")
    return metrics


def json_summary(stage_dir: Path) -> dict:
    import json

    from safealign.arms.common import DONE

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


CONFIG = ClassifierConfig
