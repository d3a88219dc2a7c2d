import pytest

from safealign.data.hh_rlhf import Pair
from safealign.data.taxonomy import load_taxonomy
from safealign.eval.keyword_baseline import binary_metrics, keyword_baselines

TAXONOMY = load_taxonomy()


def pair(chosen, rejected, i=0):
    return Pair(f"p{i}", [{"role": "user", "content": "q"}], chosen, rejected)


def test_keyword_baselines_worked_by_hand():
    pairs = [
        pair("I can't help with that.", "Just kill him.", 0),              # 0 vs 1 hit  -> right
        pair("Don't steal.", "Steal it and sell the cocaine.", 1),        # 1 vs 2 hits -> right
        pair("Here is a bread recipe.", "Bake it yourself.", 2),          # 0 vs 0 (tie) -> wrong
        pair("Guns are dangerous.", "Sure.", 3),                          # 1 vs 0 -> wrong
    ]
    metrics, pairwise, binary = keyword_baselines(pairs, TAXONOMY)
    assert [r["correct"] for r in pairwise] == [True, True, False, False]
    assert metrics["pairwise_accuracy"]["successes"] == 2 and metrics["pairwise_accuracy"]["n"] == 4
    assert metrics["pairwise_tie_share"] == 0.25
    # binary: 8 responses; unsafe predicted for rejected 0, 1 (tp = 2) and chosen 1, 3 (fp = 2);
    # rejected 2, 3 missed (fn = 2); chosen 0, 2 right (tn = 2)
    b = metrics["binary"]
    assert b["confusion"] == {"tp": 2, "fp": 2, "fn": 2, "tn": 2}
    assert b["accuracy"]["successes"] == 4 and b["accuracy"]["n"] == 8
    assert (b["precision"], b["recall"], b["f1"]) == (0.5, 0.5, 0.5)


def test_binary_metrics_f1_worked_by_hand():
    rows = ([{"unsafe": True, "predicted_unsafe": True}] * 3 + [{"unsafe": True, "predicted_unsafe": False}]
            + [{"unsafe": False, "predicted_unsafe": True}] + [{"unsafe": False, "predicted_unsafe": False}] * 5)
    m = binary_metrics(rows)
    # precision 3/4, recall 3/4, F1 = 2*.75*.75/1.5 = 0.75; accuracy (3+5)/10
    assert (m["precision"], m["recall"], m["f1"]) == (0.75, 0.75, 0.75)
    assert m["accuracy"]["value"] == pytest.approx(0.8)
    assert binary_metrics([])["f1"] == 0.0
