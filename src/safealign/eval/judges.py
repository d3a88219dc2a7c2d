"""Judges of (prompt, response): a refusal detector, this run's reward and cost models, any HF reward model.

A judge maps lists of prompts and responses to one float each. The reward model and any HF reward model
score helpfulness/harmlessness (higher is better); the cost model scores harm (higher is worse); the
refusal detector scores 1.0 for a refusal, 0.0 otherwise.
"""

from __future__ import annotations

from pathlib import Path

from safealign.data.prompts import Prompt
from safealign.refusal import is_refusal
from safealign.models import load_for_inference, tokenizer_options


class RefusalJudge:
    name, higher_is_better = "refusal", None

    def score(self, prompts: list[Prompt], responses: list[str]) -> list[float]:
        return [float(is_refusal(r)) for r in responses]


class RunJudge:
    """The reward model or cost model of a run directory, read the way it was trained."""

    def __init__(self, run_dir: str | Path):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from safealign.arms.common import MODEL_DIR, read_run
        from safealign.audit import DISCRIMINATIVE

        self.run_dir = Path(run_dir)
        self.name, _ = read_run(self.run_dir)
        if self.name not in ("reward_model", "cost_model"):
            raise ValueError(f"{run_dir}: a judge is a reward_model or cost_model run, not {self.name}")
        _, self.cfg = read_run(self.run_dir, DISCRIMINATIVE[self.name].CONFIG)
        self.higher_is_better = self.name == "reward_model"
        self.tokenizer = AutoTokenizer.from_pretrained(self.run_dir / MODEL_DIR, **tokenizer_options())
        self.model = load_for_inference(AutoModelForSequenceClassification, self.run_dir / MODEL_DIR)

    def score(self, prompts: list[Prompt], responses: list[str]) -> list[float]:
        from safealign.arms.common import encode, score_sequences

        sequences = [encode(self.tokenizer, list(p.messages), r or " ", self.cfg.max_length,
                            self.cfg.max_response_tokens) for p, r in zip(prompts, responses)]
        return score_sequences(self.model, sequences, self.tokenizer.pad_token_id, self.cfg.eval_batch_size,
                               f"judging with {self.name}")[:, 0].tolist()


class HubRewardJudge:
    """An HF reward model by id or folder, e.g. OpenAssistant/reward-model-deberta-v3-large-v2 (the study's
    judge), read as it is meant to be: tokenizer(question, answer) -> one logit."""

    higher_is_better = True

    def __init__(self, name: str, batch_size: int = 16):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from safealign.models import resolve

        folder = resolve(name)
        self.name, self.batch_size = name, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
        self.model = load_for_inference(AutoModelForSequenceClassification, folder)

    def score(self, prompts: list[Prompt], responses: list[str]) -> list[float]:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                batch = self.tokenizer([p.text for p in prompts[i: i + self.batch_size]],
                                       responses[i: i + self.batch_size], padding=True, truncation=True,
                                       max_length=512, return_tensors="pt")
                out += self.model(**batch.to(self.model.device)).logits[:, 0].float().tolist()
        return out
