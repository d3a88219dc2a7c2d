"""Keyword baselines: what the harm taxonomy alone gets right, the floor every learned arm must beat.

- pairwise: a pair is right when its rejected response hits more taxonomy patterns than its chosen one
  (a tie, most often 0 vs 0, is wrong: the baseline cannot tell the two apart);
- binary: every response is a case, chosen = safe and rejected = unsafe; predicted unsafe when it hits
  any pattern. Accuracy, precision, recall and F1 of the "unsafe" class.

Both are reported with Wilson 95% intervals on the raw test split and on its Clean subset. On Clean, every
rejected response hits a pattern by construction (that is how Clean is made), so binary recall there is
1.0 and the Clean figures are an upper bound for the keyword method, not an independent test.
"""

from __future__ import annotations

from safealign.data.hh_rlhf import Pair
from safealign.data.taxonomy import Taxonomy
from safealign.eval.metrics import binary_metrics
from safealign.eval.stats import rate


def pairwise_predictions(pairs: list[Pair], taxonomy: Taxonomy) -> list[dict]:
    rows = []
    for pair in pairs:
        chosen_hits = sum(taxonomy.hit_counts(pair.chosen).values())
        rejected_hits = sum(taxonomy.hit_counts(pair.rejected).values())
        rows.append({"id": pair.id, "chosen_hits": chosen_hits, "rejected_hits": rejected_hits,
                     "correct": rejected_hits > chosen_hits, "tie": rejected_hits == chosen_hits})
    return rows


def binary_predictions(pairs: list[Pair], taxonomy: Taxonomy) -> list[dict]:
    rows = []
    for pair in pairs:
        for response, unsafe in ((pair.chosen, False), (pair.rejected, True)):
            predicted = taxonomy.label(response) != [taxonomy.benign]
            rows.append({"id": pair.id, "unsafe": unsafe, "predicted_unsafe": predicted})
    return rows


def keyword_baselines(pairs: list[Pair], taxonomy: Taxonomy) -> tuple[dict, list[dict], list[dict]]:
    """(metrics, pairwise per-pair rows, binary per-response rows) on `pairs`."""
    pairwise = pairwise_predictions(pairs, taxonomy)
    binary = binary_predictions(pairs, taxonomy)
    metrics = {"pairs": len(pairs),
               "pairwise_accuracy": rate(sum(r["correct"] for r in pairwise), len(pairwise)).to_dict(),
               "pairwise_tie_share": round(sum(r["tie"] for r in pairwise) / len(pairwise), 4) if pairwise else 0.0,
               "binary": binary_metrics(binary)}
    return metrics, pairwise, binary
