"""Statistics for rates: Wilson score intervals (preferred over the normal interval for small n or p near 0/1)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Rate:
    successes: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.successes / self.n if self.n else float("nan")

    def to_dict(self) -> dict:
        return asdict(self) | {"value": self.value}

    def __str__(self) -> str:
        return f"{100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] (n={self.n})"


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at 0 or n successes the bound is exactly 0 or 1; centre − half leaves a rounding residue (5.6e-17 at 0 of 3)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def rate(successes: int, n: int) -> Rate:
    return Rate(successes, n, *wilson_interval(successes, n))


def format_rate(rate: dict | float | None, missing: str = "–", with_n: bool = False) -> str:
    """'12.5% [3.5, 36.0]' (and ' (n=32)') for a Rate's dict, '12.5%' for a bare share, `missing` for None."""
    if rate is None:
        return missing
    if isinstance(rate, dict):
        n = f" (n={rate['n']})" if with_n else ""
        return f"{100 * rate['value']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]{n}"
    return f"{100 * rate:.1f}%"


def mcnemar(a_correct: list[bool], b_correct: list[bool]) -> dict:
    """Exact McNemar test on paired per-item correctness: are a and b wrong on different items by chance?

    Only the discordant items count: b_only = items a gets wrong and b right, a_only = the reverse. Under
    H0 each discordant item is a fair coin, so p = min(1, 2 * P[Binomial(n, 1/2) <= min(a_only, b_only)])
    with n = a_only + b_only (two-sided exact binomial; 1.0 when there are none).
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired test needs equal lengths, got {len(a_correct)} and {len(b_correct)}")
    a_only = sum(bool(a) and not b for a, b in zip(a_correct, b_correct))
    b_only = sum(bool(b) and not a for a, b in zip(a_correct, b_correct))
    n = a_only + b_only
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2 ** n
    return {"items": len(a_correct), "a_only_correct": a_only, "b_only_correct": b_only,
            "p_value": min(1.0, 2 * tail)}


def paired_bootstrap(a: list[float], b: list[float], resamples: int = 10_000, seed: int = 0) -> dict:
    """Paired bootstrap of mean(a) - mean(b): items are resampled together, keeping their pairing.

    Returns the observed difference, its 95% percentile interval, and a two-sided p-value: twice the share
    of resampled differences on the far side of zero, counted as (k + 1) / (R + 1) so that it is never 0 (a
    bootstrap of R resamples cannot show p below 1/(R + 1)), capped at 1.
    """
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired bootstrap needs two equal, non-empty lists, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)  # (N,)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)  # (R,)
    observed = float(diff.mean())
    beyond = int(np.sum(means <= 0)) if observed > 0 else int(np.sum(means >= 0)) if observed < 0 else resamples
    return {"items": len(diff), "difference": observed, "low": float(np.percentile(means, 2.5)),
            "high": float(np.percentile(means, 97.5)), "p_value": bootstrap_p_value(beyond, resamples),
            "resamples": resamples}


def bootstrap_p_value(beyond: int, resamples: int) -> float:
    """Two-sided bootstrap p-value from `beyond` of `resamples` resampled statistics on the far side of 0:
    2 (k + 1) / (R + 1), capped at 1: never 0."""
    return min(1.0, 2 * (beyond + 1) / (resamples + 1))


def cluster_draws(clusters: list, resamples: int, seed: int = 0) -> list:
    """Row indices of `resamples` cluster-bootstrap samples: clusters (a question, a prompt, an instruction)
    drawn with replacement, each bringing all of its rows, so rows that share a cluster move together."""
    import numpy as np

    members: dict = {}
    for i, c in enumerate(clusters):
        members.setdefault(c, []).append(i)
    groups = [np.asarray(v) for v in members.values()]
    rng = np.random.default_rng(seed)
    return [np.concatenate([groups[g] for g in rng.integers(0, len(groups), size=len(groups))])
            for _ in range(resamples)]


def rogan_gladen(observed: float, sensitivity: float, specificity: float) -> float | None:
    """The true prevalence behind an observed positive rate of an imperfect judge (Rogan & Gladen, 1978):
    (p_obs + spec − 1) / (sens + spec − 1), clipped to [0, 1]; None when sens + spec <= 1 (a judge no better
    than chance says nothing about the prevalence)."""
    youden = sensitivity + specificity - 1
    if youden <= 0:
        return None
    return min(1.0, max(0.0, (observed + specificity - 1) / youden))


def corrected_rate(positives: int, n: int, card: dict, resamples: int = 4000, seed: int = 0) -> dict:
    """A judge's positive rate on n items corrected for its measured sensitivity and specificity (the card's
    confusion table), with a 95% interval carrying both the sample's and the card's uncertainty: the observed
    rate, sensitivity and specificity drawn from their Jeffreys Beta(k + ½, n − k + ½) distributions (so a rate
    of 0 of n still has an upper end), the correction applied to each draw. `unbounded` when
    the judge is no better than chance, or its Youden index is <= 0 in more than 2.5% of draws (the interval
    then has no finite upper or lower end, and none is reported)."""
    import numpy as np

    c = card["confusion"]
    n_pos, n_neg = c["tp"] + c["fn"], c["tn"] + c["fp"]
    if not n or not n_pos or not n_neg:
        return {"value": None, "low": None, "high": None, "unbounded": True, "n": n}
    sens, spec, observed = c["tp"] / n_pos, c["tn"] / n_neg, positives / n
    point = rogan_gladen(observed, sens, spec)
    rng = np.random.default_rng(seed)
    p = rng.beta(positives + 0.5, n - positives + 0.5, resamples)
    se = rng.beta(c["tp"] + 0.5, c["fn"] + 0.5, resamples)
    sp = rng.beta(c["tn"] + 0.5, c["fp"] + 0.5, resamples)
    youden = se + sp - 1
    if point is None or np.mean(youden <= 0) > 0.025:
        return {"value": point, "low": None, "high": None, "unbounded": True, "n": n,
                "sensitivity": round(sens, 4), "specificity": round(spec, 4)}
    draws = np.clip((p + sp - 1) / youden, 0.0, 1.0)
    return {"value": point, "low": float(np.percentile(draws, 2.5)), "high": float(np.percentile(draws, 97.5)),
            "unbounded": False, "n": n, "sensitivity": round(sens, 4), "specificity": round(spec, 4)}


def minimum_detectable_difference(n: int, p: float, samples: int = 2, power_z: float = 0.8416212335729143) -> float:
    """The smallest difference a two-sided 5% test detects with 80% power on n items near rate p:
    (z_0.975 + z_0.8) · sqrt(samples · p (1 − p) / n). samples = 2: two rates compared (independent samples:
    conservative for paired ones); samples = 1: one rate against a fixed value (a win rate against 50%)."""
    if n <= 0:
        return float("inf")
    return (Z95 + power_z) * math.sqrt(samples * max(p * (1 - p), 1e-9) / n)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error), in the input order.

    Sorted ascending, the i-th smallest (0-based) is multiplied by (m - i); adjusted values are made
    non-decreasing in that order and capped at 1.
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson's correlation of two equal-length samples; None when either is constant or has < 2 values."""
    n = len(a)
    if n < 2 or len(b) != n:
        return None
    mean_a, mean_b = sum(a) / n, sum(b) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    var_a, var_b = sum((x - mean_a) ** 2 for x in a), sum((y - mean_b) ** 2 for y in b)
    return cov / (var_a * var_b) ** 0.5 if var_a > 0 and var_b > 0 else None
