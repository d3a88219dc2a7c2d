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

from safealign.data.prompts import embedded
from safealign.eval.judges.cards import (
    CARD_FORMAT,
    KAPPA_FLOOR,
    ROLES,
    harm_card,
    helpfulness_card,
    hub_card,
    xstest_refusal_cards,
)
from safealign.eval.judges.encoders import EMBED_TOKENS
from safealign.eval.judges.harm import HARM_C, HarmEmbeddingJudge
from safealign.eval.judges.helpfulness import RelevanceJudge
from safealign.eval.judges.hub import HubJudge
from safealign.eval.judges.labels import read_gptfuzz
from safealign.eval.judges.load import read_judges
from safealign.io import sha256_file, write_json_atomic
from safealign.models import resolve

SHIPPED_HARM_CARD = ("judges", "harm_card.json")  # beside data/judges/harm_judge.npz


def harm_fit_key(encoder: str = "minilm", seed: int = 0) -> dict:
    """Everything the harm judge's fit and card depend on: the same key gives the same judge."""
    folder = Path(resolve(encoder))
    data = embedded("embedded", "gptfuzz")
    return {"format": CARD_FORMAT, "seed": seed, "C": list(HARM_C), "embed_tokens": EMBED_TOKENS,
            "gptfuzz": {f.name: sha256_file(f) for f in sorted(data.glob("*.csv.gz"))},
            "encoder": {f.name: sha256_file(f) for f in sorted(folder.glob("*.safetensors"))}}


def shipped_harm_judge(encoder: str = "minilm", seed: int = 0) -> tuple | None:
    """(judge, card) shipped in the package, when they were fitted with this key; else None (fit afresh). The card
    carries the cross-source cards measured on the same fit (validation data that may not ship: only numbers)."""
    path = embedded(*SHIPPED_HARM_CARD)
    if not path.is_file():
        return None
    shipped = json.loads(path.read_text())
    if shipped["key"] != harm_fit_key(encoder, seed):
        return None
    cross = shipped.get("cross_source", [])
    return HarmEmbeddingJudge.load(path.parent), shipped["card"] | {"cross_source": cross}


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
        log(f"harm judge: the fit shipped with the package (same data, encoder and seed; threshold {judge.threshold:.3f})")
    else:
        judge, harm = fit_harm_judge(encoder, seed, every, log)
    judge.save(out)
    cards = {"harm": harm}
    refusal = (xstest_refusal_cards(xstest, seed) if xstest is not None
               else json.loads(embedded("judges", "refusal_card.json").read_text()))
    # one card per model it was not written on alone: the rules read both models' odd-numbered prompts
    cards["refusal"] = refusal["held_out"] | {"per_model": refusal.get("per_model_held_out", {})}
    helpfulness = RelevanceJudge(encoder=encoder)
    cards["helpfulness"] = helpfulness_card(helpfulness, seed)
    result = {"format": CARD_FORMAT, "kappa_floor": KAPPA_FLOOR, "cards": {role: cards[role] for role in ROLES}}
    write_json_atomic(out / "judges.json", result)
    return result


def measure_hub_cards(judges_dir: str | Path, specs: dict[str, str], seed: int = 0, xstest: str | Path | None = None,
                      every: int = 1, batch_size: int = 8) -> dict:
    """Each named hub judge's card for its role, added to `judges_dir/judges.json` under hub_cards[spec][role]."""
    data = read_judges(judges_dir)
    for role, spec in specs.items():
        card = hub_card(HubJudge(spec, role, batch_size=batch_size), seed=seed, xstest=xstest, every=every)
        data.setdefault("hub_cards", {}).setdefault(spec, {})[role] = card
        write_json_atomic(Path(judges_dir) / "judges.json", data)  # each card kept as soon as it is measured
    return data
