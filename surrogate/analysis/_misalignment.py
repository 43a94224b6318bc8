"""Post-training misalignment, as the paper defines it, with honest uncertainty.

For a (base, post-trained) pair and an experiment, two effect sizes of the post-trained
model's minus the base model's NLL (positive: the post-trained model predicts people worse):
`d_paper`, the paper's (over all response rows, unpaired; its scale depends on transcript
length), with a participant-bootstrap interval; and `cohens_d`, surrogate's per-participant
paired d with a delta-method interval. Each is averaged across experiments, and by domain.

Whether misalignment changes across generations (or sizes) is a question about pairs: each
pair differs for reasons of its own, so the trend is estimated in two stages, one d per
pair, then a regression of the pairs' d on the covariate within families (family fixed
effects), t on n_pairs - n_families - 1 degrees of freedom. The number of pairs is the
sample size.
"""

from __future__ import annotations

import csv
import math
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._personas import paired_means
from ._inference import mean_estimate
from ._stats import CONFIDENCE, Estimate, cohens_d


class ModelPair(BaseModel):
    """A base model and its post-trained version, by their `model` labels in the table."""

    model_config = ConfigDict(frozen=True)
    base: str
    post_trained: str
    family: str = Field("", description="Optional label, e.g. 'Qwen3'.")
    generation: str = Field("", description="Optional, e.g. '2.5' or a release year, to compare generations "
                                            "within a family.")
    post_training: str = Field("", description="Optional type: instruction-tuned, reasoning, code, math, vision.")
    size_b: float | None = Field(None, description="Optional parameter count in billions.")

    @field_validator("generation", mode="before")
    @classmethod
    def _number_as_text(cls, v: object) -> object:
        """`generation = 3` in TOML is as good as `generation = "3"`."""
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @property
    def label(self) -> str:
        return f"{self.post_trained} vs {self.base}"


PAPER_PAIRS = Path(__file__).parent / "data" / "paper_pairs.toml"


def read_pairs(path: str | Path) -> list[ModelPair]:
    """A TOML file of `[[pairs]]` tables with `base`, `post_trained` (and optional `family`,
    `generation`, `post_training`, `size_b`); `paper` is the built-in file of the paper's grid."""
    path = PAPER_PAIRS if str(path) == "paper" else Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
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


class Trend(BaseModel):
    """Does misalignment change with a pair property (generation within a family, log10
    size)? Two stages: each pair's d (its mean over the experiments every pair in the trend
    has), regressed on the property with family fixed effects; t on n_pairs - n_families - 1
    df. Families whose pairs share one value of the property cannot inform the slope and are
    left out (counted)."""

    model_config = ConfigDict(frozen=True)
    covariate: str
    d: str = "d_paper"  # which effect size: d_paper (the paper's) or cohens_d (per participant)
    slope: Estimate
    n_pairs: int
    n_families: int = 1
    n_experiments: int
    df: float = math.nan
    left_out: list[str] = []


class Misalignment(BaseModel):
    """Results of `post_training_misalignment`, one entry per pair."""

    model_config = ConfigDict(frozen=True)
    pairs: list[PairMisalignment]
    trends: list[Trend] = []
    notes: list[str] = []

    def trend_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"covariate": t.covariate, "d": t.d, "slope": t.slope.value, "lo": t.slope.lo,
                              "hi": t.slope.hi, "p": t.slope.p, "n_pairs": t.n_pairs, "n_families": t.n_families,
                              "df": t.df, "n_experiments": t.n_experiments,
                              "left_out": ";".join(t.left_out)} for t in self.trends])

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
                rows.append({**common, "level": "domain", "experiment": name, "cohens_d": est.value,
                             "lo": est.lo, "hi": est.hi, "d_paper": pm.paper_by_domain.get(name, math.nan),
                             "d_paper_lo": math.nan, "d_paper_hi": math.nan, "n": est.n})
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
            lines.append(f"  trend of {t.d} per unit of {t.covariate}: {t.slope} ({t.n_pairs} pairs in {t.n_families} "
                         f"famil{'y' if t.n_families == 1 else 'ies'}, {t.df:g} df; one d per pair over "
                         f"{t.n_experiments} experiments, family fixed effects)")
            if t.left_out:
                lines.append(f"      left out (a single {t.covariate} in their family): {', '.join(t.left_out)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def paper_misalignment_d(responses: pd.DataFrame, base: str, post: str, *, by: str = "study") -> dict[str, float]:
    """plot.py: per experiment, (mean_post - mean_base) / sqrt((sd_base^2 + sd_post^2) / 2)
    over all response rows (SD ddof=1), for experiments both models have."""
    d = responses[responses["nll"].notna()]
    b = d[d["model"] == base].groupby(by)["nll"]
    p = d[d["model"] == post].groupby(by)["nll"]
    common = b.mean().index.intersection(p.mean().index)
    pooled = np.sqrt((b.std().loc[common] ** 2 + p.std().loc[common] ** 2) / 2)
    per = (p.mean().loc[common] - b.mean().loc[common]) / pooled
    return {str(k): float(v) for k, v in per.items()}


def paper_d_bootstrap(responses: pd.DataFrame, base: str, post: str, *, by: str = "study", n_boot: int = 1000,
                      seed: int = 0) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """Participant-bootstrap 95% percentile intervals of the paper's d: participants are
    resampled within each experiment (the same draw for both models, whose rows they share),
    d recomputed from the resampled rows; the mean over experiments from independent draws
    per experiment (experiments fixed: these experiments, as the paper averages them)."""
    if n_boot <= 0:
        return {}, (math.nan, math.nan)
    d = responses[responses["nll"].notna() & responses["model"].isin([base, post])]
    rng = np.random.default_rng(seed)
    per_exp: dict[str, np.ndarray] = {}
    for exp, g in d.groupby(by, sort=True):
        stats = g.assign(sq=g["nll"] ** 2).groupby(["participant", "model"])[["nll", "sq"]].agg(["sum", "count"])
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
    intervals = {e: tuple(float(x) for x in np.nanpercentile(v, [2.5, 97.5])) for e, v in per_exp.items()}
    if len(per_exp) >= 2:
        mean = np.nanmean(np.vstack(list(per_exp.values())), axis=0)
        overall = tuple(float(x) for x in np.nanpercentile(mean, [2.5, 97.5]))
    else:
        overall = (math.nan, math.nan)
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
    frame = responses[responses["persona"] == persona]
    results = []
    for pair in pairs:
        have = set(frame["model"].unique())
        if not {pair.base, pair.post_trained} <= have:
            raise ValueError(f"pair {pair.base} -> {pair.post_trained}: no {persona!r} rows for "
                             f"{sorted({pair.base, pair.post_trained} - have)}; models in the table: {sorted(have)}")
        means = paired_means(frame, "model", [pair.base, pair.post_trained], by=by)
        per, counts = {}, {}
        for unit, g in means.groupby("unit", sort=True):
            if len(g) >= 2:
                per[str(unit)] = paired_d_estimate(g[pair.post_trained].to_numpy(), g[pair.base].to_numpy())
                counts[str(unit)] = len(g)
        values = np.array([e.value for e in per.values() if np.isfinite(e.value)])
        paper = paper_misalignment_d(frame, pair.base, pair.post_trained, by=by)
        finite = [v for v in paper.values() if np.isfinite(v)]
        intervals, overall = paper_d_bootstrap(frame, pair.base, pair.post_trained, by=by, n_boot=n_boot, seed=seed)
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
            paper_by_domain={k: float(np.mean(v)) for k, v in sorted(paper_domain.items())}))
    trends, notes = misalignment_trends(results)
    return Misalignment(pairs=results, trends=trends, notes=notes)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _pair_covariate(pair: ModelPair, covariate: str) -> float | None:
    if covariate == "generation":
        return _as_number(pair.generation)
    return math.log10(pair.size_b) if pair.size_b else None


def misalignment_trends(results: list[PairMisalignment]) -> tuple[list[Trend], list[str]]:
    """Per covariate the pairs give (numeric `generation`, `size_b` as log10 billions) and
    per effect size (d_paper, cohens_d): the two-stage trend (see Trend), where at least one
    family has two values of the covariate and the residual df are at least 1."""
    import statsmodels.api as sm

    trends, notes = [], []
    for cov in ("generation", "log10_size_b"):
        with_cov = [pm for pm in results if _pair_covariate(pm.pair, cov) is not None]
        if len(with_cov) < 3:
            continue
        # One d per pair over the experiments every pair in the trend has, so that pairs are
        # compared on the same experiments.
        common = set.intersection(*(set(pm.per_experiment) & set(pm.d_paper) for pm in with_cov))
        dropped = set().union(*(set(pm.per_experiment) for pm in with_cov)) - common
        if len(common) < 1:
            notes.append(f"{cov} trend: the pairs share no experiment, so their d cannot be compared")
            continue
        if dropped:
            notes.append(f"{cov} trend: {len(dropped)} experiment(s) not scored for every pair left out of it "
                         f"({', '.join(sorted(dropped)[:5])}{', ...' if len(dropped) > 5 else ''})")
        families: dict[str, list[PairMisalignment]] = defaultdict(list)
        for pm in with_cov:
            families[pm.pair.family or "(no family)"].append(pm)
        informative = {f: v for f, v in families.items() if len({_pair_covariate(p.pair, cov) for p in v}) >= 2}
        left_out = sorted(f for f in families if f not in informative)
        used = [pm for v in informative.values() for pm in v]
        n_fam = len(informative)
        df = len(used) - n_fam - 1
        if n_fam == 0 or df < 1:
            notes.append(f"{cov} trend: not estimable ({len(used)} pairs in {n_fam} famil"
                         f"{'y' if n_fam == 1 else 'ies'} with two or more values; needs n_pairs - n_families >= 2)")
            continue
        for which in ("d_paper", "cohens_d"):
            if which == "d_paper":
                y = np.array([np.mean([pm.d_paper[e] for e in common]) for pm in used])
            else:
                y = np.array([np.mean([pm.per_experiment[e].value for e in common]) for pm in used])
            if not np.isfinite(y).all():
                continue
            x = np.array([_pair_covariate(pm.pair, cov) for pm in used], dtype=float)
            fams = sorted(informative)
            dummies = np.array([[float((pm.pair.family or "(no family)") == f) for f in fams] for pm in used])
            design = np.column_stack([x, dummies])  # a family intercept each, no global intercept
            fit = sm.OLS(y, design).fit()
            se = float(fit.bse[0])
            from ._inference import t_estimate

            slope = t_estimate(float(fit.params[0]), se, df, len(used))
            trends.append(Trend(covariate=cov, d=which, slope=slope, n_pairs=len(used), n_families=n_fam,
                                n_experiments=len(common), df=float(df), left_out=left_out))
    return trends, notes
