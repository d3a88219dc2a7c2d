import json
import random

import pytest

from conftest import hh_row
from safealign.config import DataConfig, SplitConfig
from safealign.data.prepare import assign_splits, prepare, read_manifest, read_splits, split_of
from safealign.data.sources import load_pairs
from safealign.errors import BadInputError
from safealign.io import sha256_file


def test_split_is_deterministic_order_free_and_seeded():
    pairs = load_pairs("embedded").pairs
    shares = SplitConfig()
    first = assign_splits(pairs, shares, seed=0)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    again = assign_splits(shuffled, shares, seed=0)
    assert {k: sorted(p.id for p in v) for k, v in first.items()} == {k: sorted(p.id for p in v) for k,
                                                                      v in again.items()}
    other = assign_splits(pairs, shares, seed=1)
    assert {p.id for p in other["test"]} != {p.id for p in first["test"]}
    # shares are respected up to sampling noise: 2303 pairs, 10% test -> about 230 +- 3 sd (~15)
    assert abs(len(first["test"]) - 230) < 50 and abs(len(first["train"]) - 1842) < 60


def test_pairs_sharing_a_context_share_a_split():
    pairs = load_pairs("embedded").pairs
    by_context = {}
    for pair in pairs:
        by_context.setdefault(json.dumps(pair.context), set()).add(split_of(pair, SplitConfig(), 0))
    assert all(len(splits) == 1 for splits in by_context.values())


def test_extreme_shares():
    pairs = load_pairs("embedded", max_pairs=50).pairs
    assert len(assign_splits(pairs, SplitConfig(1.0, 0.0, 0.0), 0)["train"]) == 50
    assert len(assign_splits(pairs, SplitConfig(0.0, 0.0, 1.0), 0)["test"]) == 50


def test_prepare_writes_split_and_manifest(small_pairs_file, tmp_path):
    out = prepare(DataConfig(source=str(small_pairs_file)), tmp_path / "prep")
    manifest = read_manifest(out)
    splits = read_splits(out)
    assert sum(len(v) for v in splits.values()) == manifest["counts"]["total"] == 40
    assert manifest["counts"]["duplicate_pairs"] == 0
    assert manifest["inputs"] == {str(small_pairs_file): sha256_file(small_pairs_file)}
    for name, digest in manifest["outputs"].items():
        assert sha256_file(out / name) == digest
    assert manifest["taxonomy_version"] == "1.0.0" and manifest["seed"] == 0
    again = prepare(DataConfig(source=str(small_pairs_file)), tmp_path / "prep2")
    assert read_manifest(again)["outputs"] == manifest["outputs"]  # byte-identical outputs


def test_bad_input_leaves_nothing_half_written(write_jsonl, tmp_path):
    path = write_jsonl([hh_row(["q"], "a", "b"), {"chosen": "x"}])
    out = tmp_path / "prep"
    with pytest.raises(BadInputError, match="line 2: missing field 'rejected'"):
        prepare(DataConfig(source=str(path)), out)
    assert not out.exists()
    # an earlier, complete output in the same place is not touched by a failing run
    good = write_jsonl([hh_row(["q"], "a", "b")], name="good.jsonl")
    prepare(DataConfig(source=str(good)), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(BadInputError):
        prepare(DataConfig(source=str(path)), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_skip_bad_reports_rows(write_jsonl, tmp_path):
    path = write_jsonl([hh_row(["q"], "a", "b"), "{oops", {"chosen": "x"}])
    out = prepare(DataConfig(source=str(path), skip_bad=True), tmp_path / "prep")
    manifest = read_manifest(out)
    assert manifest["counts"]["bad_rows_skipped"] == 2
    assert "line 2: malformed JSON" in manifest["bad_rows_first"][0]
    bad = [json.loads(l) for l in (out / "bad_rows.jsonl").read_text().splitlines()]
    assert [b["line"] for b in bad] == [2, 3]


def test_branches_of_one_conversation_share_a_split():
    """HH-RLHF conversations branch: every pair whose first human turn is the same lands in one split."""
    from safealign.config import SplitConfig
    from safealign.data.hh_rlhf import Pair
    from safealign.data.prepare import assign_splits

    pairs = []
    for root in range(40):
        for branch in range(3):
            context = [{"role": "user", "content": f"question {root}"}, {"role": "assistant", "content": f"a{branch}"},
                       {"role": "user", "content": f"follow-up {branch}"}]
            pairs.append(Pair(f"{root}-{branch}", context, "c", "r"))
    splits = assign_splits(pairs, SplitConfig(), seed=0)
    where = {p.id: name for name, ps in splits.items() for p in ps}
    assert all(len({where[f"{root}-{b}"] for b in range(3)}) == 1 for root in range(40))
    assert len({name for name, ps in splits.items() if ps}) >= 2
