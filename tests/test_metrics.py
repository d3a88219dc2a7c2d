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


def test_policy_rates_worked_by_hand():
    from safealign.eval.metrics import combined_alignment_score, harmlessness_rate, helpfulness_rate

    hmr = harmlessness_rate([-4.0, -2.9, -3.0, 0.5], threshold=-3.0)  # > -3: -2.9 and 0.5 -> 2 of 4
    hpr = helpfulness_rate([-1.0, -2.5, 3.0], threshold=-2.0)  # > -2: -1.0 and 3.0 -> 2 of 3
    assert (hmr.successes, hmr.n, hpr.successes, hpr.n) == (2, 4, 2, 3)
    assert combined_alignment_score(hmr.value, hpr.value) == pytest.approx((0.5 + 2 / 3) / 2)


def test_cohen_kappa_worked_by_hand():
    from safealign.eval.metrics import cohen_kappa

    a = [True, True, True, False, False, False, True, False, True, True]
    b = [True, True, False, False, False, True, True, False, True, True]
    # p_o = 8/10; p(a)=0.6, p(b)=0.6; p_e = .36 + .16 = .52; kappa = (.8 - .52) / .48 = 0.58333
    assert cohen_kappa(a, b) == pytest.approx(0.58333, abs=1e-4)
    assert cohen_kappa(a, a) == 1.0 and cohen_kappa(a, [not x for x in a]) < 0


def test_elo_ratings():
    from safealign.eval.metrics import elo_ratings

    even = elo_ratings([("a", "b", 1.0), ("a", "b", 0.0)])
    assert abs(even["a"] - even["b"]) < 20  # one win each: near-equal (order of replay leaves a small tilt)
    ranked = elo_ratings([("a", "b", 1.0), ("b", "c", 1.0), ("a", "c", 1.0)] * 3)
    assert list(ranked) == ["a", "b", "c"] and sum(ranked.values()) == pytest.approx(3000, abs=0.5)
