"""Training speed and peak memory of the discriminative arms against the libraries' defaults.

    python benchmarks/bench_arms.py [--train-pairs 400] [--arms reward_model,classifier,contrastive]

For each arm, two runs on the same MiniLM, the same first N embedded training pairs, one epoch, same
learning rate and batch size, each in a fresh process (so peak RSS is its own):

- safealign: the arm as shipped (pre-tokenised, context cut from the left, length-grouped batches,
  no gradient checkpointing);
- defaults: the library's own path with its defaults: trl's RewardTrainer on the raw dialogue text
  (RewardConfig defaults but bf16, which trl turns on and this CPU can only emulate: gradient checkpointing
  on, no truncation but a length filter, which is set to
  MiniLM's 512 positions since trl's 1024 would crash a BERT; and EOS set to [SEP], since trl appends an
  EOS that a BERT tokenizer does not have); transformers' Trainer with a text
  classifier on untruncated responses for the classifier; sentence-transformers' trainer with the
  model's own 256-token limit for the contrastive encoder.

Reports train pairs/s, peak RSS and test accuracy with its Wilson CI (accuracy must stay equal: the
target is >= 1.3x pairs/s at equal accuracy). Eval pairs/s of the shipped arm is measured too.
Results go to benchmarks/results/arms.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from bench_policies import in_fresh_process

RESULTS = Path(__file__).parent / "results" / "arms.json"


def run_variant(arm: str, variant: str, train_pairs: int, data: str) -> dict:
    """One (arm, variant) in a child process; returns its measurements."""
    return in_fresh_process("bench_arms", "child", arm, variant, train_pairs, data)


def child(arm: str, variant: str, train_pairs: int, data: str) -> dict:
    from safealign.arms.common import quiet_transformers

    quiet_transformers()
    out = Path(tempfile.mkdtemp(prefix=f"bench-{arm}-{variant}-"))
    start = time.perf_counter()
    if variant == "safealign":
        result = _shipped(arm, train_pairs, data, out)
    else:
        result = {"reward_model": _reward_defaults, "classifier": _classifier_defaults,
                  "contrastive": _contrastive_defaults}[arm](train_pairs, data, out)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    result["train_pairs_per_s"] = round(train_pairs / result["train_seconds"], 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # this process alone
    return result


def _shipped(arm: str, train_pairs: int, data: str, out: Path) -> dict:
    from safealign.arms import classifier, contrastive, reward_model
    from safealign.config import load_config

    module = {"reward_model": reward_model, "classifier": classifier, "contrastive": contrastive}[arm]
    overrides = [f"data={data}", f"out={out}", "save_steps=100000"]
    overrides += [f"raw_pairs={train_pairs}",
                  "stages=[raw]"] if arm == "classifier" else [f"max_train_pairs={train_pairs}"]
    cfg = load_config(module.CONFIG, None, overrides)
    module.train(cfg)
    summary = json.loads(next(out.rglob("safealign-complete.json")).read_text())
    start = time.perf_counter()
    metrics = module.evaluate(out)
    eval_seconds = time.perf_counter() - start
    return {"train_seconds": summary["train_seconds"], "accuracy": _accuracy(arm, metrics),
            "eval_seconds": round(eval_seconds, 1)}


def _accuracy(arm: str, metrics: dict) -> dict:
    if arm == "classifier":
        return metrics["stages"]["raw"]["raw"]["accuracy"]
    if arm == "contrastive":
        return metrics["after"]["pairwise_accuracy"]
    return metrics["raw"]["pairwise_accuracy"]


def _pairs(data: str, split: str, n: int | None = None):
    from safealign.arms.common import load_split

    return load_split(Path(data), split)[:n]


def _dialogue(pair, response: str) -> str:
    from safealign.data.hh_rlhf import context_text

    return f"{context_text(pair.context)}\n\nAssistant: {response}"


def _reward_defaults(train_pairs: int, data: str, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from safealign.eval.stats import rate
    from safealign.models import resolve

    folder = resolve("minilm")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.eos_token = tokenizer.sep_token  # trl appends EOS to raw text and crashes on BERT's None otherwise
    train = Dataset.from_list([{"chosen": _dialogue(p, p.chosen), "rejected": _dialogue(p, p.rejected)}
                               for p, _ in _pairs(data, "train", train_pairs)])
    # bf16=False: trl's configs default to bf16=True, which on a CPU without AVX512-BF16/AMX (this one) is
    # emulated: 400 pairs had not finished after 16 minutes, 100 pairs after 7. The comparison is against
    # trl's defaults otherwise.
    args = RewardConfig(output_dir=str(out), per_device_train_batch_size=16, num_train_epochs=1, learning_rate=5e-5,
                        report_to="none", seed=0, max_length=512, save_strategy="no", use_cpu=True, bf16=False)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    result = trainer.train()
    model.eval()
    right = 0
    test = _pairs(data, "test")
    with torch.no_grad():
        for pair, _ in test:
            scores = [model(**tokenizer(_dialogue(pair, r), truncation=True, max_length=512,
                                        return_tensors="pt")).logits[0, 0]
                      for r in (pair.chosen, pair.rejected)]
            right += int(scores[0] > scores[1])
    return {"train_seconds": result.metrics["train_runtime"], "train_pairs_kept": len(trainer.train_dataset),
            "accuracy": rate(right, len(test)).to_dict()}


def _classifier_defaults(train_pairs: int, data: str, out: Path) -> dict:
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from safealign.eval.stats import rate
    from safealign.models import resolve

    folder = resolve("minilm")
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def cases(pairs):
        rows = [{"text": r, "label": y} for p, _ in pairs for r, y in ((p.chosen, 0), (p.rejected, 1))]
        return Dataset.from_list(rows).map(lambda b: tokenizer(b["text"], truncation=True), batched=True,
                                           remove_columns=["text"])

    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=16, num_train_epochs=1,
                             learning_rate=5e-5, report_to="none", seed=0, save_strategy="no", use_cpu=True)
    trainer = Trainer(model=model, args=args, train_dataset=cases(_pairs(data, "train", train_pairs)),
                      data_collator=DataCollatorWithPadding(tokenizer))
    result = trainer.train()
    test = cases(_pairs(data, "test"))
    predicted = np.argmax(trainer.predict(test).predictions, axis=-1)
    right = int((predicted == np.array(test["label"])).sum())
    return {"train_seconds": result.metrics["train_runtime"], "accuracy": rate(right, len(test)).to_dict()}


def _contrastive_defaults(train_pairs: int, data: str, out: Path) -> dict:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric, TripletLoss

    from safealign.data.hh_rlhf import context_text
    from safealign.eval.stats import rate
    from safealign.models import resolve

    model = SentenceTransformer(resolve("minilm"), device="cpu")  # its own max_seq_length (256)
    pairs = _pairs(data, "train", train_pairs)
    train = Dataset.from_dict({"anchor": [context_text(p.context) for p, _ in pairs],
                               "positive": [p.chosen for p, _ in pairs], "negative": [p.rejected for p, _ in pairs]})
    args = SentenceTransformerTrainingArguments(output_dir=str(out), per_device_train_batch_size=32,
                                                num_train_epochs=1, learning_rate=2e-5, report_to="none", seed=0,
                                                save_strategy="no", use_cpu=True)
    loss = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=0.5)
    result = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
    test = _pairs(data, "test")
    a = model.encode([context_text(p.context) for p, _ in test], normalize_embeddings=True)
    c = model.encode([p.chosen for p, _ in test], normalize_embeddings=True)
    r = model.encode([p.rejected for p, _ in test], normalize_embeddings=True)
    right = int(((a * c).sum(1) > (a * r).sum(1)).sum())
    return {"train_seconds": result.metrics["train_runtime"], "accuracy": rate(right, len(test)).to_dict()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-pairs", type=int, default=400)
    parser.add_argument("--arms", default="reward_model,classifier,contrastive")
    args = parser.parse_args()
    from safealign.arms.common import labelled_data

    data = str(labelled_data("embedded", Path(tempfile.mkdtemp(prefix="bench-data-"))))
    results = {"train_pairs": args.train_pairs, "machine": {"cores": len(__import__("os").sched_getaffinity(0))},
               "measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "arms": {}}
    for arm in args.arms.split(","):
        rows = {variant: run_variant(arm, variant, args.train_pairs, data) for variant in ("safealign", "defaults")}
        rows["speedup"] = round(rows["safealign"]["train_pairs_per_s"] / rows["defaults"]["train_pairs_per_s"], 2)
        results["arms"][arm] = rows
        print(json.dumps({arm: rows}, indent=2), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
