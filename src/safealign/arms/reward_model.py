"""Arm A: a pairwise Bradley–Terry reward model on (context, response), trained with trl's RewardTrainer.

    loss = -log σ(r(x, y_chosen) - r(x, y_rejected))          (losses.bradley_terry; trl computes the same)

Pairs are tokenised here (context cut from the left, see arms/common.py) and handed to RewardTrainer
pre-tokenised, so trl neither re-tokenises nor drops long pairs; batches are grouped by length.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from safealign.arms.common import (
    ArmConfig,
    encode,
    finish_run,
    is_trained,
    labelled_data,
    load_split,
    quiet_transformers,
    run_trainer,
    start_run,
    training_arguments,
    write_pair_ids,
)
from safealign.data.hh_rlhf import Pair
from safealign.models import load_options, resolve, tokenizer_options

ARM = "reward_model"


@dataclass
class RewardModelConfig(ArmConfig):
    train_on: Literal["benign", "clean", "all"] = field(default="benign", metadata={
        "help": "benign (default): the pairs whose rejected response is harm-free (S8), preferred for helpfulness, "
                "as Safe RLHF's reward model learns helpfulness apart from harmlessness; all: every pair"})
    center_rewards_coefficient: float | None = field(default=None, metadata={
        "help": "weight of trl's mean-squared-reward penalty that centres rewards on 0 (None: off)"})


HUMAN_HELPFULNESS = "people's helpfulness label (the source's better response chosen, every pair)"


def helpfulness_pairs(prepared: Path, cfg: RewardModelConfig) -> tuple[list, str]:
    """(the (pair, labels) rows the reward model learns from, what they are). A source whose pairs carry people's
    helpfulness label (PKU-SafeRLHF's better_response_id, read into meta['chosen_is_better']) gives every train
    pair, oriented so that the better response is chosen, whatever preference the data was prepared with: Safe
    RLHF's own reward data. Otherwise the taxonomy's reading: `train_on` (benign: the rejected response is
    harm-free, so it was rejected for helpfulness)."""
    every = load_split(prepared, "train")
    if every and all("chosen_is_better" in pair.meta for pair, _ in every):
        return [(pair if pair.meta["chosen_is_better"] else swapped(pair), labels) for pair, labels in every], \
            HUMAN_HELPFULNESS
    return load_split(prepared, "train", cfg.train_on), cfg.train_on


def swapped(pair: Pair) -> Pair:
    """The same pair with chosen and rejected exchanged (and the per-side flags that travel with them)."""
    flip = {"chosen_safe": "rejected_safe", "rejected_safe": "chosen_safe"}
    meta = {flip.get(k, k): v for k, v in pair.meta.items()}
    meta |= {k: not pair.meta[k] for k in ("chosen_is_better", "chosen_is_safer") if k in pair.meta}
    return replace(pair, chosen=pair.rejected, rejected=pair.chosen, meta=meta)


def preference_rows(tokenizer, pairs, cfg: ArmConfig) -> list[dict]:
    rows = []
    for pair, _ in pairs:
        chosen = encode(tokenizer, pair.context, pair.chosen, cfg.max_length, cfg.max_response_tokens)
        rejected = encode(tokenizer, pair.context, pair.rejected, cfg.max_length, cfg.max_response_tokens)
        rows.append({"chosen_ids": chosen, "rejected_ids": rejected, "length": max(len(chosen), len(rejected))})
    return rows


def train(cfg: RewardModelConfig) -> Path:
    run_dir = start_run(ARM, cfg)
    if is_trained(run_dir):
        return run_dir
    quiet_transformers()
    from datasets import Dataset
    from transformers import AutoTokenizer, set_seed
    from trl import RewardConfig, RewardTrainer

    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    folder = resolve(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
    pairs, trained_on = helpfulness_pairs(prepared, cfg)
    pairs = pairs[: cfg.max_train_pairs]
    write_pair_ids(run_dir, pairs)
    dataset = Dataset.from_list(preference_rows(tokenizer, pairs, cfg))
    set_seed(cfg.seed)  # the new score head is drawn from this seed
    model = load_scorer(folder, tokenizer)
    args = training_arguments(RewardConfig, cfg, run_dir, max_length=None,
                              center_rewards_coefficient=cfg.center_rewards_coefficient)
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = run_trainer(trainer, run_dir)
    finish_run(run_dir, trainer, tokenizer=tokenizer, summary={
        "train_pairs": len(dataset), "train_on": trained_on, "prepared": str(prepared),
        "train_seconds": round(result.metrics["train_runtime"], 2)})
    return run_dir


def load_scorer(folder: str, tokenizer):
    """A one-output sequence classifier on `folder`, with a pad token the model knows."""
    from transformers import AutoModelForSequenceClassification

    if tokenizer.pad_token is None:  # decoder tokenizers: pad with eos, read the score at the last token
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, **load_options())
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


CONFIG = RewardModelConfig
