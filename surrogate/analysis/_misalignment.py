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
from ._stats import Estimate, bootstrap_mean, cohens_d


class ModelPair(BaseModel):
    """A base model and its post-trained version, by their `model` labels in the table."""

    model_config = ConfigDict(frozen=True)
    base: str
    post_trained: str
    family: str = Field("", description="Optional label, e.g. 'Qwen3'.")
    generation: str = Field("", description="Optional, e.g. a release year, to compare generations.")

    @property
    def label(self) -> str:
        return self.family or f"{self.post_trained} vs {self.base}"


def read_pairs(path: str | Path) -> list[ModelPair]:
    """A TOML file of `[[pairs]]` tables with `base`, `post_trained` (and optional `family`,
    `generation`)."""
    path = Path(path)
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
    per_experiment: dict[str, float]
    n_participants: dict[str, int]
    mean: Estimate
    by_domain: dict[str, Estimate]


class Misalignment(BaseModel):
    """Results of `post_training_misalignment`, one entry per pair."""

    model_config = ConfigDict(frozen=True)
    pairs: list[PairMisalignment]

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for pm in self.pairs:
            for exp, d in pm.per_experiment.items():
                rows.append({"pair": pm.pair.label, "base": pm.pair.base, "post_trained": pm.pair.post_trained,
                             "generation": pm.pair.generation, "level": "experiment", "name": exp,
                             "cohens_d": d, "lo": math.nan, "hi": math.nan,
                             "n": pm.n_participants[exp]})
            for level, items in (("mean", {"all": pm.mean}), ("domain", pm.by_domain)):
                for name, est in items.items():
                    rows.append({"pair": pm.pair.label, "base": pm.pair.base,
                                 "post_trained": pm.pair.post_trained, "generation": pm.pair.generation,
                                 "level": level, "name": name, "cohens_d": est.value, "lo": est.lo,
                                 "hi": est.hi, "n": est.n})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = ["Post-training misalignment (Cohen's d of post-trained - base NLL; > 0: worse at "
                 "predicting people), averaged over experiments:"]
        for pm in self.pairs:
            lines.append(f"  {pm.pair.label:<30} {pm.mean}")
            for dom, est in pm.by_domain.items():
                lines.append(f"      {dom:<26} {est}")
        return "\n".join(lines)


def post_training_misalignment(
    responses: pd.DataFrame,
    pairs: list[ModelPair],
    *,
    categories: dict[str, list[str]] | None = None,
    persona: str = "none",
    by: str = "study",
    n_boot: int = 2000,
    seed: int = 0,
) -> Misalignment:
    """Per pair: d per experiment (participants scored by both models, same responses),
    the mean across experiments with a bootstrap CI over experiments, and means by domain."""
    results = []
    for pair in pairs:
        means = paired_means(responses[responses["persona"] == persona], "model",
                             [pair.base, pair.post_trained], by=by)
        per, counts = {}, {}
        for unit, g in means.groupby("unit", sort=True):
            if len(g) >= 2:
                per[str(unit)] = cohens_d(g[pair.post_trained], g[pair.base])
                counts[str(unit)] = len(g)
        values = np.array([v for v in per.values() if np.isfinite(v)])

        def estimate(vals: np.ndarray) -> Estimate:
            lo, hi = bootstrap_mean(vals, n_resamples=n_boot, seed=seed) if len(vals) > 1 else (math.nan, math.nan)
            return Estimate(value=float(vals.mean()) if len(vals) else math.nan, lo=lo, hi=hi, n=len(vals))

        by_domain: dict[str, list[float]] = defaultdict(list)
        if categories is not None:
            for exp, d in per.items():
                for dom in categories.get(exp, []) or ["(uncategorised)"]:
                    by_domain[dom].append(d)
        results.append(PairMisalignment(
            pair=pair, per_experiment=per, n_participants=counts, mean=estimate(values),
            by_domain={k: estimate(np.array(v)) for k, v in sorted(by_domain.items())}))
    return Misalignment(pairs=results)
