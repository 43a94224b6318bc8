"""Post-training misalignment, as the paper defines it.

For a (base, post-trained) pair and an experiment: Cohen's d of the post-trained model's
minus the base model's per-participant mean NLL, with the pooled SD; positive means the
post-trained model predicts people worse. Averaged across experiments, and by domain.
"""

from __future__ import annotations

import csv
import math
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._personas import paired_means
from ._inference import mean_estimate
from ._stats import CONFIDENCE, Estimate, cohens_d


class ModelPair(BaseModel):
    """A base model and its post-trained version, by their `model` labels in the table."""

    model_config = ConfigDict(frozen=True)
    base: str
    post_trained: str
    family: str = Field("", description="Optional label, e.g. 'Qwen3'.")
    generation: str = Field("", description="Optional, e.g. '2.5' or a release year, to compare generations.")
    post_training: str = Field("", description="Optional type: instruction-tuned, reasoning, code, math, vision.")
    size_b: float | None = Field(None, description="Optional parameter count in billions.")

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


class Trend(BaseModel):
    """d regressed on a pair property (generation, log10 size) with experiment random
    intercepts (statsmodels MixedLM): does misalignment grow across generations or sizes?"""

    model_config = ConfigDict(frozen=True)
    covariate: str
    slope: Estimate
    n_pairs: int
    n_experiments: int


class Misalignment(BaseModel):
    """Results of `post_training_misalignment`, one entry per pair."""

    model_config = ConfigDict(frozen=True)
    pairs: list[PairMisalignment]
    trends: list[Trend] = []

    def trend_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"covariate": t.covariate, "slope": t.slope.value, "lo": t.slope.lo,
                              "hi": t.slope.hi, "p": t.slope.p, "n_pairs": t.n_pairs,
                              "n_experiments": t.n_experiments} for t in self.trends])

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for pm in self.pairs:
            common = {"pair": pm.pair.label, "base": pm.pair.base, "post_trained": pm.pair.post_trained,
                      "family": pm.pair.family, "generation": pm.pair.generation,
                      "post_training": pm.pair.post_training}
            for exp in sorted(set(pm.per_experiment) | set(pm.d_paper)):
                est = pm.per_experiment.get(exp)
                rows.append({**common, "level": "experiment", "experiment": exp,
                             "cohens_d": est.value if est else math.nan, "lo": est.lo if est else math.nan,
                             "hi": est.hi if est else math.nan, "d_paper": pm.d_paper.get(exp, math.nan),
                             "n": pm.n_participants.get(exp, 0)})
            rows.append({**common, "level": "pooled", "experiment": "pooled", "cohens_d": pm.mean.value,
                         "lo": pm.mean.lo, "hi": pm.mean.hi, "d_paper": pm.mean_paper, "n": pm.mean.n})
            for name, est in pm.by_domain.items():
                rows.append({**common, "level": "domain", "experiment": name, "cohens_d": est.value,
                             "lo": est.lo, "hi": est.hi, "d_paper": math.nan, "n": est.n})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = ["Post-training misalignment (Cohen's d of post-trained - base NLL; > 0: worse at "
                 "predicting people), averaged over experiments:"]
        for pm in self.pairs:
            lines.append(f"  {pm.pair.label:<30} {pm.mean}   paper's d {pm.mean_paper:+.4f}")
            for dom, est in pm.by_domain.items():
                lines.append(f"      {dom:<26} {est}")
        for t in self.trends:
            lines.append(f"  trend of d per unit of {t.covariate}: {t.slope} ({t.n_pairs} pairs, "
                         f"{t.n_experiments} experiments; experiment random intercepts)")
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
) -> Misalignment:
    """Per pair: d per experiment (participants scored by both models, same responses) with
    its interval, the paper's d (all response rows), and the mean over experiments (equal
    weights, t interval over experiments) overall and by domain."""
    frame = responses[responses["persona"] == persona]
    results = []
    for pair in pairs:
        have = set(frame["model"])
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
        by_domain: dict[str, list[float]] = defaultdict(list)
        if categories is not None:
            for exp, e in per.items():
                for dom in categories.get(exp, []) or ["(uncategorised)"]:
                    by_domain[dom].append(e.value)
        results.append(PairMisalignment(
            pair=pair, per_experiment=per, n_participants=counts, d_paper=paper,
            # the paper averages only over at least two experiments
            mean_paper=float(np.mean(finite)) if len(finite) >= 2 else math.nan,
            mean=mean_estimate(values),
            by_domain={k: mean_estimate(np.array(v)) for k, v in sorted(by_domain.items())}))
    return Misalignment(pairs=results, trends=misalignment_trends(results))


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def misalignment_trends(results: list[PairMisalignment]) -> list[Trend]:
    """Per covariate the pairs give (numeric `generation`, `size_b` as log10 billions): a
    linear mixed model d ~ covariate + (1 | experiment) over (pair, experiment) rows; only
    with at least two distinct values and two experiments."""
    import warnings

    import statsmodels.formula.api as smf

    rows = [{"d": e.value, "experiment": exp, "generation": _as_number(pm.pair.generation),
             "log10_size_b": math.log10(pm.pair.size_b) if pm.pair.size_b else None}
            for pm in results for exp, e in pm.per_experiment.items() if np.isfinite(e.value)]
    frame = pd.DataFrame(rows)
    trends = []
    for cov in ("generation", "log10_size_b"):
        if frame.empty or cov not in frame:
            continue
        sub = frame.dropna(subset=[cov]).astype({cov: float})
        if sub[cov].nunique() < 2 or sub["experiment"].nunique() < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm(f"d ~ {cov}", sub, groups="experiment").fit(reml=True)
        ci = fit.conf_int()
        n_pairs = sum(1 for pm in results if (_as_number(pm.pair.generation) if cov == "generation"
                                              else pm.pair.size_b) is not None)
        trends.append(Trend(covariate=cov, n_pairs=n_pairs, n_experiments=int(sub["experiment"].nunique()),
                            slope=Estimate(value=float(fit.fe_params[cov]), lo=float(ci.loc[cov, 0]),
                                           hi=float(ci.loc[cov, 1]), p=float(fit.pvalues[cov]),
                                           n=len(sub), se=float(fit.bse[cov]))))
    return trends
