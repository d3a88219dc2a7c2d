import math

import pytest

from safealign.eval.stats import Z95, rate, wilson_interval


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
