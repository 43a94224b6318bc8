"""Shared statistical pieces: the Estimate record, bootstraps, paired effect sizes."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

CONFIDENCE = 0.95


class Estimate(BaseModel):
    """A point estimate with a 95% confidence interval, a p-value where one is defined, and
    the number of units it rests on."""

    model_config = ConfigDict(frozen=True)
    value: float
    lo: float
    hi: float
    p: float | None = None
    n: int
    se: float | None = None
    df: float | None = None  # of the t reference distribution; inf = normal

    def __str__(self) -> str:
        p = "" if self.p is None else f", p={self.p:.3g}"
        return f"{self.value:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}]{p} (n={self.n})"


def bootstrap_mean(x: np.ndarray, *, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% CI of a mean by resampling units (scipy; BCa, percentile if BCa is degenerate)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(x.mean()) if len(x) else math.nan, float(x.mean()) if len(x) else math.nan
    rng = np.random.default_rng(seed)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=CONFIDENCE,
                                  method=method, random_state=rng)
        lo, hi = res.confidence_interval
        if np.isfinite(lo) and np.isfinite(hi):
            return float(lo), float(hi)
    return math.nan, math.nan


def cluster_bootstrap(
    groups: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile CI from a two-stage cluster bootstrap: resample clusters (experiments)
    with replacement, then units (participants) within each drawn cluster.

    scipy.stats.bootstrap resamples independent units only; the hierarchy needs this.
    With one cluster it reduces to resampling units within it.
    """
    rng = np.random.default_rng(seed)
    k = len(groups)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        picked = rng.integers(0, k, size=k) if k > 1 else np.zeros(1, dtype=int)
        draws[b] = statistic([groups[c][rng.integers(0, len(groups[c]), size=len(groups[c]))]
                              for c in picked])
    lo, hi = np.nanpercentile(draws, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


def mean_of_means(groups: Sequence[np.ndarray]) -> float:
    """Equal weight per experiment, as the paper averages across experiments."""
    return float(np.mean([g.mean() for g in groups]))


def paired_dz(d: np.ndarray) -> float:
    """Cohen's d_z of paired differences: mean / SD (ddof=1)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return math.nan
    sd = d.std(ddof=1)
    return float(d.mean() / sd) if sd > 0 else (0.0 if d.mean() == 0 else math.copysign(math.inf, d.mean()))


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of mean(a) - mean(b) with the pooled SD sqrt((var_a + var_b) / 2)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else math.nan


def paired_permutation_p(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *,
    n_resamples: int = 9999, seed: int = 0,
) -> float:
    """Two-sided p of a weighted mean of x - y, swapping x and y within pairs (scipy)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    w = np.full(len(x), 1 / len(x)) if weights is None else np.asarray(weights, dtype=float)
    if len(x) < 2:
        return math.nan
    if np.allclose(x, y):
        return 1.0

    def statistic(a, b, axis):
        return np.sum((a - b) * w, axis=axis)

    res = stats.permutation_test((x, y), statistic, permutation_type="samples", vectorized=True,
                                 n_resamples=n_resamples, alternative="two-sided",
                                 random_state=np.random.default_rng(seed))
    return float(res.pvalue)
