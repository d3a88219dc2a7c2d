import json

from safealign.arms.common import load_split
from safealign.eval.shared_failures import shared_failures
from safealign.io import write_jsonl_atomic


def test_shared_failures_worked_by_hand(prepared_sample, tmp_path):
    test = load_split(prepared_sample, "test")
    ids = [p.id for p, _ in test]
    n = len(ids)
    # the reward model misses the first half, the contrastive encoder every third pair
    write_jsonl_atomic(tmp_path / "rm" / "predictions.jsonl",
                       ({"id": i, "correct": k >= n // 2} for k, i in enumerate(ids)))
    write_jsonl_atomic(tmp_path / "ct" / "predictions.jsonl",
                       ({"id": i, "correct": k % 3 != 0} for k, i in enumerate(ids)))
    summary = shared_failures(tmp_path / "rm", tmp_path / "ct", prepared_sample, tmp_path / "out", sample=5)
    both = [k for k in range(n) if k < n // 2 and k % 3 == 0]
    assert summary["pairs"] == n and summary["shared_failures"] == len(both)
    assert summary["expected_share_if_independent"] == round((n // 2) / n * len(range(0, n, 3)) / n, 4)
    rows = [json.loads(l) for l in (tmp_path / "out" / "shared_failures.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [ids[k] for k in both]
    labels = {p.id: row["rejected_labels"] for p, row in test}
    assert all(r["rejected_labels"] == labels[r["id"]] for r in rows)
    assert sum(summary["rejected_categories"].values()) == sum(len(r["rejected_labels"]) for r in rows)
    markdown = (tmp_path / "out" / "shared_failures.md").read_text()
    assert markdown.count("\n## ") == min(5, len(both))
