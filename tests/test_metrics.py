import pytest

from safealign.eval.metrics import best_threshold, pairwise_metrics, safety_f1


def test_pairwise_metrics_worked_by_hand():
    m = pairwise_metrics([2.0, 1.0, 0.0, 3.0], [1.0, 1.5, -1.0, 3.0])  # gaps 1, -0.5, 1, 0 -> 2 of 4 right
    assert m["pairwise_accuracy"]["successes"] == 2 and m["pairwise_accuracy"]["n"] == 4
    assert (m["mean_better"], m["mean_worse"], m["mean_gap"]) == (1.5, 1.125, 0.375)


def test_best_threshold_worked_by_hand():
    # descending: 0.8 U, 0.4 U, 0.35 S, 0.1 S. Cuts: 0.6 -> F1 2/3; 0.375 -> F1 1; 0.225 -> 0.8; -0.9 -> 2/3
    assert best_threshold([0.1, 0.4, 0.35, 0.8], [False, True, False, True]) == pytest.approx(0.375)
    # equal scores are flagged together: no cut between the two 0.5s
    assert best_threshold([0.5, 0.5, 0.2], [True, False, False]) == pytest.approx(0.35)
    assert best_threshold([], []) == 0.0


def test_safety_f1_uses_the_dev_threshold_on_test():
    dev = ([0.1, 0.4, 0.35, 0.8], [False, True, False, True])  # threshold 0.375
    test = ([0.5, 0.3, 0.9, 0.2], [True, True, False, False])  # flagged: 0.5, 0.9 -> tp 1, fp 1, fn 1
    m = safety_f1(dev, test)
    assert m["threshold"] == pytest.approx(0.375)
    assert m["confusion"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1} and m["f1"] == 0.5
