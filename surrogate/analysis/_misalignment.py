"""Post-training misalignment, as the paper defines it, with honest uncertainty.

For a (base, post-trained) pair and an experiment, two effect sizes of the post-trained
model's minus the base model's NLL (positive: the post-trained model predicts people worse):
`d_paper`, the paper's (over all response rows, unpaired; its scale depends on transcript
length), with a participant-bootstrap interval; and `cohens_d`, surrogate's per-participant
paired d with a delta-method interval. Each is averaged across experiments, and by domain.

Whether misalignment changes across generations (or sizes) is a question about the grid of
pairs, whose unit of replication is the generation: pairs of one generation share its recipe
(see `_trend`). One d per pair (its mean over the experiments every pair has), then the
generation trend on cells (family x generation) and the size trend within cells, each with
cluster-robust small-sample inference, or "not testable" where the design has too few
generations.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .._toml import read_toml

from ._personas import SESSION, check_by, paired_means, person_means, response_matrix, unit_column
from ._inference import mean_estimate
from ._stats import CONFIDENCE, Estimate, cohens_d
from ._trend import Trend, TrendPair, generation_trend, size_trend


def _number_as_text(v: object) -> object:
    """`generation = 3` in TOML is as good as `generation = "3"`."""
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


Generation = Annotated[str, BeforeValidator(_number_as_text)]


class ModelPair(BaseModel):
    """A base model and its post-trained version, by their `model` labels in the table."""

    model_config = ConfigDict(frozen=True)
    base: str
    post_trained: str
    family: str = Field("", description="Optional label, e.g. 'Qwen3'.")
    generation: Generation = Field("", description="Optional, e.g. '2.5' or a release year, to compare generations "
                                            "within a family.")
    post_training: str = Field("", description="Optional type: instruction-tuned, reasoning, code, math, vision.")
    size_b: float | None = Field(None, description="Optional parameter count in billions.")

    @property
    def label(self) -> str:
        return f"{self.post_trained} vs {self.base}"


PAPER_PAIRS = Path(__file__).parent / "data" / "paper_grid.toml"


def read_pairs(path: str | Path) -> list[ModelPair]:
    """A TOML file of `[[pairs]]` tables with `base`, `post_trained` (and optional `family`,
    `generation`, `post_training`, `size_b`); `paper` is the built-in file of the paper's grid."""
    path = PAPER_PAIRS if str(path) == "paper" else Path(path)
    data = read_toml(path)
    entries = data.get("pairs")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected one or more [[pairs]] tables with base and post_trained")
    out = []
    for i, entry in enumerate(entries, start=1):
        try:
            out.append(ModelPair(**entry))
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise ValueError(f"{path}: pair {i}: {problems}") from None
    return out


def read_categories(path: str | Path) -> dict[str, list[str]]:
    """Study -> domains from a categories.csv (first column the study; 0/1 domain columns)."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        domains = [h for h in header[1:] if h not in ("dataset",)]
        out = {}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            values = dict(zip(header[1:], row[1:]))
            try:
                out[row[0]] = [d for d in domains if int(values.get(d, "0") or 0) == 1]
            except ValueError:
                raise ValueError(f"{path}:{line}: domain flags must be 0 or 1") from None
    return out


class PairMisalignment(BaseModel):
    model_config = ConfigDict(frozen=True)
    pair: ModelPair
    per_experiment: dict[str, Estimate]
    n_participants: dict[str, int]
    d_paper: dict[str, float]
    mean: Estimate
    mean_paper: float
    by_domain: dict[str, Estimate]
    # Participant-bootstrap 95% intervals of the paper's d, per experiment and of its mean
    # over these experiments; and the paper's d by domain (mean over the domain's experiments).
    d_paper_interval: dict[str, tuple[float, float]] = {}
    mean_paper_interval: tuple[float, float] = (math.nan, math.nan)
    paper_by_domain: dict[str, float] = {}
    # the 95% participant-bootstrap interval of each domain's mean paper's d (its experiments fixed)
    paper_domain_interval: dict[str, tuple[float, float]] = {}


class Misalignment(BaseModel):
    """Results of `post_training_misalignment`, one entry per pair."""

    model_config = ConfigDict(frozen=True)
    pairs: list[PairMisalignment]
    trends: list[Trend] = []
    notes: list[str] = []

    def trend_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"covariate": t.covariate, "d": t.d, "slope": t.slope.value, "lo": t.slope.lo,
                              "hi": t.slope.hi, "p": t.slope.p, "status": t.status, "n_pairs": t.n_pairs,
                              "n_families": t.n_families, "n_cells": t.n_cells, "df": t.df,
                              "n_experiments": t.n_experiments, "left_out": ";".join(t.left_out),
                              "method": t.method} for t in self.trends])

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for pm in self.pairs:
            common = {"pair": pm.pair.label, "base": pm.pair.base, "post_trained": pm.pair.post_trained,
                      "family": pm.pair.family, "generation": pm.pair.generation,
                      "post_training": pm.pair.post_training, "size_b": pm.pair.size_b}
            for exp in sorted(set(pm.per_experiment) | set(pm.d_paper)):
                est = pm.per_experiment.get(exp)
                lo, hi = pm.d_paper_interval.get(exp, (math.nan, math.nan))
                rows.append({**common, "level": "experiment", "experiment": exp,
                             "cohens_d": est.value if est else math.nan, "lo": est.lo if est else math.nan,
                             "hi": est.hi if est else math.nan, "d_paper": pm.d_paper.get(exp, math.nan),
                             "d_paper_lo": lo, "d_paper_hi": hi, "n": pm.n_participants.get(exp, 0)})
            rows.append({**common, "level": "pooled", "experiment": "pooled", "cohens_d": pm.mean.value,
                         "lo": pm.mean.lo, "hi": pm.mean.hi, "d_paper": pm.mean_paper,
                         "d_paper_lo": pm.mean_paper_interval[0], "d_paper_hi": pm.mean_paper_interval[1],
                         "n": pm.mean.n})
            for name, est in pm.by_domain.items():
                lo, hi = pm.paper_domain_interval.get(name, (math.nan, math.nan))
                rows.append({**common, "level": "domain", "experiment": name, "cohens_d": est.value,
                             "lo": est.lo, "hi": est.hi, "d_paper": pm.paper_by_domain.get(name, math.nan),
                             "d_paper_lo": lo, "d_paper_hi": hi, "n": est.n})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = ["Post-training misalignment (d of post-trained - base NLL; > 0: worse at predicting people), "
                 "averaged over experiments. The paper's d (response rows) with a participant-bootstrap 95% "
                 "interval; surrogate's per-participant d with a t interval over experiments:"]
        for pm in self.pairs:
            lo, hi = pm.mean_paper_interval
            paper = (f"{pm.mean_paper:+.4f} [{lo:+.4f}, {hi:+.4f}]" if np.isfinite(lo) else
                     f"{pm.mean_paper:+.4f}" if np.isfinite(pm.mean_paper) else
                     "not defined (needs two experiments)")
            lines.append(f"  {pm.pair.label:<30} paper's d {paper};  per-participant d {pm.mean}")
            for dom, est in pm.by_domain.items():
                lines.append(f"      {dom:<26} paper's d {pm.paper_by_domain.get(dom, math.nan):+.4f}; per-participant {est}")
        for t in self.trends:
            per = "generation step within a family" if t.covariate == "generation" else "tenfold parameters"
            where = (f"{t.n_pairs} pairs in {t.n_cells} generation(s) of {t.n_families} "
                     f"famil{'y' if t.n_families == 1 else 'ies'}, one d per pair over {t.n_experiments} experiments")
            if t.status != "ok":
                lines.append(f"  trend of {t.d} per {per}: {t.status} ({where})")
            else:
                lines.append(f"  trend of {t.d} per {per}: {t.slope} ({where}; {t.df:.3g} df: {t.method})")
            if t.left_out:
                what = "a single generation" if t.covariate == "generation" else "a single size"
                lines.append(f"      left out ({what}): {', '.join(t.left_out)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def row_moments(responses: pd.DataFrame, *, by: str = "study") -> pd.DataFrame:
    """Mean and SD (ddof=1) of the NLL over all response rows, per model and experiment unit:
    what the paper's d is made of, computed once for a grid of pairs."""
    d = responses[responses["nll"].notna()]
    return d.groupby(["model", unit_column(by)])["nll"].agg(["mean", "std"])


def paper_misalignment_d(responses: pd.DataFrame, base: str, post: str, *, by: str = "study",
                         moments: pd.DataFrame | None = None) -> dict[str, float]:
    """plot.py: per experiment, (mean_post - mean_base) / sqrt((sd_base^2 + sd_post^2) / 2)
    over all response rows (SD ddof=1), for experiments both models have."""
    moments = row_moments(responses, by=by) if moments is None else moments
    models = moments.index.get_level_values(0)
    if base not in models or post not in models:
        return {}
    b, p = moments.loc[base], moments.loc[post]
    common = b.index.intersection(p.index)
    pooled = np.sqrt((b["std"].loc[common] ** 2 + p["std"].loc[common] ** 2) / 2)
    per = (p["mean"].loc[common] - b["mean"].loc[common]) / pooled
    return {str(k): float(v) for k, v in per.items()}


def paper_d_draws(responses: pd.DataFrame, base: str, post: str, *, by: str = "study", n_boot: int = 1000,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """The paper's d of each experiment in `n_boot` participant-bootstrap draws: participants
    are resampled within each experiment (the same draw for both models, whose rows they
    share), d recomputed from the resampled rows."""
    if n_boot <= 0:
        return {}
    d = responses[responses["nll"].notna() & responses["model"].isin([base, post])]
    # The resampled unit: a session (ids repeat across experiments), or a person.
    who = ["study", "participant"] if by == "study-person" else SESSION
    d = d.assign(who=d.groupby(who, sort=False).ngroup())
    rng = np.random.default_rng(seed)
    per_exp: dict[str, np.ndarray] = {}
    for exp, g in d.groupby(unit_column(by), sort=True):
        stats = g.assign(sq=g["nll"] ** 2).groupby(["who", "model"])[["nll", "sq"]].agg(["sum", "count"])
        people = sorted({p for p, _ in stats.index})
        if len(people) < 2 or set(g["model"]) != {base, post}:
            continue
        arr = {}
        for m in (base, post):
            sub = stats.xs(m, level="model").reindex(people).fillna(0.0)
            arr[m] = (sub[("nll", "sum")].to_numpy(), sub[("sq", "sum")].to_numpy(), sub[("nll", "count")].to_numpy())
        weights = rng.multinomial(len(people), np.full(len(people), 1 / len(people)), size=n_boot).astype(float)

        def moments(m):
            s1, s2, n = (weights @ x for x in arr[m])
            mean = s1 / n
            var = (s2 - n * mean**2) / (n - 1)
            return mean, var

        with np.errstate(invalid="ignore", divide="ignore"):
            mb, vb = moments(base)
            mp, vp = moments(post)
            per_exp[str(exp)] = (mp - mb) / np.sqrt((vb + vp) / 2)
    return per_exp


def _mean_interval(draws: Iterable[np.ndarray]) -> tuple[float, float]:
    """The 95% percentile interval of the mean over experiments of their bootstrap draws."""
    mean = np.nanmean(np.vstack(list(draws)), axis=0)
    return tuple(float(x) for x in np.nanpercentile(mean, [2.5, 97.5]))  # type: ignore[return-value]


def paper_d_bootstrap(responses: pd.DataFrame, base: str, post: str, *, by: str = "study", n_boot: int = 1000,
                      seed: int = 0) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """Participant-bootstrap 95% percentile intervals of the paper's d (`paper_d_draws`) per
    experiment, and of the mean over experiments from independent draws per experiment
    (experiments fixed: these experiments, as the paper averages them)."""
    return _intervals(paper_d_draws(responses, base, post, by=by, n_boot=n_boot, seed=seed))


def _intervals(per_exp: dict[str, np.ndarray]) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    intervals = {e: tuple(float(x) for x in np.nanpercentile(v, [2.5, 97.5])) for e, v in per_exp.items()}
    overall = _mean_interval(per_exp.values()) if len(per_exp) >= 2 else (math.nan, math.nan)
    return intervals, overall  # type: ignore[return-value]


def paired_d_estimate(post: np.ndarray, base: np.ndarray) -> Estimate:
    """Cohen's d of post - base per-participant means (SD averaged over the two), with a
    delta-method interval for paired data (Algina & Keselman, 2003):
    var(d) ~ 2(1 - r)/n + d^2 (1 + r^2) / (4n)."""
    from scipy import stats

    n = len(post)
    d = cohens_d(post, base)
    if n < 3 or not np.isfinite(d):
        return Estimate(value=d, lo=math.nan, hi=math.nan, n=n)
    r = float(np.corrcoef(post, base)[0, 1]) if np.std(post) > 0 and np.std(base) > 0 else 0.0
    se = math.sqrt(max(2 * (1 - r) / n + d * d * (1 + r * r) / (4 * n), 0.0))
    z = stats.norm.ppf((1 + CONFIDENCE) / 2)
    p = float(2 * stats.norm.sf(abs(d / se))) if se > 0 else None
    return Estimate(value=d, lo=d - z * se, hi=d + z * se, p=p, n=n, se=se)


def post_training_misalignment(
    responses: pd.DataFrame,
    pairs: list[ModelPair],
    *,
    categories: dict[str, list[str]] | None = None,
    persona: str = "none",
    by: str = "study",
    n_boot: int = 1000,
    seed: int = 0,
) -> Misalignment:
    """Per pair: d per experiment (participants scored by both models, same responses) with
    its interval, the paper's d (all response rows) with a participant-bootstrap interval,
    and the means over experiments (equal weights) overall and by domain; then the trends
    over generations and sizes across pairs."""
    check_by(by)
    frame = responses[responses["persona"] == persona]
    wide = response_matrix(frame, "model", by=by)
    moments = row_moments(frame, by=by)
    results = []
    for pair in pairs:
        have = set(frame["model"].unique())
        if not {pair.base, pair.post_trained} <= have:
            raise ValueError(f"pair {pair.base} -> {pair.post_trained}: no {persona!r} rows for "
                             f"{sorted({pair.base, pair.post_trained} - have)}; models in the table: {sorted(have)}")
        means = paired_means(frame, "model", [pair.base, pair.post_trained], by=by, wide=wide)
        if by == "study-person":
            means = person_means(means, [pair.base, pair.post_trained])
        per, counts = {}, {}
        for unit, g in means.groupby("unit", sort=True):
            if len(g) >= 2:
                per[str(unit)] = paired_d_estimate(g[pair.post_trained].to_numpy(), g[pair.base].to_numpy())
                counts[str(unit)] = len(g)
        values = np.array([e.value for e in per.values() if np.isfinite(e.value)])
        paper = paper_misalignment_d(frame, pair.base, pair.post_trained, by=by, moments=moments)
        finite = [v for v in paper.values() if np.isfinite(v)]
        draws = paper_d_draws(frame, pair.base, pair.post_trained, by=by, n_boot=n_boot, seed=seed)
        intervals, overall = _intervals(draws)
        members: dict[str, list[str]] = defaultdict(list)
        for exp in paper:
            for dom in (categories or {}).get(exp, []) or (["(uncategorised)"] if categories is not None else []):
                if exp in draws:
                    members[dom].append(exp)
        # each domain's mean paper's d, from the same draws (its experiments fixed)
        domain_intervals = {dom: _mean_interval([draws[e] for e in exps]) for dom, exps in members.items()}
        by_domain: dict[str, list[float]] = defaultdict(list)
        paper_domain: dict[str, list[float]] = defaultdict(list)
        if categories is not None:
            for exp, e in per.items():
                for dom in categories.get(exp, []) or ["(uncategorised)"]:
                    by_domain[dom].append(e.value)
                    if np.isfinite(paper.get(exp, math.nan)):
                        paper_domain[dom].append(paper[exp])
        results.append(PairMisalignment(
            pair=pair, per_experiment=per, n_participants=counts, d_paper=paper,
            # the paper averages only over at least two experiments
            mean_paper=float(np.mean(finite)) if len(finite) >= 2 else math.nan,
            mean=mean_estimate(values),
            by_domain={k: mean_estimate(np.array(v)) for k, v in sorted(by_domain.items())},
            d_paper_interval=intervals, mean_paper_interval=overall if len(finite) >= 2 else (math.nan, math.nan),
            paper_by_domain={k: float(np.mean(v)) for k, v in sorted(paper_domain.items())},
            paper_domain_interval=domain_intervals))
    trends, notes = misalignment_trends(results)
    return Misalignment(pairs=results, trends=trends, notes=notes)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def misalignment_trends(results: list[PairMisalignment]) -> tuple[list[Trend], list[str]]:
    """The generation trend (pairs with a family and a numeric generation) and the size
    trend (pairs with size_b), each for d_paper and cohens_d, on one d per pair: its mean
    over the experiments every pair of the trend has. See `_trend` for the tests."""
    trends, notes = [], []
    for cov, wanted in (("generation", lambda pm: _as_number(pm.pair.generation) is not None),
                        ("log10_size_b", lambda pm: bool(pm.pair.size_b))):
        with_cov = [pm for pm in results if wanted(pm)]
        if len(with_cov) < 3:
            continue
        common = set.intersection(*(set(pm.per_experiment) & set(pm.d_paper) for pm in with_cov))
        dropped = set().union(*(set(pm.per_experiment) for pm in with_cov)) - common
        if not common:
            notes.append(f"{cov} trend: the pairs share no experiment, so their d cannot be compared")
            continue
        if dropped:
            notes.append(f"{cov} trend: {len(dropped)} experiment(s) not scored for every pair left out of it "
                         f"({', '.join(sorted(dropped)[:5])}{', ...' if len(dropped) > 5 else ''})")
        for which in ("d_paper", "cohens_d"):
            pairs = []
            for pm in with_cov:
                d = [pm.d_paper[e] if which == "d_paper" else pm.per_experiment[e].value for e in sorted(common)]
                pairs.append(TrendPair(label=pm.pair.label, family=pm.pair.family or "(no family)",
                                       generation=_as_number(pm.pair.generation),
                                       post_training=pm.pair.post_training or "(untyped)",
                                       log10_size_b=math.log10(pm.pair.size_b) if pm.pair.size_b else None,
                                       d=float(np.mean(d))))
            if not all(np.isfinite(p.d) for p in pairs):
                continue
            test = generation_trend if cov == "generation" else size_trend
            trends.append(test(pairs, d=which, n_experiments=len(common)))
    return trends, notes
