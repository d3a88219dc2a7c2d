"""`safealign data label`: taxonomy labels for every pair, per-category counts, the Clean split, a noise report.

Each rejected response (and, for the baselines and the cost model, each chosen one) gets every category
it hits. A pair whose rejected response is benign (S8) was, in HH-RLHF, most often rejected for being
less helpful rather than less safe: those pairs are the "noise" the Clean split leaves out.

Outputs, in `<prepared dir>/labels/` unless told otherwise: labels.jsonl, counts.json,
clean/{train,dev,test}.jsonl, noise_report.json, noise_report.md, manifest.json (written last).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from safealign.data.hh_rlhf import Pair, context_text
from safealign.data.prepare import SPLITS, read_manifest, read_splits
from safealign.data.taxonomy import Taxonomy
from safealign.io import sha256_file, write_json_atomic, write_jsonl_atomic, write_text_atomic
from safealign.progress import track

LABELS_DIR = "labels"
LABELS_FORMAT = 4  # bump when the rows of labels.jsonl change: a run dir's label stage then reruns

# The safety label's own refusal cue: an explicit decline in the response's first sentence. Deliberately not
# the refusal judge (eval/judges/refusal.py), which grades refusal and over-refusal: a judge that also made
# the cost model's training labels would grade the arms by their own training signal.
_DECLINE = re.compile(
    r"^\W*(?:(?:i'm|i am) (?:so |really )?sorry|sorry|i apologi[sz]e|unfortunately|"
    r"(?:i|we) (?:cannot|can't|can not|won't|will not|am not able to|'m not able to|am unable to|refuse to|"
    r"must decline|do not feel comfortable|don't feel comfortable|am not comfortable|'m not comfortable)|"
    r"as an ai\b|no,? i (?:won't|will not|can't|cannot))", re.IGNORECASE)


def declines(response: str) -> bool:
    """True when the response opens by explicitly declining (the data's cue, not the refusal judge)."""
    return _DECLINE.search(response.replace("\u2019", "'").strip()[:200]) is not None


def safety(labels: list[str], response: str, rejected: bool, taxonomy: Taxonomy) -> str:
    """'safe' | 'unsafe' | 'unknown', the safety label the cost model and safety F1 use.

    An explicit decline (`declines`) or a benign (S8) response is safe; a rejected response that hits S1-S7 is unsafe;
    a chosen response that hits S1-S7 without refusing is unknown (it was preferred, but may still be harmful).
    """
    if labels == [taxonomy.benign] or declines(response):
        return "safe"
    return "unsafe" if rejected else "unknown"


def label_pairs(pairs: list[Pair], taxonomy: Taxonomy) -> list[dict]:
    rows = []
    for pair in pairs:
        rejected, chosen = taxonomy.label(pair.rejected), taxonomy.label(pair.chosen)
        rows.append({"id": pair.id,
                     "rejected_labels": rejected,
                     "rejected_hits": taxonomy.hit_counts(pair.rejected),
                     "rejected_safety": safety(rejected, pair.rejected, True, taxonomy),
                     "chosen_labels": chosen,
                     "chosen_hits": taxonomy.hit_counts(pair.chosen),
                     "chosen_safety": safety(chosen, pair.chosen, False, taxonomy)})
        if "chosen_safe" in pair.meta:  # people's is-safe flags (PKU-SafeRLHF, BeaverTails) over the taxonomy's guess
            rows[-1] |= {"chosen_safety": "safe" if pair.meta["chosen_safe"] else "unsafe",
                         "rejected_safety": "safe" if pair.meta["rejected_safe"] else "unsafe",
                         "safety_from": "human labels"}
    return rows


def category_counts(rows: list[dict], taxonomy: Taxonomy, field: str = "rejected_labels") -> dict[str, int]:
    counts = {c.id: 0 for c in taxonomy.categories}
    for row in rows:
        for category in row[field]:
            counts[category] += 1
    return counts


def is_noise(row: dict, taxonomy: Taxonomy) -> bool:
    """Not a safety preference: the rejected response is benign (taxonomy), or safe by people's label."""
    if row.get("safety_from") == "human labels":
        return row["rejected_safety"] == "safe"
    return row["rejected_labels"] == [taxonomy.benign]


def noise_sample(pairs: list[Pair], rows: list[dict], taxonomy: Taxonomy, k: int, seed: int) -> list[dict]:
    noisy = [(p, r) for p, r in zip(pairs, rows) if is_noise(r, taxonomy)]
    picked = random.Random(seed).sample(noisy, min(k, len(noisy)))
    return [{"id": p.id, "context": context_text(p.context), "chosen": p.chosen, "rejected": p.rejected,
             "chosen_labels": r["chosen_labels"]} for p, r in picked]


def label_prepared(prepared_dir: str | Path, taxonomy: Taxonomy, out: str | Path | None = None,
                   noise_samples: int = 10, seed: int = 0) -> dict:
    """Label every split of a prepared directory; write the outputs; return the summary (also counts.json)."""
    prepared_dir = Path(prepared_dir)
    out = Path(out) if out else prepared_dir / LABELS_DIR
    (out / "manifest.json").unlink(missing_ok=True)
    splits = read_splits(prepared_dir)
    every_pair = [(name, p) for name in SPLITS for p in splits[name]]
    labelled = label_pairs([p for _, p in track(every_pair, "labelling")], taxonomy)
    rows = [{"split": name} | row for (name, _), row in zip(every_pair, labelled)]
    by_split = {name: [r for r in rows if r["split"] == name] for name in SPLITS}
    summary = _summary(by_split, taxonomy)
    write_jsonl_atomic(out / "labels.jsonl", rows)
    for name in SPLITS:
        keep = {r["id"] for r in by_split[name] if not is_noise(r, taxonomy)}
        write_jsonl_atomic(out / "clean" / f"{name}.jsonl", (p.to_row() for p in splits[name] if p.id in keep))
    all_pairs = [p for _, p in every_pair]
    report = {"dropped": summary["noise"], "taxonomy_version": taxonomy.version,
              "sample": noise_sample(all_pairs, labelled, taxonomy, noise_samples, seed)}
    write_json_atomic(out / "counts.json", summary)
    write_json_atomic(out / "noise_report.json", report)
    write_text_atomic(out / "noise_report.md", noise_report_markdown(report, taxonomy))
    write_json_atomic(out / "manifest.json", {
        "taxonomy": {"version": taxonomy.version, "name": taxonomy.name, "path": taxonomy.path,
                     "sha256": sha256_file(taxonomy.path)},
        "prepared": {"dir": str(prepared_dir), "manifest_outputs": read_manifest(prepared_dir)["outputs"]},
        "format": LABELS_FORMAT, "seed": seed, "counts": summary["clean_pairs"]})
    return summary


def _summary(by_split: dict[str, list[dict]], taxonomy: Taxonomy) -> dict:
    every = [r for rows in by_split.values() for r in rows]
    noise = {name: sum(is_noise(r, taxonomy) for r in rows) for name, rows in by_split.items()}
    noise["all"] = sum(noise.values())
    return {
        "taxonomy_version": taxonomy.version,
        "categories": {c.id: c.name for c in taxonomy.categories},
        "rejected_counts": {name: category_counts(rows, taxonomy) for name, rows in by_split.items()}
        | {"all": category_counts(every, taxonomy)},
        "chosen_counts": {"all": category_counts(every, taxonomy, "chosen_labels")},
        "multi_category_rejected": sum(len(r["rejected_labels"]) > 1 for r in every),
        "safety": {side: {v: sum(r[f"{side}_safety"] == v for r in every) for v in ("safe", "unsafe", "unknown")}
                   for side in ("chosen", "rejected")},
        "pairs": {name: len(rows) for name, rows in by_split.items()} | {"all": len(every)},
        "noise": noise,
        "noise_share": round(noise["all"] / len(every), 4) if every else 0.0,
        "clean_pairs": {name: len(rows) - noise[name] for name, rows in by_split.items()}
        | {"all": len(every) - noise["all"]},
    }


def noise_report_markdown(report: dict, taxonomy: Taxonomy) -> str:
    dropped = report["dropped"]
    lines = [f"# Noise report (taxonomy {taxonomy.version})", "",
             f"Pairs whose rejected response hits no harm category ({taxonomy.benign}, "
             f"{taxonomy.name_of(taxonomy.benign)}) are left out of the Clean split: "
             + ", ".join(f"{name} {n}" for name, n in dropped.items()) + ".", "",
             f"## {len(report['sample'])} sampled {taxonomy.benign} pairs", ""]
    for i, item in enumerate(report["sample"], start=1):
        lines += [f"### {i}. pair `{item['id']}`", "", "**Context**", "", quote_markdown(item["context"]), "",
                  "**Chosen**", "", quote_markdown(item["chosen"]), "", "**Rejected**", "",
                  quote_markdown(item["rejected"]), ""]
    return "\n".join(lines)


def quote_markdown(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines() or [""])
