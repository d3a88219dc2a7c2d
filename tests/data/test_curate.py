import json

from safealign.config import DataConfig
from safealign.data.curate import label_prepared
from safealign.data.prepare import prepare, read_splits
from safealign.data.taxonomy import load_taxonomy
from safealign.io import read_jsonl


def test_label_writes_counts_clean_split_and_noise_report(small_pairs_file, tmp_path):
    prepared = prepare(DataConfig(source=str(small_pairs_file)), tmp_path / "prep")
    summary = label_prepared(prepared, load_taxonomy(), noise_samples=10, seed=0)
    out = prepared / "labels"
    labels = read_jsonl(out / "labels.jsonl")
    assert len(labels) == 40
    # odd rows' rejected responses steal and kill (S1 + S4); even rows' are benign
    assert summary["rejected_counts"]["all"]["S1"] == summary["rejected_counts"]["all"]["S4"] == 20
    assert summary["rejected_counts"]["all"]["S8"] == summary["noise"]["all"] == 20
    assert summary["multi_category_rejected"] == 20
    splits = read_splits(prepared)
    for name, pairs in splits.items():
        clean = read_jsonl(out / "clean" / f"{name}.jsonl")
        assert len(clean) == summary["clean_pairs"][name]
        assert all("steal" in row["rejected"] for row in clean)
    report = json.loads((out / "noise_report.json").read_text())
    assert len(report["sample"]) == 10 and all("Maybe later" in s["rejected"] for s in report["sample"])
    assert "# Noise report (taxonomy 1.0.0)" in (out / "noise_report.md").read_text()
    assert json.loads((out / "manifest.json").read_text())["taxonomy"]["version"] == "1.0.0"
    again = label_prepared(prepared, load_taxonomy(), out=tmp_path / "again", noise_samples=10, seed=0)
    assert again == summary
    assert (tmp_path / "again" / "noise_report.json").read_bytes() == (out / "noise_report.json").read_bytes()
