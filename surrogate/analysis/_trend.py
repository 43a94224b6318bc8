"""Trends in post-training misalignment across a grid of model pairs, with the design's unit
of replication.

Pairs are not independent replications of a trend across generations: the pairs of one
family's generation share that generation's recipe (data, objective, tokenizer), and some
share a base model. A test that counts pairs rejected a true null 30% of the time on a
3 x 3 x 3 grid with a recipe effect of SD 0.2, and 33% on a grid shaped like the paper's.
So:

- **generation** (a step per generation within a family, 0, 1, 2, ... in the order of the
  generation numbers: Qwen 1.5 -> 2 -> 2.5 -> 3, Llama 3 -> 3.1 -> 3.2): the unit is the
  *cell* (family, generation). Each pair's d is first adjusted for post-training type and
  log size by their effects within cells (so cells of different composition compare), the
  cells' means are regressed on the step with a family intercept each, with working weights
  1 / (tau^2 + s_c^2 / n_cell) (tau^2 between cells by Paule-Mandel, s_c^2 the cell's
  within-cell variance shrunk toward the pooled one), and the slope is tested with the cluster-robust CR2 variance and
  Bell-McCaffrey degrees of freedom (Tipton, 2015), each cell its own cluster: valid when the
  working weights are wrong, as under noise that differs between generations.
- **log10 size**: sizes vary within cells, so the slope is estimated within cells (a cell
  intercept each, type adjusted) and its variance is clustered by cell (pairs of one recipe,
  and those sharing a base, are one cluster), CR2 with Bell-McCaffrey degrees of freedom.

A design with fewer than 2 degrees of freedom for a trend (e.g. one family with three
generations, or two families with two each) gets no p-value: its summary says the design
cannot support the test. statsmodels offers the CR1 cluster variance only, whose t test on
G - 1 df is anti-conservative with as few clusters as a model grid has; hence CR2 here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from ._stats import CONFIDENCE, Estimate

MIN_DF = 2.0
PRIOR_DF = 2.0


class Trend(BaseModel):
    """Does misalignment change with a pair property? `covariate`: `generation` (per step
    within a family) or `log10_size_b`; `d`: the effect size trended (`d_paper` or
    `cohens_d`); `slope`: its estimate, with a CI and p only where `status` is "ok"."""

    model_config = ConfigDict(frozen=True)
    covariate: str
    d: str = "d_paper"
    slope: Estimate
    status: str = "ok"
    n_pairs: int
    n_families: int = 1
    n_cells: int = 0
    n_experiments: int
    df: float = math.nan
    left_out: list[str] = []
    method: str = ""


def cr2_test(X: np.ndarray, y: np.ndarray, clusters: Sequence, j: int = 0,
             weights: np.ndarray | None = None) -> tuple[float, float, float]:
    """Coefficient j of the (weighted) least-squares fit of y on X, its CR2 cluster-robust SE
    (Bell & McCaffrey, 2002) and the Bell-McCaffrey (Satterthwaite) degrees of freedom of its
    t statistic (Imbens & Kolesar, 2016; Tipton, 2015)."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if weights is not None:
        root = np.sqrt(np.asarray(weights, dtype=float))
        X, y = X * root[:, None], y * root
    n, k = X.shape
    bread = np.linalg.pinv(X.T @ X)
    beta = bread @ X.T @ y
    resid = y - X @ beta
    hat = X @ bread @ X.T
    annihilator = np.eye(n) - hat
    ell = np.zeros(k)
    ell[j] = 1.0
    labels = np.asarray(clusters)
    meat = np.zeros((k, k))
    columns = []
    for g in dict.fromkeys(labels.tolist()):
        idx = np.flatnonzero(labels == g)
        values, vectors = np.linalg.eigh(np.eye(len(idx)) - hat[np.ix_(idx, idx)])
        adjust = vectors @ np.diag(np.clip(values, 1e-12, None) ** -0.5) @ vectors.T
        score = X[idx].T @ adjust @ resid[idx]
        meat += np.outer(score, score)
        columns.append(annihilator[idx, :].T @ adjust @ X[idx] @ bread @ ell)
    se = math.sqrt(max(float((bread @ meat @ bread)[j, j]), 0.0))
    lam = np.linalg.eigvalsh(np.column_stack(columns).T @ np.column_stack(columns))
    df = float(lam.sum() ** 2 / np.sum(lam**2)) if np.sum(lam**2) > 0 else math.nan
    return float(beta[j]), se, df


def paule_mandel(y: np.ndarray, X: np.ndarray, v: np.ndarray) -> float:
    """Between-unit variance tau^2 of a meta-regression of y on X with within variances v:
    the tau^2 at which the weighted residual sum of squares equals its df (0 if it is below
    at 0)."""
    k, p = X.shape

    def q(t2: float) -> float:
        w = 1 / (v + t2)
        beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
        return float(np.sum(w * (y - X @ beta) ** 2))

    if k - p < 1 or q(0.0) <= k - p:
        return 0.0
    lo, hi = 0.0, max(float(np.var(y)) * 10, 1e-12)
    while q(hi) > k - p:
        hi *= 10
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if q(mid) > k - p else (lo, mid)
    return (lo + hi) / 2


def _dummies(labels: Sequence[str], drop_first: bool) -> np.ndarray:
    levels = sorted(set(labels))[1 if drop_first else 0:]
    return np.array([[float(x == lv) for lv in levels] for x in labels]).reshape(len(labels), len(levels))


def _estimable(base: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The candidate columns that add to the rank of `base` (effects identified within cells)."""
    keep = base
    for c in candidates.T:
        trial = np.column_stack([keep, c])
        if np.linalg.matrix_rank(trial) > np.linalg.matrix_rank(keep):
            keep = trial
    return keep[:, base.shape[1]:]


def _within_cell_adjusted(y: np.ndarray, cells: list[str], types: list[str], log_size: np.ndarray) -> np.ndarray:
    """y minus the effects of post-training type and log size estimated within cells
    (centred: the adjustment moves cells to a common composition, not the mean)."""
    cell_x = _dummies(cells, drop_first=False)
    candidates = [_dummies(types, drop_first=True)]
    if np.isfinite(log_size).all():
        candidates.append((log_size - log_size.mean())[:, None])
    extra = _estimable(cell_x, np.column_stack(candidates))
    if extra.shape[1] == 0:
        return y
    beta = np.linalg.lstsq(np.column_stack([cell_x, extra]), y, rcond=None)[0]
    effect = extra @ beta[cell_x.shape[1]:]
    return y - (effect - effect.mean())


def _t_estimate(value: float, se: float, df: float, n: int) -> Estimate:
    from scipy import stats

    if not (np.isfinite(se) and se > 0 and np.isfinite(df) and df > 0):
        return Estimate(value=value, lo=math.nan, hi=math.nan, n=n)
    crit = stats.t.ppf((1 + CONFIDENCE) / 2, df)
    p = float(2 * stats.t.sf(abs(value / se), df))
    return Estimate(value=value, lo=value - crit * se, hi=value + crit * se, p=p, n=n, se=se, df=df)


class TrendPair(BaseModel):
    """What a trend needs of one pair: its grid position and its d (mean over experiments)."""

    model_config = ConfigDict(frozen=True)
    label: str
    family: str
    generation: float | None
    post_training: str
    log10_size_b: float | None
    d: float


def generation_trend(pairs: Sequence[TrendPair], *, d: str, n_experiments: int) -> Trend:
    """The trend per generation step within families, cells as the units (see module doc)."""
    by_family: dict[str, set[float]] = defaultdict(set)
    for p in pairs:
        by_family[p.family].add(p.generation)
    informative = {f for f, g in by_family.items() if len(g) >= 2}
    left_out = sorted(set(by_family) - informative)
    used = [p for p in pairs if p.family in informative]
    step_of = {f: {g: i for i, g in enumerate(sorted(by_family[f]))} for f in informative}
    cells = [f"{p.family}\x1f{p.generation:g}" for p in used]
    names = sorted(set(cells))
    n_cells, n_fam = len(names), len(informative)
    method = ("cells (family x generation) as units; type- and size-adjusted cell means on the step with family "
              "intercepts, weights 1/(tau^2 + s_c^2/n), CR2 variance, Bell-McCaffrey df")
    common = dict(covariate="generation", d=d, n_pairs=len(used), n_families=n_fam, n_cells=n_cells,
                  n_experiments=n_experiments, left_out=left_out, method=method)
    if n_cells - n_fam - 1 < MIN_DF:
        why = (f"not testable: {n_cells} generation(s) in {n_fam} famil{'y' if n_fam == 1 else 'ies'} with two or "
               f"more leave {max(n_cells - n_fam - 1, 0)} df between generations (needs {MIN_DF:g}); pairs of one "
               "generation share its recipe, so more pairs per generation do not help")
        return Trend(slope=Estimate(value=math.nan, lo=math.nan, hi=math.nan, n=len(used)), status=why, **common)
    y = np.array([p.d for p in used])
    size = np.array([p.log10_size_b if p.log10_size_b is not None else math.nan for p in used])
    adjusted = _within_cell_adjusted(y, cells, [p.post_training for p in used], size)
    members = {c: np.flatnonzero(np.array(cells) == c) for c in names}
    mean = np.array([adjusted[members[c]].mean() for c in names])
    count = np.array([len(members[c]) for c in names], dtype=float)
    ss = np.array([float(np.sum((adjusted[members[c]] - mean[i]) ** 2)) for i, c in enumerate(names)])
    within_df = count - 1
    s2 = float(ss.sum() / within_df.sum()) if within_df.sum() > 0 else 0.0
    family_of = [c.split("\x1f")[0] for c in names]
    step = np.array([step_of[f][float(c.split("\x1f")[1])] for f, c in zip(family_of, names)], dtype=float)
    X = np.column_stack([step, _dummies(family_of, drop_first=False)])
    if s2 > 0:
        # Each cell's own within variance, shrunk toward the pooled one (as if it had PRIOR_DF
        # more degrees of freedom at the pooled value): noise that differs between generations
        # is weighted as it is, without trusting a variance from two or three pairs alone.
        v = (ss + PRIOR_DF * s2) / (within_df + PRIOR_DF) / count
        weights = 1 / (v + paule_mandel(mean, X, v))
    else:
        weights = np.ones(n_cells)
    value, se, df = cr2_test(X, mean, list(range(n_cells)), 0, weights)
    return Trend(slope=_t_estimate(value, se, df, len(used)), df=df, **common)


def size_trend(pairs: Sequence[TrendPair], *, d: str, n_experiments: int) -> Trend:
    """The trend per decade of parameters, within cells, clustered by cell (see module doc)."""
    with_size = [p for p in pairs if p.log10_size_b is not None]
    cells = [f"{p.family}\x1f{'' if p.generation is None else f'{p.generation:g}'}" for p in with_size]
    spread = defaultdict(set)
    for c, p in zip(cells, with_size):
        spread[c].add(p.log10_size_b)
    informative = {c for c, s in spread.items() if len(s) >= 2}
    used = [(c, p) for c, p in zip(cells, with_size) if c in informative]
    left_out = sorted({c.replace("\x1f", " ").strip() for c in spread if c not in informative})
    method = "within cells (family x generation), type adjusted; CR2 variance clustered by cell, Bell-McCaffrey df"
    common = dict(covariate="log10_size_b", d=d, n_pairs=len(used), n_families=len({p.family for _, p in used}),
                  n_cells=len(informative), n_experiments=n_experiments, left_out=left_out, method=method)
    nan = Estimate(value=math.nan, lo=math.nan, hi=math.nan, n=len(used))
    if len(informative) < 2:
        return Trend(slope=nan, status=f"not testable: {len(informative)} generation(s) with two or more sizes "
                                       "(sizes are compared within a generation, whose pairs share a recipe)",
                     **common)
    labels = [c for c, _ in used]
    y = np.array([p.d for _, p in used])
    x = np.array([p.log10_size_b for _, p in used])
    cell_x = _dummies(labels, drop_first=False)
    types = _estimable(np.column_stack([x, cell_x]), _dummies([p.post_training for _, p in used], drop_first=True))
    X = np.column_stack([x, cell_x, types])
    value, se, df = cr2_test(X, y, labels, 0)
    if not df >= MIN_DF:
        return Trend(slope=Estimate(value=value, lo=math.nan, hi=math.nan, n=len(used)), df=df,
                     status=f"not testable: {df:.2g} df from {len(informative)} generations with two or more sizes",
                     **common)
    return Trend(slope=_t_estimate(value, se, df, len(used)), df=df, **common)
