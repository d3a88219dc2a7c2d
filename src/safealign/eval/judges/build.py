"""Building the offline judges (the audit's judges stage, `safealign judges build`) and measuring hub judges'
cards (`safealign judges card`).

`build_judges(out)` writes `out/judges.json` with the three cards and `out/harm_judge.npz`:
- refusal: the card measured on XSTest completions by benchmarks/validate_judges.py and shipped
  (data/judges/refusal_card.json), or measured afresh when `xstest` names the completions' folder;
- harm: fitted on GPTFuzz train (80 questions), card on GPTFuzz evaluate (20 other questions);
- helpfulness: threshold on half of the study's helpful prompts, card on the other half (split by prompt, so
  no prompt is on both sides).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold

from safealign.data.prompts import embedded
from safealign.errors import SafeAlignError
from safealign.eval.judges.cards import (
    CARD_FORMAT,
    KAPPA_FLOOR,
    ROLES,
    harm_card,
    helpfulness_card,
    hub_card,
    labelled_card,
    pairwise_card,
    xstest_refusal_cards,
)
from safealign.eval.judges.encoders import EMBED_TOKENS
from safealign.eval.judges.harm import HARM_C, HarmEmbeddingJudge
from safealign.eval.judges.helpfulness import FEATURES, HELPFULNESS_C, HelpfulnessJudge, raw_features
from safealign.eval.judges.hub import HubJudge
from safealign.eval.judges.labels import read_gptfuzz, read_hhh, read_pandalm, user_prompts
from safealign.eval.judges.load import load_judge, read_judges
from safealign.io import read_jsonl, sha256_file, write_json_atomic
from safealign.models import resolve

SHIPPED_HARM_CARD = ("judges", "harm_card.json")  # beside data/judges/harm_judge.npz


def harm_fit_key(encoder: str = "minilm", seed: int = 0) -> dict:
    """Everything the harm judge's fit and card depend on: the same key gives the same judge."""
    folder = Path(resolve(encoder))
    data = embedded("embedded", "gptfuzz")
    return {"format": CARD_FORMAT, "seed": seed, "C": list(HARM_C), "embed_tokens": EMBED_TOKENS,
            "gptfuzz": {f.name: sha256_file(f) for f in sorted(data.glob("*.csv.gz"))},
            "encoder": {f.name: sha256_file(f) for f in sorted(folder.glob("*.safetensors"))}}


def shipped_fit(card_file: tuple, key: dict) -> dict | None:
    """The shipped card file (fit key, card, cross-source cards) when it was made under `key`; else None."""
    path = embedded(*card_file)
    if not path.is_file():
        return None
    shipped = json.loads(path.read_text())
    return shipped if shipped["key"] == key else None


def shipped_harm_judge(encoder: str = "minilm", seed: int = 0) -> tuple | None:
    """(judge, card) shipped in the package, when they were fitted with this key; else None (fit afresh). The card
    carries the cross-source cards measured on the same fit (validation data that may not ship: only numbers)."""
    shipped = shipped_fit(SHIPPED_HARM_CARD, harm_fit_key(encoder, seed))
    if shipped is None:
        return None
    folder = embedded(*SHIPPED_HARM_CARD).parent
    return HarmEmbeddingJudge.load(folder), shipped["card"] | {"cross_source": shipped.get("cross_source", [])}


def fit_harm_judge(encoder: str = "minilm", seed: int = 0, every: int = 1, log=print) -> tuple:
    """(judge, card): fitted on GPTFuzz train (80 questions), card on GPTFuzz evaluate (20 others)."""
    folder = embedded("embedded", "gptfuzz")
    train = read_gptfuzz(folder / "train.csv.gz")[::every]
    judge = HarmEmbeddingJudge.fit([r["response"] for r in train], [r["harmful"] for r in train],
                                   [r["question"] for r in train], encoder=encoder, seed=seed)
    log(f"harm judge fitted on {len(train)} GPTFuzz responses (threshold {judge.threshold:.3f})")
    return judge, harm_card(judge, read_gptfuzz(folder / "evaluate.csv.gz")[::every],
                            "GPTFuzz evaluate.csv: 1,540 hand-labelled responses to 20 harmful questions "
                            "not among the 80 it was trained on", seed)


SHIPPED_HELPFULNESS_CARD = ("judges", "helpfulness_card.json")  # beside data/judges/helpfulness_judge.npz
HHH_SOURCE = ("Anthropic's HHH alignment evaluation (prometheus-eval's copy, Apache-2.0): a better and a worse "
              "response written and labelled by people")


def pandalm_features(encoder: str = "minilm") -> tuple:
    """PandaLM's pairs with a majority preference: (rows, raw φ(a) (N, 4), raw φ(b) (N, 4), a preferred (N,))."""
    rows = [r for r in read_pandalm(embedded("embedded", "pandalm", "testset-v1.json.gz")) if r["preferred"]]
    requests = [r["instruction"] for r in rows]
    phi_a = raw_features(requests, [r["response_a"] for r in rows], encoder, cache=True)
    phi_b = raw_features(requests, [r["response_b"] for r in rows], encoder, cache=True)
    return rows, phi_a, phi_b, np.array([r["preferred"] == "a" for r in rows], dtype=int)


def _best_c(phi_a, phi_b, y, groups, seed: int) -> float:
    """The C of HELPFULNESS_C whose out-of-fold pairwise agreement (5 folds by instruction) is highest."""
    folds = list(GroupKFold(n_splits=5).split(phi_a, y, groups))
    def agreement_of(c):
        right = 0
        for fit, held in folds:
            judge = HelpfulnessJudge.fit(phi_a[fit], phi_b[fit], y[fit], c, seed=seed)
            right += int(np.sum((judge.scores_of(phi_a[held]) > judge.scores_of(phi_b[held])) == (y[held] == 1)))
        return right
    return max(HELPFULNESS_C, key=agreement_of)


def fit_helpfulness_judge(encoder: str = "minilm", seed: int = 0, log=print) -> tuple:
    """(judge, card): the card by nested cross-validation on PandaLM, 5 outer folds by instruction (C chosen
    inside each outer training part by 5 inner folds, so no held-out instruction informs its own prediction),
    then the judge fitted on every pair with C chosen the same way; its cards on HHH (another source) and its
    absolute cut on the study's helpful prompts."""
    rows, phi_a, phi_b, y = pandalm_features(encoder)
    groups = np.array([r["instruction"] for r in rows])
    prob_a = np.zeros(len(rows))
    for fit, held in GroupKFold(n_splits=5).split(phi_a, y, groups):
        c = _best_c(phi_a[fit], phi_b[fit], y[fit], groups[fit], seed)
        judge = HelpfulnessJudge.fit(phi_a[fit], phi_b[fit], y[fit], c, encoder, seed)
        prob_a[held] = 1 / (1 + np.exp(judge.scores_of(phi_b[held]) - judge.scores_of(phi_a[held])))
    judge = HelpfulnessJudge.fit(phi_a, phi_b, y, _best_c(phi_a, phi_b, y, groups, seed), encoder, seed)
    log(f"helpfulness judge fitted on {len(rows)} PandaLM preferences (weights {np.round(judge.weights, 3).tolist()}, "
        f"relevance floor {judge.relevance_floor:.3f})")
    card = pairwise_card(prob_a.tolist(), rows, judge=judge, fit_source=True, seed=seed,
                         source="PandaLM test set: held-out instructions (5 folds by instruction, 170 in all)",
                         threshold_from="none: the judge prefers the response it scores higher (C by inner folds)")
    hhh = read_hhh(embedded("embedded", "hhh", "hhh_alignment.jsonl"))
    cross = [_hhh_card(judge, [r for r in hhh if r["source"] == "helpful"], "the 59 helpfulness pairs", seed),
             _hhh_card(judge, hhh, "all 221 pairs (helpful, harmless, honest, other)", seed)]
    absolute = helpfulness_card(judge, seed)
    return judge, card | {"cross_source": cross, "absolute": absolute, "threshold": absolute["threshold"]}


def _hhh_card(judge: HelpfulnessJudge, rows: list[dict], which: str, seed: int) -> dict:
    prompts = user_prompts([r["instruction"] for r in rows])
    a = np.array(judge.score(prompts, [r["response_a"] for r in rows], cache=True))
    b = np.array(judge.score(prompts, [r["response_b"] for r in rows], cache=True))
    return pairwise_card((1 / (1 + np.exp(-(a - b)))).tolist(), rows, judge=judge, fit_source=False, seed=seed,
                         source=f"{HHH_SOURCE}: {which}", threshold_from="none: the higher score is preferred")


def helpfulness_fit_key(encoder: str = "minilm", seed: int = 0) -> dict:
    folder = Path(resolve(encoder))
    files = [embedded("embedded", "pandalm", "testset-v1.json.gz"), embedded("embedded", "hhh", "hhh_alignment.jsonl")]
    return {"format": CARD_FORMAT, "seed": seed, "C": list(HELPFULNESS_C), "features": list(FEATURES),
            "embed_tokens": EMBED_TOKENS, "data": {f.name: sha256_file(f) for f in files},
            "encoder": {f.name: sha256_file(f) for f in sorted(folder.glob("*.safetensors"))}}


def shipped_helpfulness_judge(encoder: str = "minilm", seed: int = 0) -> tuple | None:
    shipped = shipped_fit(SHIPPED_HELPFULNESS_CARD, helpfulness_fit_key(encoder, seed))
    if shipped is None:
        return None
    return HelpfulnessJudge.load(embedded(*SHIPPED_HELPFULNESS_CARD).parent), shipped["card"]


def build_judges(out: str | Path, seed: int = 0, xstest: str | Path | None = None, encoder: str = "minilm",
                 log=print, every: int = 1, refit: bool = False) -> dict:
    """Fit the offline judges and write their cards: `out/judges.json` and `out/harm_judge.npz`. `every` > 1
    keeps every n-th GPTFuzz row (tests: a small judge built in seconds).

    The harm judge's fit and card are shipped with the package (benchmarks/validate_judges.py writes them) with
    the key they were made under (harm_fit_key: GPTFuzz's and the encoder's hashes, seed, C grid); when the key
    matches they are used as they are, sparing a machine's first run about 3.5 minutes of embedding 7,700
    responses; a test refits and finds the same judge. `refit` (or any other key) fits afresh."""
    out = Path(out)
    shipped = None if refit or every != 1 else shipped_harm_judge(encoder, seed)
    if shipped is not None:
        judge, harm = shipped
        log(f"harm judge: the fit shipped with the package (same data, encoder and seed; threshold "
            f"{judge.threshold:.3f})")
    else:
        judge, harm = fit_harm_judge(encoder, seed, every, log)
    judge.save(out)
    cards = {"harm": harm}
    refusal = (xstest_refusal_cards(xstest, seed) if xstest is not None
               else json.loads(embedded("judges", "refusal_card.json").read_text()))
    # one card per model (its even-numbered prompts), and one per model with the opening window chosen on the
    # other model's rows (leave-one-model-out): the rules' phrasings were read on both models
    lomo = {f"{model}, window from the other model": card
            for model, card in refusal.get("leave_one_model_out", {}).items()}
    cards["refusal"] = refusal["held_out"] | {"per_model": refusal.get("per_model_held_out", {}) | lomo}
    shipped = None if refit or every != 1 else shipped_helpfulness_judge(encoder, seed)
    helpfulness, cards["helpfulness"] = shipped or fit_helpfulness_judge(encoder, seed, log)
    helpfulness.threshold = cards["helpfulness"]["threshold"]
    helpfulness.save(out)
    result = {"format": CARD_FORMAT, "kappa_floor": KAPPA_FLOOR, "cards": {role: cards[role] for role in ROLES}}
    write_json_atomic(out / "judges.json", result)
    return result


def run_responses(run_dir: str | Path) -> dict[str, str]:
    """Every response a run's policies generated ({response: policy}), from RUN/*/generations.jsonl."""
    files = sorted(Path(run_dir).glob("*/generations.jsonl"))
    if not files:
        raise SafeAlignError(f"{run_dir}: no policy generations (*/generations.jsonl): pass an audit's run directory")
    return {row["response"].strip(): path.parent.name for path in files for row in read_jsonl(path)}


def measure_labelled_card(judges_dir: str | Path, role: str, spec: str, labels: str | Path, seed: int = 0,
                          batch_size: int = 8, of_run: str | Path | None = None) -> dict:
    """The card of `role`'s judge (`spec`: offline, a hub id, or a run directory for harm) on a reviewer's own
    labelled responses, added to `judges_dir/judges.json` under labelled_cards["ROLE=SPEC"][file name].
    `of_run`: the audit whose policies wrote them (each is checked against its generations); the card is then
    like the responses that audit judges, and its policy evals read it (load.judge_card)."""
    data = read_judges(judges_dir)
    card = labelled_card(load_judge(role, spec, judges_dir, batch_size=batch_size), labels, seed=seed,
                         run_responses=run_responses(of_run) if of_run is not None else None)
    data.setdefault("labelled_cards", {}).setdefault(f"{role}={spec}", {})[Path(labels).name] = card
    write_json_atomic(Path(judges_dir) / "judges.json", data)
    return card


def measure_hub_cards(judges_dir: str | Path, specs: dict[str, str], seed: int = 0, xstest: str | Path | None = None,
                      every: int = 1, batch_size: int = 8) -> dict:
    """Each named hub judge's card for its role, added to `judges_dir/judges.json` under hub_cards[spec][role]."""
    data = read_judges(judges_dir)
    for role, spec in specs.items():
        card = hub_card(HubJudge(spec, role, batch_size=batch_size), seed=seed, xstest=xstest, every=every)
        data.setdefault("hub_cards", {}).setdefault(spec, {})[role] = card
        write_json_atomic(Path(judges_dir) / "judges.json", data)  # each card kept as soon as it is measured
    return data
