"""The judge of each role, by spec: the offline judge, a hub judge by id, or a run directory for harm."""

from __future__ import annotations

import json
from pathlib import Path

from safealign.arms.common import RunScorer
from safealign.data.prompts import Prompt
from safealign.errors import SafeAlignError
from safealign.eval.judges.harm import HarmEmbeddingJudge
from safealign.eval.judges.helpfulness import HelpfulnessJudge
from safealign.eval.judges.hub import HubJudge, is_hub_judge
from safealign.eval.judges.refusal import RefusalRulesJudge


class RunHarmJudge(RunScorer):
    """A reward or cost model run used as the harm judge (scores oriented: higher = more harmful; threshold
    = its dev-split safety-F1 cut). The RL arms optimise against these models: a training signal, flagged."""

    role, training_signal = "harm", True

    def __init__(self, run_dir: str | Path):
        super().__init__(run_dir)
        self.trained_on = f"{self.run_dir} (this audit's HH-RLHF train split)"
        metrics = self.run_dir / "metrics.json"
        cut = json.loads(metrics.read_text())["safety_f1"]["threshold"] if metrics.is_file() else 0.0
        self.threshold = -cut if self.higher_is_better else cut

    def score(self, prompts: list[Prompt], responses: list[str]) -> list[float]:
        scores = super().score(prompts, responses)
        return [-s for s in scores] if self.higher_is_better else scores


def load_judge(role: str, spec: str, judges_dir: str | Path, batch_size: int = 8):
    """The judge for `role`: 'offline' (this role's offline judge, from `judges_dir`), a hub judge by id
    (eval/hub_judges.py), or for harm a reward_model / cost_model run directory."""
    if spec == "offline":
        if role == "refusal":
            return RefusalRulesJudge()
        if role == "harm":
            return HarmEmbeddingJudge.load(Path(judges_dir))
        return HelpfulnessJudge.load(Path(judges_dir))
    if is_hub_judge(spec):
        return HubJudge(spec, role, batch_size=batch_size)
    if role != "harm":
        raise SafeAlignError(f"judge for {role}: 'offline' or a hub judge id (got '{spec}')")
    return RunHarmJudge(spec)


def read_judges(judges_dir: str | Path) -> dict:
    path = Path(judges_dir) / "judges.json"
    if not path.is_file():
        raise SafeAlignError(f"{judges_dir}: no judges.json; build the judges with `safealign judges build --out DIR`")
    return json.loads(path.read_text())


def like_judged_cards(judges_dir: str | Path) -> dict:
    """The cards measured on labels of this run's own responses (`safealign judges check --of-run`), by
    "ROLE=SPEC" and labels file; {} when there are none or the judges are not built yet."""
    path = Path(judges_dir) / "judges.json"
    return _like_judged(json.loads(path.read_text())) if path.is_file() else {}


def _like_judged(data: dict) -> dict:
    like = {judge: {name: c for name, c in by_file.items() if c.get("like_judged")}
            for judge, by_file in data.get("labelled_cards", {}).items()}
    return {judge: by_file for judge, by_file in like.items() if by_file}


def judge_card(judges_dir: str | Path, role: str, spec: str) -> dict | None:
    """The validity card of `role`'s judge: the offline judge's, a hub judge's measured by `safealign judges
    card` (under `hub_cards`, by the spec as written), or None (a run directory, or a hub judge not measured).
    A card measured on labels of this run's own responses (`safealign judges check --of-run`, like_judged)
    takes its place, the largest such, with the one it replaces first among its other sources."""
    data = read_judges(judges_dir)
    card = data["cards"][role] if spec == "offline" else (data.get("hub_cards", {}).get(spec) or {}).get(role)
    like = list(_like_judged(data).get(f"{role}={spec}", {}).values())
    if not like:
        return card
    own = max(like, key=lambda c: c["n"])
    replaced = [{k: v for k, v in card.items() if k not in ("cross_source", "per_model")}] if card else []
    return own | {"cross_source": replaced + (card or {}).get("cross_source", [])}
