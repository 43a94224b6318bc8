"""Inference pieces with a known sampling distribution, used by every estimator:
t-based means, a persona-paired contrast whose variance knows which contrasts share a
participant, random-effects pooling across experiments, multiplicity adjustment and
equivalence tests. Each returns numbers whose p-value and CI answer the same question."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

from ._sesoi import DEFAULT_SESOI, Sesoi  # noqa: F401 (re-exported)
from ._stats import CONFIDENCE, Estimate

# Below this many participants an experiment's row gets no interval or p-value: the
# calibration suite (bench/calibration.py) shows the t-based intervals hold their level
# from here on, with persona effects and skewed response counts.
MIN_PARTICIPANTS = 8



def fmt_p(p: float | None) -> str:
    """A p-value for people: `< 1e-4` below that, three significant digits otherwise."""
    if p is None or not np.isfinite(p):
        return "not defined"
    return "< 1e-4" if p < 1e-4 else f"{p:.3g}"


def t_estimate(value: float, se: float, df: float, n: int) -> Estimate:
    """Estimate with a two-sided t test of 0 and the matching t interval."""
    if not (np.isfinite(se) and se > 0 and df > 0):
        return Estimate(value=value, lo=math.nan, hi=math.nan, p=None, n=n, se=se if np.isfinite(se) else None)
    crit = stats.t.ppf((1 + CONFIDENCE) / 2, df)
    p = float(2 * stats.t.sf(abs(value / se), df))
    return Estimate(value=value, lo=value - crit * se, hi=value + crit * se, p=p, n=n, se=float(se), df=float(df))


def mean_estimate(x: np.ndarray) -> Estimate:
    """Mean of independent units with a one-sample t interval and p (H0: mean 0)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    value = float(x.mean()) if n else math.nan
    if n < 2:
        return Estimate(value=value, lo=math.nan, hi=math.nan, n=n)
    return t_estimate(value, float(x.std(ddof=1) / math.sqrt(n)), n - 1, n)


def cluster_mean_estimate(x: np.ndarray, clusters: Sequence[np.ndarray],
                          weights: np.ndarray | None = None) -> Estimate:
    """Weighted mean of x over the units in `clusters` (index arrays), whose weighted sums
    are independent across clusters: the ratio estimator sum(w x) / sum(w) with the
    cluster-robust (CR1) variance and a t reference on K - 1 degrees of freedom. With unit
    weights and one unit per cluster this is the one-sample t test."""
    x = np.asarray(x, dtype=float)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    sums = np.array([(w[c] * x[c]).sum() for c in clusters])
    sizes = np.array([w[c].sum() for c in clusters], dtype=float)
    n, k = int(sum(len(c) for c in clusters)), len(clusters)
    total = float(sizes.sum())
    value = float(sums.sum() / total) if total > 0 else math.nan
    if k < 2:
        return Estimate(value=value, lo=math.nan, hi=math.nan, n=n)
    resid = sums - sizes * value
    var = k / (k - 1) * float(np.sum(resid**2)) / total**2
    return t_estimate(value, math.sqrt(var), k - 1, n)


def scaled(est: Estimate, scale: float) -> Estimate:
    """The estimate divided by a positive constant (e.g. per cent of a baseline NLL); the
    constant is treated as known (it is estimated far more precisely than a contrast)."""
    if not (np.isfinite(scale) and scale > 0):
        return Estimate(value=math.nan, lo=math.nan, hi=math.nan, n=est.n)
    return est.model_copy(update={"value": est.value / scale, "lo": est.lo / scale, "hi": est.hi / scale,
                                  "se": None if est.se is None else est.se / scale})


class Pooled(BaseModel):
    """Random-effects pooling of per-experiment estimates, with the fixed-effect one beside it.

    `random`: the mean effect over experiments like these (a population of experiments),
    experiments weighted equally as in the paper, t interval and p on K - 1 df from the
    spread of the K estimates, so it holds its level at K = 3 and under heterogeneity. `fixed`: the inverse-variance weighted mean of *these* experiments' effects.
    `prediction`: where a new experiment's effect is expected to fall (Higgins et al., 2009:
    t on K - 2 df), NaN for K < 3."""

    model_config = ConfigDict(frozen=True)
    random: Estimate
    fixed: Estimate
    tau2: float
    i2: float
    pi_lo: float
    pi_hi: float
    k: int


def pool(values: Sequence[float], ses: Sequence[float], n_participants: int,
         dfs: Sequence[float | None] | None = None) -> Pooled | None:
    """Meta-analysis (statsmodels, Paule-Mandel tau^2) of per-experiment effects and SEs
    (`dfs`: each estimate's own t degrees of freedom, used when there is one experiment)."""
    from statsmodels.stats.meta_analysis import combine_effects

    v = np.asarray(values, dtype=float)
    se = np.asarray(ses, dtype=float)
    df = np.asarray([math.inf if x is None else x for x in (dfs if dfs is not None else [None] * len(v))], dtype=float)
    ok = np.isfinite(v) & np.isfinite(se) & (se > 0)
    v, se, df = v[ok], se[ok], df[ok]
    k = len(v)
    if k == 0:
        return None
    if k == 1:  # the experiment's own estimate, with its own t reference
        est = t_estimate(float(v[0]), float(se[0]), float(df[0]), n_participants)
        return Pooled(random=est, fixed=est, tau2=math.nan, i2=math.nan, pi_lo=math.nan, pi_hi=math.nan, k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = combine_effects(v, se**2, method_re="iterated")
    mu_fe = float(res.mean_effect_fe)
    # Experiments count equally (as the paper averages them): the mean of the K estimates with
    # the t interval of their spread, which holds its level whatever tau^2 and however noisy
    # the per-experiment SEs (inverse-variance weights with SEs estimated from few cycles
    # rejected 9% of true nulls in our calibration).
    random = t_estimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(k)), k - 1, n_participants)
    fixed = t_estimate(mu_fe, math.sqrt(float(res.var_eff_w_fe)), math.inf, n_participants)
    tau2 = float(res.tau2)
    if k >= 3:  # around the pooled (equal-weight) mean, with its SE and tau^2
        half = stats.t.ppf((1 + CONFIDENCE) / 2, k - 2) * math.sqrt(tau2 + random.se**2)
        pi_lo, pi_hi = random.value - half, random.value + half
    else:
        pi_lo = pi_hi = math.nan
    # I^2 = (Q - df) / Q, truncated at 0 as usual (statsmodels leaves it negative)
    return Pooled(random=random, fixed=fixed, tau2=tau2, i2=max(0.0, float(res.i2)), pi_lo=pi_lo, pi_hi=pi_hi, k=k)


def paule_mandel(values: np.ndarray, variances: np.ndarray, iterations: int = 60) -> np.ndarray:
    """Paule-Mandel tau^2 for many meta-analyses at once (rows: draws, columns: experiments),
    the estimator `pool` uses through statsmodels (`method_re="iterated"`), vectorised for the
    planner's simulations: the tau^2 >= 0 at which the generalised Q equals K - 1."""
    y = np.atleast_2d(np.asarray(values, dtype=float))
    v = np.atleast_2d(np.asarray(variances, dtype=float))
    k = y.shape[1]

    def q(t2: np.ndarray) -> np.ndarray:
        w = 1 / (v + t2[:, None])
        mu = np.sum(w * y, axis=1) / np.sum(w, axis=1)
        return np.sum(w * (y - mu[:, None]) ** 2, axis=1)

    lo = np.zeros(len(y))
    positive = q(lo) > k - 1
    hi = np.where(positive, np.maximum(np.var(y, axis=1) * 10, 1e-12), 0.0)
    for _ in range(200):  # grow the bracket until Q(hi) <= K - 1
        grow = positive & (q(hi) > k - 1)
        if not grow.any():
            break
        hi = np.where(grow, hi * 10, hi)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        above = q(mid) > k - 1
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(positive, (lo + hi) / 2, 0.0)


def equivalence_rule(mean: np.ndarray, se: np.ndarray, df: float, k: int, tau2: np.ndarray, margin: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The pooled equivalence rule, vectorised: TOST p of |effect| < margin for the pooled
    mean with this SE and t on `df` degrees of freedom, and whether the prediction interval
    for a new experiment (t on K - 2 df, tau^2 + SE^2) lies inside +-margin (always True for
    K < 3, where none is defined and the claim is about these experiments only). The
    decomposition's verdict and the planner's equivalence power both use this function."""
    mean, se, tau2 = (np.asarray(x, dtype=float) for x in (mean, se, tau2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.maximum(stats.t.sf((mean + margin) / se, df), stats.t.cdf((mean - margin) / se, df))
    if k < 3:
        return p, np.ones(np.shape(mean), dtype=bool)
    half = stats.t.ppf((1 + CONFIDENCE) / 2, k - 2) * np.sqrt(tau2 + se**2)
    return p, (-margin < mean - half) & (mean + half < margin)


def adjust(pvalues: Sequence[float | None], method: str) -> list[float]:
    """Holm ('holm') or Benjamini-Hochberg ('fdr_bh') adjusted p-values; None/NaN stay NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.array([math.nan if x is None else x for x in pvalues], dtype=float)
    out = np.full(len(p), math.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out.tolist()


def tost_p(est: Estimate, margin: float) -> float:
    """Two one-sided tests of |effect| < margin: p < 0.05 claims equivalence (no effect as
    large as `margin`). Uses the estimate's SE and degrees of freedom."""
    if est.se is None or not np.isfinite(est.se) or est.se <= 0:
        return math.nan
    df = est.df if est.df is not None else math.inf
    lower = stats.t.sf((est.value + margin) / est.se, df)
    upper = stats.t.cdf((est.value - margin) / est.se, df)
    return float(max(lower, upper))


def minimum_detectable_effect(est: Estimate, power: float = 0.8) -> float:
    """The smallest true effect a two-sided 5% test with this SE detects with `power`."""
    if est.se is None or not np.isfinite(est.se) or est.se <= 0:
        return math.nan
    df = est.df if est.df is not None else math.inf
    return float((stats.t.ppf((1 + CONFIDENCE) / 2, df) + stats.t.ppf(power, df)) * est.se)
