"""SafeAlign's curation ablation: a binary safe/unsafe classifier on responses, trained in stages.

Every pair gives two cases, chosen = safe (0) and rejected = unsafe (1). The stages differ only in data:

- raw:              the training pairs as they are (paper: 15,000 pairs);
- filtered:         Clean pairs only (rejected hits S1-S7), subsampled (paper: 4,590);
- filtered_scaled:  all the Clean pairs there are (paper: 10,250);
- intent_aware:     the filtered_scaled pairs, but the model reads context + response, to test the paper's
                    "intent blindness" claim (a response's harm often depends on what was asked).

Each stage is its own model under <run>/stages/<stage>/, resumable on its own. Every stage trains for at
least `min_steps` optimiser steps (more epochs for a small stage), so the filtered stage is trained to
convergence for its size rather than stopped after one short epoch; eval/classifier_eval.py evaluates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from safealign.arms.common import (
    ArmConfig,
    encode,
    finish_run,
    is_trained,
    labelled_data,
    load_split,
    pad_batch,
    quiet_transformers,
    run_trainer,
    start_run,
    training_arguments,
)
from safealign.errors import SafeAlignError
from safealign.models import load_options, resolve, tokenizer_options

ARM = "classifier"
STAGES = ("raw", "filtered", "filtered_scaled", "intent_aware")


@dataclass
class ClassifierConfig(ArmConfig):
    max_length: int = field(default=64,
                            metadata={"help": "tokens per response (intent_aware: per context + response)"})
    max_response_tokens: int = field(default=48, metadata={"help": "intent_aware: tokens kept of the response"})
    raw_pairs: int | None = field(default=None, metadata={"help": "pairs of the raw stage (None: all)"})
    filtered_pairs: int | None = field(default=220, metadata={
        "help": "Clean pairs of the filtered stage (paper ratio 4,590 of 10,250 = 45% of the scaled stage)"})
    scaled_pairs: int | None = field(default=None, metadata={"help": "Clean pairs of the scaled stages (None: all)"})
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={"help": "stages to train"})
    min_steps: int = field(default=0, metadata={
        "help": "train every stage for at least this many optimiser steps (epochs raised for a small stage)"})

    def __post_init__(self):
        super().__post_init__()
        unknown = sorted(set(self.stages) - set(STAGES))
        if unknown:
            raise SafeAlignError(f"unknown classifier stage '{unknown[0]}' (known: {', '.join(STAGES)})")


def stage_pairs(prepared: Path, stage: str, cfg: ClassifierConfig) -> list:
    if stage == "raw":
        return load_split(prepared, "train")[: cfg.raw_pairs]
    clean = load_split(prepared, "train", part="clean")
    clean = random.Random(cfg.seed).sample(clean, len(clean))  # one seeded order: filtered ⊂ scaled
    return clean[: cfg.filtered_pairs] if stage == "filtered" else clean[: cfg.scaled_pairs]


def cases(tokenizer, pairs, cfg: ClassifierConfig, with_context: bool) -> list[dict]:
    rows = []
    for pair, labels in pairs:
        sides = ((pair.chosen, 0), (pair.rejected, 1))
        if labels.get("safety_from") == "human labels":  # people's is-safe flags, not the side of the pair
            sides = tuple((r, int(labels[f"{side}_safety"] == "unsafe"))
                          for (r, _), side in zip(sides, ("chosen", "rejected")))
        for response, label in sides:
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
    steps = stage_steps(len(dataset), cfg)
    trainer = Trainer(model=model, args=training_arguments(TrainingArguments, cfg, stage_dir, max_steps=steps),
                      train_dataset=dataset, data_collator=ClassifierCollator(tokenizer.pad_token_id))
    result = run_trainer(trainer, stage_dir)
    finish_run(stage_dir, trainer, tokenizer=tokenizer, summary={
        "stage": stage, "train_pairs": len(pairs), "steps": steps,
        "epochs": round(steps * cfg.batch_size / len(dataset), 2),
        "train_seconds": round(result.metrics["train_runtime"], 2)})


def stage_steps(cases: int, cfg: ClassifierConfig) -> int:
    """Optimiser steps of a stage: `epochs` over its cases, and never fewer than `min_steps`."""
    import math

    return max(math.ceil(cfg.epochs * cases / cfg.batch_size), cfg.min_steps, 1)


CONFIG = ClassifierConfig
