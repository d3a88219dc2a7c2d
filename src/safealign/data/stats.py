"""`safealign data stats`: per-split size, length and refusal statistics (SafeAlign paper, Table I)."""

from __future__ import annotations

import statistics

from safealign.data.curate import declines
from safealign.data.hh_rlhf import Pair


def _words(text: str) -> int:
    return len(text.split())


def _summary(values: list[int]) -> dict:
    if not values:
        return {"mean": 0.0, "median": 0.0, "max": 0}
    return {"mean": round(statistics.fmean(values), 2), "median": statistics.median(values), "max": max(values)}


def split_stats(pairs: list[Pair]) -> dict:
    n = len(pairs)
    share = (lambda k: round(k / n, 4) if n else 0.0)
    return {
        "pairs": n,
        "words_context": _summary([sum(_words(t["content"]) for t in p.context) for p in pairs]),
        "words_chosen": _summary([_words(p.chosen) for p in pairs]),
        "words_rejected": _summary([_words(p.rejected) for p in pairs]),
        "turns_per_dialogue": _summary([len(p.context) + 1 for p in pairs]),
        "chosen_refusal_share": share(sum(declines(p.chosen) for p in pairs)),
        "rejected_refusal_share": share(sum(declines(p.rejected) for p in pairs)),
        "identical_responses": sum(p.chosen == p.rejected for p in pairs),
    }


def data_stats(splits: dict[str, list[Pair]]) -> dict:
    """Stats per split and over all pairs."""
    every = [p for pairs in splits.values() for p in pairs]
    return {name: split_stats(pairs) for name, pairs in splits.items()} | {"all": split_stats(every)}
