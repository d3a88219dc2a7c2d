"""Safe RLHF's cost model: harmlessness preference (the rejected response costs more) + the safety sign.

    loss = -log σ(c(x, y_rejected) - c(x, y_chosen)) + w · mean_labelled( -log σ(s · c(x, y)) )

s = +1 for an unsafe response (a rejected one that hits S1-S7), -1 for a safe one (a refusal or an S8
response), and unlabelled responses (a chosen one that hits S1-S7 without refusing) are left out of the
sign term. After training, c > 0 reads as unsafe and c < 0 as safe (see losses.cost_loss).

trl has no trainer for this loss, so the arm wraps transformers' Trainer with one `compute_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from safealign.arms.common import (
    ArmConfig,
    finish_run,
    is_trained,
    labelled_data,
    load_split,
    pad_batch,
    quiet_transformers,
    run_trainer,
    start_run,
    training_arguments,
    write_pair_ids,
)
from safealign.arms.reward_model import load_scorer, preference_rows, swapped
from safealign.losses import cost_loss
from safealign.models import resolve, tokenizer_options

ARM = "cost_model"
SIGN = {"unsafe": 1, "safe": -1, "unknown": 0}


@dataclass
class CostModelConfig(ArmConfig):
    train_on: Literal["clean", "benign", "all"] = field(default="clean", metadata={
        "help": "clean (default): the pairs whose rejected response is harmful (S1-S7), the harmlessness "
                "preference, apart from the reward model's helpfulness pairs; all: every pair"})
    sign_weight: float = field(default=1.0, metadata={"help": "weight w of the safety-sign term"})
    sign_balance: bool = field(default=True, metadata={
        "help": "weight the sign term's unsafe responses by n_safe / n_unsafe of the training labels, so that the "
                "rarer class does not pull C = 0 past it (false: a plain mean over labelled responses)"})
    sign_pairs: int = field(default=500, metadata={
        "help": "pairs of the rest of the train split (not train_on) whose labelled responses join the safety-sign "
                "term only, so the cost model also sees harm-free (S8, safe) responses and C = 0 separates safe "
                "from unsafe (Safe RLHF's d = 0 needs it); 0: none"})


def cost_rows(tokenizer, pairs, cfg: ArmConfig, preference: bool = True) -> list[dict]:
    """The reward model's encoded pairs, each with the safety signs of its two responses and whether its
    preference enters the loss (False: its responses feed the sign term only)."""
    return [row | {"chosen_sign": SIGN[labels["chosen_safety"]], "rejected_sign": SIGN[labels["rejected_safety"]],
                   "preference": preference}
            for row, (_, labels) in zip(preference_rows(tokenizer, pairs, cfg), pairs)]


class CostCollator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        ids, mask = pad_batch([r["chosen_ids"] for r in rows] + [r["rejected_ids"] for r in rows], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask,  # (2B, T): chosen rows first, then rejected
                "chosen_sign": torch.tensor([r["chosen_sign"] for r in rows]),
                "rejected_sign": torch.tensor([r["rejected_sign"] for r in rows]),
                "preference": torch.tensor([r.get("preference", True) for r in rows])}


def unsafe_weight_of(signs: list[int]) -> float:
    """n_safe / n_unsafe over the labelled responses (1 when either class is absent)."""
    unsafe, safe = signs.count(1), signs.count(-1)
    return safe / unsafe if unsafe and safe else 1.0


def _cost_trainer_class(sign_weight: float, unsafe_weight: float = 1.0):
    from transformers import Trainer

    class CostTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            costs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, 0]  # (2B,)
            chosen, rejected = costs.chunk(2)
            loss = cost_loss(chosen, rejected, inputs["chosen_sign"], inputs["rejected_sign"], sign_weight,
                             inputs["preference"], unsafe_weight)
            return (loss, {"costs": costs}) if return_outputs else loss

    return CostTrainer


def train(cfg: CostModelConfig) -> Path:
    run_dir = start_run(ARM, cfg)
    if is_trained(run_dir):
        return run_dir
    quiet_transformers()
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainingArguments, set_seed

    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    folder = resolve(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
    pairs = [(pair if pair.meta.get("chosen_is_safer", True) else swapped(pair), labels)  # people's safer label
             for pair, labels in load_split(prepared, "train", cfg.train_on)][: cfg.max_train_pairs]
    write_pair_ids(run_dir, pairs)
    chosen_ids = {p.id for p, _ in pairs}
    sign_only = [(p, labels) for p, labels in load_split(prepared, "train")
                 if p.id not in chosen_ids][: cfg.sign_pairs]
    dataset = Dataset.from_list(cost_rows(tokenizer, pairs, cfg) + cost_rows(tokenizer, sign_only, cfg, False))
    signs = [r["rejected_sign"] for r in dataset] + [r["chosen_sign"] for r in dataset]
    unsafe_weight = unsafe_weight_of(signs) if cfg.sign_balance else 1.0
    set_seed(cfg.seed)
    model = load_scorer(folder, tokenizer)
    trainer = _cost_trainer_class(cfg.sign_weight, unsafe_weight)(
        model=model, args=training_arguments(TrainingArguments, cfg, run_dir), train_dataset=dataset,
        data_collator=CostCollator(tokenizer.pad_token_id))
    result = run_trainer(trainer, run_dir)
    finish_run(run_dir, trainer, tokenizer=tokenizer, summary={
        "train_pairs": len(pairs), "sign_only_pairs": len(sign_only), "train_on": cfg.train_on,
        "prepared": str(prepared),
        "unsafe_labels": signs.count(1),
        "safe_labels": signs.count(-1), "unsafe_weight": round(unsafe_weight, 4),
        "train_seconds": round(result.metrics["train_runtime"], 2)})
    return run_dir


CONFIG = CostModelConfig
