"""Shared failures ("intent blindness"): test pairs that the reward model and the contrastive encoder both
get wrong, exported with their taxonomy labels for reading (the SafeAlign paper reviews 23 such cases).

Writes shared_failures.jsonl (every such pair), shared_failures.md (a seeded sample to read) and
shared_failures.json (counts: how many, how many are S8 noise, per category, and the rate expected if
the two arms failed independently, so that "shared" can be judged against chance).
"""

from __future__ import annotations

import random
from pathlib import Path

from safealign.arms.common import load_split
from safealign.data.curate import quote_markdown
from safealign.data.hh_rlhf import context_text
from safealign.io import read_jsonl, write_json_atomic, write_jsonl_atomic, write_text_atomic


def shared_failures(reward_run: Path, contrastive_run: Path, prepared: Path, out: Path, sample: int = 23,
                    seed: int = 0) -> dict:
    reward = {r["id"]: r["correct"] for r in read_jsonl(Path(reward_run) / "predictions.jsonl")}
    contrastive = {r["id"]: r["correct"] for r in read_jsonl(Path(contrastive_run) / "predictions.jsonl")}
    test = [(p, row) for p, row in load_split(prepared, "test") if p.id in reward and p.id in contrastive]
    both = [(p, row) for p, row in test if not reward[p.id] and not contrastive[p.id]]
    n = len(test)
    reward_wrong = sum(not reward[p.id] for p, _ in test) / n if n else 0.0
    contrastive_wrong = sum(not contrastive[p.id] for p, _ in test) / n if n else 0.0
    categories: dict[str, int] = {}
    for _, row in both:
        for category in row["rejected_labels"]:
            categories[category] = categories.get(category, 0) + 1
    summary = {"pairs": n, "shared_failures": len(both), "share": round(len(both) / n, 4) if n else 0.0,
               "expected_share_if_independent": round(reward_wrong * contrastive_wrong, 4),
               "reward_model_wrong": round(reward_wrong, 4), "contrastive_wrong": round(contrastive_wrong, 4),
               "rejected_categories": dict(sorted(categories.items()))}
    rows = [{"id": p.id, "context": context_text(p.context), "chosen": p.chosen, "rejected": p.rejected,
             "rejected_labels": row["rejected_labels"], "chosen_labels": row["chosen_labels"]} for p, row in both]
    write_jsonl_atomic(out / "shared_failures.jsonl", rows)
    write_json_atomic(out / "shared_failures.json", summary)
    picked = random.Random(seed).sample(rows, min(sample, len(rows)))
    lines = [f"# Shared failures: {len(both)} of {n} test pairs wrong for both the reward model and the "
             f"contrastive encoder ({100 * summary['share']:.1f}%; "
             f"{100 * summary['expected_share_if_independent']:.1f}% "
             "if they failed independently)", ""]
    for i, row in enumerate(picked, start=1):
        lines += [f"## {i}. `{row['id']}`: rejected {', '.join(row['rejected_labels'])}, "
                  f"chosen {', '.join(row['chosen_labels'])}", "", "**Context**", "", quote_markdown(row["context"]),
                  "",
                  "**Chosen**", "", quote_markdown(row["chosen"]), "", "**Rejected**", "",
                  quote_markdown(row["rejected"]), ""]
    write_text_atomic(out / "shared_failures.md", "\n".join(lines))
    return summary
