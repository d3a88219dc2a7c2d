"""`safealign data prepare`: source -> parsed pairs -> deterministic train/dev/test split on disk.

The split is decided by a salted sha256 of each pair's conversation root (its first human turn). HH-RLHF
conversations branch: pairs that share a root share their opening and often each other's responses (one pair's
rejected response is another's context), so every branch of a conversation lands in the same split (hashing the
whole context let 9% of test pairs share a conversation with a train pair) and the same data and seed always give
the same split, whatever the file order. Everything is parsed and checked before the first file is written; each
file is then written atomically, the manifest last, so a prepared directory is complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

from safealign import __version__
from safealign.config import DataConfig, SplitConfig, to_dict
from safealign.data.hh_rlhf import Pair
from safealign.data.sources import Loaded, load_pairs
from safealign.data.taxonomy import load_taxonomy
from safealign.errors import SafeAlignError
from safealign.io import read_jsonl, sha256_file, write_json_atomic, write_jsonl_atomic
from safealign.progress import track

SPLITS = ("train", "dev", "test")
MANIFEST = "manifest.json"


def conversation_root(context: list[dict]) -> str:
    """The first human turn of a conversation, whitespace folded: what every branch of it shares."""
    first = next((t["content"] for t in context if t["role"] == "user"), "")
    return " ".join(first.split())


def split_of(pair: Pair, shares: SplitConfig, seed: int) -> str:
    """'train' | 'dev' | 'test', from a salted hash of the pair's conversation root (first 8 bytes as a fraction)."""
    key = conversation_root(pair.context) + f"\x00seed={seed}"
    position = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    if position < shares.train:
        return "train"
    return "dev" if position < shares.train + shares.dev else "test"


def assign_splits(pairs: list[Pair], shares: SplitConfig, seed: int) -> dict[str, list[Pair]]:
    splits: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[split_of(pair, shares, seed)].append(pair)
    return splits


def load_and_split(cfg: DataConfig) -> tuple[Loaded, dict[str, list[Pair]]]:
    loaded = load_pairs(cfg.source, skip_bad=cfg.skip_bad, max_pairs=cfg.max_pairs,
                        progress=lambda it: track(it, f"parsing {cfg.source}"), schema=cfg.schema,
                        preference=cfg.preference)
    return loaded, assign_splits(loaded.pairs, cfg.split, cfg.seed)


def prepare(cfg: DataConfig, out: str | Path) -> Path:
    """Write `out/{train,dev,test}.jsonl`, `out/bad_rows.jsonl` and `out/manifest.json`; return `out`."""
    taxonomy = load_taxonomy(cfg.taxonomy)  # fail on a bad taxonomy before any long work
    loaded, splits = load_and_split(cfg)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SafeAlignError(f"{out}: exists and is not a directory")
    (out / MANIFEST).unlink(missing_ok=True)  # a directory without a manifest is incomplete
    outputs = {}
    for name, pairs in splits.items():
        outputs[f"{name}.jsonl"] = write_jsonl_atomic(out / f"{name}.jsonl", (p.to_row() for p in pairs))
    outputs["bad_rows.jsonl"] = write_jsonl_atomic(out / "bad_rows.jsonl", (
        {"file": e.path, "line": e.line, "problem": e.problem} for e in loaded.bad))
    manifest = {
        "safealign_version": __version__,
        "source": cfg.source,
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "taxonomy_version": taxonomy.version,
        "counts": {name: len(pairs) for name, pairs in splits.items()} | {
            "total": len(loaded.pairs), "bad_rows_skipped": len(loaded.bad),
            "duplicate_pairs": len(loaded.pairs) - len({p.id for p in loaded.pairs})},
        "bad_rows_first": [str(e) for e in loaded.bad[:5]],
        "inputs": {path: sha256_file(path) for path in loaded.files},
        "outputs": {name: sha256_file(path) for name, path in outputs.items()},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    write_json_atomic(out / MANIFEST, manifest)
    return out


def is_prepared(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(path: str | Path) -> dict:
    return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))


def prepared_taxonomy(path: str | Path):
    """The taxonomy a prepared directory names in its manifest (the one its pairs are labelled with)."""
    return load_taxonomy(read_manifest(path)["config"]["taxonomy"])


def read_splits(prepared_dir: str | Path) -> dict[str, list[Pair]]:
    return {name: [Pair.from_row(r) for r in read_jsonl(Path(prepared_dir) / f"{name}.jsonl")] for name in SPLITS}


def splits_of_source(cfg: DataConfig) -> dict[str, list[Pair]]:
    """The splits of a prepared directory, or of any source parsed and split in memory."""
    if is_prepared(cfg.source):
        return read_splits(cfg.source)
    return load_and_split(cfg)[1]
