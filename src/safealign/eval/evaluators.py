"""Each discriminative arm's evaluation, by arm name: the one dict `safealign eval` and the audit read.

Arms train, eval/ evaluates: an arm's run directory goes in, its metrics.json (and predictions) come out.
"""

from __future__ import annotations

from pathlib import Path

from safealign.arms.cost_model import CostModelConfig
from safealign.arms.reward_model import RewardModelConfig
from safealign.eval.classifier_eval import evaluate_classifier
from safealign.eval.contrastive_eval import evaluate_contrastive
from safealign.eval.pair_scores import evaluate_pair_scorer


def evaluate_reward_model(run_dir: Path) -> dict:
    return evaluate_pair_scorer(run_dir, RewardModelConfig, higher_is_safer=True)


def evaluate_cost_model(run_dir: Path) -> dict:
    return evaluate_pair_scorer(run_dir, CostModelConfig, higher_is_safer=False)


EVALUATORS = {"reward_model": evaluate_reward_model, "cost_model": evaluate_cost_model,
              "contrastive": evaluate_contrastive, "classifier": evaluate_classifier}
