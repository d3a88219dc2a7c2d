import math

import pytest

from safealign.eval.stats import Z95, holm, mcnemar, paired_bootstrap, rate, wilson_interval


def test_wilson_8_of_10_worked_by_hand():
    # p = 0.8, z² = 3.8415, z²/n = 0.38415, denominator = 1.38415
    # centre = (0.8 + 3.8415/20) / 1.38415 = 0.99207 / 1.38415 = 0.71674
    # half   = 1.96 * sqrt(0.8*0.2/10 + 3.8415/400) / 1.38415 = 1.96 * sqrt(0.025604) / 1.38415 = 0.22658
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.71674 - 0.22658, abs=2e-4)  # 0.4902
    assert high == pytest.approx(0.71674 + 0.22658, abs=2e-4)  # 0.9433


def test_wilson_at_the_edges():
    # 0 of 10: centre = half = (z²/20) / (1 + z²/10) = 0.19207 / 1.38415 = 0.13877 -> [0, 0.2775]
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=2e-4)
    # 1 of 1: centre = (1 + z²/2)/(1 + z²) = 2.92073/4.8415 = 0.60327; half = z*sqrt(z²/4)/(1+z²) = 0.39673
    assert wilson_interval(1, 1) == pytest.approx((0.20654, 1.0), abs=2e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # exactly 0 and 1 at the edges, not a rounding residue below the rate (a plot's whisker would be negative)
    assert all(wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0 for n in range(1, 200))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_wilson_is_symmetric_and_narrows_with_n():
    low, high = wilson_interval(3, 10)
    assert wilson_interval(7, 10) == pytest.approx((1 - high, 1 - low))
    assert Z95 == pytest.approx(1.959964, abs=1e-6)
    small, large = wilson_interval(50, 100), wilson_interval(500, 1000)
    assert large[1] - large[0] < small[1] - small[0]
    # for n large and p mid-range Wilson approaches the normal interval p ± z*sqrt(p(1-p)/n)
    assert wilson_interval(5000, 10000)[0] == pytest.approx(0.5 - Z95 * math.sqrt(0.25 / 10000), abs=1e-4)


def test_rate_record():
    r = rate(8, 10)
    assert r.value == 0.8 and r.to_dict()["value"] == 0.8 and r.to_dict()["n"] == 10
    assert str(r) == "80.0% [49.0, 94.3] (n=10)"


def test_mcnemar_worked_by_hand():
    # a right only on items 0,1,2 (3 items), b right only on item 3 (1 item), both right on 4, both wrong on 5.
    a = [True, True, True, False, True, False]
    b = [False, False, False, True, True, False]
    result = mcnemar(a, b)
    assert (result["a_only_correct"], result["b_only_correct"]) == (3, 1)
    # n=4 discordant, min=1: P[X<=1] = (C(4,0)+C(4,1))/16 = 5/16; two-sided 10/16.
    assert result["p_value"] == pytest.approx(10 / 16)
    assert mcnemar(b, a)["p_value"] == pytest.approx(10 / 16)


def test_mcnemar_edges():
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0  # no discordant items
    # 10 discordant all one way: 2 * (1/2)^10
    assert mcnemar([True] * 10, [False] * 10)["p_value"] == pytest.approx(2 / 1024)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_paired_bootstrap_difference_and_interval():
    a = [1.0] * 30 + [0.0] * 10  # 75%
    b = [0.0] * 30 + [0.0] * 10  # 0%
    result = paired_bootstrap(a, b, resamples=2000, seed=1)
    assert result["difference"] == pytest.approx(0.75)
    assert 0.55 < result["low"] < 0.75 < result["high"] < 0.9
    assert result["p_value"] == pytest.approx(2 / 2001)  # no resample crosses zero: (0 + 1)/(R + 1), twice, never 0
    same = paired_bootstrap(a, a, resamples=500)
    assert same["difference"] == 0.0 and same["p_value"] == 1.0
    # pairing matters: b = a + 0.01 everywhere is a certain difference, though the spreads overlap
    shifted = paired_bootstrap([x + 0.01 for x in a], a, resamples=500)
    assert shifted["low"] == pytest.approx(0.01) and shifted["p_value"] == pytest.approx(2 / 501)
    assert paired_bootstrap(a, b, resamples=2000, seed=1) == result  # seeded


def test_paired_bootstrap_no_clear_difference():
    a = [1.0, 0.0] * 20
    b = [0.0, 1.0] * 20
    result = paired_bootstrap(a, b, resamples=4000, seed=0)
    assert result["difference"] == 0.0 and result["p_value"] == 1.0
    a2 = [1.0, 0.0, 1.0, 0.0, 1.0] * 4
    b2 = [0.0, 1.0, 1.0, 0.0, 0.0] * 4  # a better by 0.2 on 20 items: not certain
    result = paired_bootstrap(a2, b2, resamples=4000, seed=0)
    assert result["difference"] == pytest.approx(0.2) and 0.01 < result["p_value"] < 0.5


def test_holm_worked_by_hand():
    # m=3: sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (0.02*2=0.04; 0.04*1=0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # monotone: 0.01*4=0.04, 0.011*3=0.033 -> raised to 0.04; capped at 1
    assert holm([0.01, 0.011, 0.5, 0.9]) == pytest.approx([0.04, 0.04, 1.0, 1.0])
    assert holm([]) == []


def test_format_rate():
    from safealign.eval.stats import format_rate, rate

    r = rate(4, 32).to_dict()
    assert format_rate(r) == f"12.5% [{100 * r['low']:.1f}, {100 * r['high']:.1f}]"
    assert format_rate(r, with_n=True).endswith("] (n=32)")
    assert format_rate(0.25) == "25.0%" and format_rate(None) == "–" and format_rate(None, missing="n/a") == "n/a"


def test_pearson_worked_by_hand():
    from safealign.eval.stats import pearson

    # a = (1, 2, 3), b = (2, 4, 7): deviations (−1, 0, 1) and (−7/3, −1/3, 8/3); cov 5, sums of squares 2, 114/9
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]) == pytest.approx(5 / (2 * 114 / 9) ** 0.5)
    assert pearson([1.0, 2.0], [3.0, 1.0]) == pytest.approx(-1.0)
    assert pearson([1.0, 1.0], [2.0, 3.0]) is None and pearson([1.0], [1.0]) is None


def test_cluster_draws_keep_a_cluster_together():
    from safealign.eval.stats import cluster_draws

    clusters = ["q1", "q1", "q1", "q2", "q3", "q3"]
    for draw in cluster_draws(clusters, 50, seed=3):
        picked = [clusters[i] for i in draw]
        for c in set(picked):  # a drawn cluster brings all of its rows, as many times as it was drawn
            assert picked.count(c) % clusters.count(c) == 0
    assert len(cluster_draws(clusters, 7)) == 7


def test_rogan_gladen_worked_by_hand_and_at_its_edges():
    from safealign.eval.stats import rogan_gladen

    # sens 0.9, spec 0.8, observed 0.3: (0.3 + 0.8 − 1) / (0.9 + 0.8 − 1) = 0.1 / 0.7
    assert rogan_gladen(0.3, 0.9, 0.8) == pytest.approx(1 / 7)
    assert rogan_gladen(0.1, 0.9, 0.8) == 0.0  # below the false-positive floor: clipped to 0
    assert rogan_gladen(0.95, 0.9, 0.8) == 1.0
    assert rogan_gladen(0.5, 1.0, 1.0) == 0.5  # a perfect judge: the observed rate
    assert rogan_gladen(0.5, 0.5, 0.5) is None  # no better than chance: nothing to correct with


def test_corrected_rate_interval_carries_the_card_and_is_unbounded_for_a_chance_judge():
    from safealign.eval.stats import corrected_rate, rate

    good = {"confusion": {"tp": 900, "fn": 100, "tn": 800, "fp": 200}}  # sens 0.9, spec 0.8
    result = corrected_rate(30, 100, good)
    assert result["value"] == pytest.approx(1 / 7) and not result["unbounded"]
    assert result["low"] < 1 / 7 < result["high"]
    small = {"confusion": {"tp": 9, "fn": 1, "tn": 8, "fp": 2}}  # the same rates on a card of 20 rows
    wide = corrected_rate(30, 100, small)
    assert wide["high"] - wide["low"] > result["high"] - result["low"]  # the card's uncertainty widens it
    sample_only = rate(30, 100)
    assert result["high"] - result["low"] > (sample_only.high - sample_only.low) / 0.7 * 0.8
    chance = corrected_rate(30, 100, {"confusion": {"tp": 5, "fn": 5, "tn": 5, "fp": 5}})
    assert chance["unbounded"] and chance["low"] is None and chance["high"] is None
    assert corrected_rate(30, 100, good) == result  # seeded


def test_minimum_detectable_difference_worked_by_hand():
    from safealign.eval.stats import minimum_detectable_difference

    # (1.96 + 0.8416) · sqrt(2 · 0.25 / 100) = 2.8016 · 0.07071
    assert minimum_detectable_difference(100, 0.5) == pytest.approx(0.19810, abs=1e-4)


def test_minimum_detectable_difference_of_one_rate_against_a_fixed_value():
    from safealign.eval.stats import minimum_detectable_difference

    # a win rate against 50% on 50 prompts: 2.8016 · sqrt(0.25 / 50) = 0.1981
    assert minimum_detectable_difference(50, 0.5, samples=1) == pytest.approx(0.19810, abs=1e-4)
    assert minimum_detectable_difference(0, 0.5) == float("inf")


def test_a_corrected_rate_of_zero_still_has_an_upper_end():
    from safealign.eval.stats import corrected_rate

    card = {"confusion": {"tp": 90, "fn": 10, "tn": 95, "fp": 5}}
    none_seen = corrected_rate(0, 60, card)
    assert none_seen["value"] == 0.0 and none_seen["low"] == 0.0 and 0.0 < none_seen["high"] < 0.15
