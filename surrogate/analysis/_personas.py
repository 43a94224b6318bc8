"""Does a persona help predict this person, or only people in general?

From per-participant mean NLL under `none`, a control (`shuffled`: someone else's persona;
or `population`: the experiment's pooled persona) and the matched persona:

    total benefit        = none     - matched
    population component = none     - control
    individual component = control  - matched      (total = population + individual)

Positive means the persona lowers NLL. Per experiment the components are paired means over
participants; pooled, experiments count equally (as the paper averages across
experiments). Confidence intervals come from a cluster bootstrap (participants within
experiments, then experiments); the individual component's p-value from a permutation test
that swaps matched and control personas within participants, which is what exchangeability
under "no individual-level information" licenses.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ._stats import (
    Estimate,
    bootstrap_mean,
    cluster_bootstrap,
    cohens_d,
    mean_of_means,
    paired_dz,
    paired_permutation_p,
)


def paired_means(frame: pd.DataFrame, column: str, levels: list[str], *, by: str = "study") -> pd.DataFrame:
    """One row per participant, one column per level of `column` (persona strategies, or
    models), each the mean NLL over the responses scored under every level, so that cut or
    unscored responses never make the levels compare different responses."""
    frame = frame[frame[column].isin(levels) & frame["nll"].notna()]
    missing = set(levels) - set(frame[column])
    if missing:
        raise ValueError(f"no scored responses for {column} {sorted(missing)}")
    keys = [by, "experiment", "participant"]
    wide = frame.pivot_table(index=[*keys, "response_index"], columns=column, values="nll",
                             aggfunc="first")
    wide = wide[levels].dropna()
    means = wide.groupby(level=keys).mean()
    means["n_responses"] = wide.groupby(level=keys).size()
    means.columns.name = None
    return means.reset_index().rename(columns={by: "unit"})


def participant_means(
    responses: pd.DataFrame,
    strategies: list[str],
    *,
    model: str | None = None,
    by: str = "study",
) -> pd.DataFrame:
    """Per-participant mean NLL under each persona strategy, for one model."""
    frame = responses if model is None else responses[responses["model"] == model]
    models = frame["model"].unique()
    if len(models) != 1:
        raise ValueError(f"choose one model; the table holds {list(models)}")
    return paired_means(frame, "persona", strategies, by=by)


class ComponentRow(BaseModel):
    """The decomposition for one experiment (or pooled)."""

    model_config = ConfigDict(frozen=True)
    experiment: str
    n_participants: int
    total: Estimate
    population_component: Estimate
    individual_component: Estimate
    d_z_total: float
    d_z_population: float
    d_z_individual: float


class PersonaDecomposition(BaseModel):
    """Results of `decompose_personas`: per-experiment rows, the pooled row, the mixed model."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    model: str
    matched: str
    control: str
    rows: list[ComponentRow]
    pooled: ComponentRow
    mixed: "MixedModelResult | None" = None

    def to_frame(self) -> pd.DataFrame:
        """The persona_effects.csv table: one row per experiment plus 'pooled'."""
        records = []
        for row in [*self.rows, self.pooled]:
            rec = {"experiment": row.experiment, "n_participants": row.n_participants}
            for name in ("total", "population_component", "individual_component"):
                est: Estimate = getattr(row, name)
                rec |= {name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi}
            rec |= {"individual_p": row.individual_component.p, "d_z_individual": row.d_z_individual,
                    "d_z_total": row.d_z_total, "d_z_population": row.d_z_population}
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def summary(self) -> str:
        p = self.pooled
        lines = [
            f"Persona decomposition for {self.model}: matched = {self.matched}, control = {self.control}",
            "(positive = the persona lowers NLL, nats per response; 95% cluster-bootstrap CIs)",
            f"  total benefit        {p.total}",
            f"  population component {p.population_component}",
            f"  individual component {p.individual_component}   d_z = {p.d_z_individual:.3f}",
        ]
        if self.mixed is not None:
            lines += ["", self.mixed.summary()]
        return "\n".join(lines)


class MixedModelResult(BaseModel):
    """Fixed effects of strategy (vs `none`) from a linear mixed model."""

    model_config = ConfigDict(frozen=True)
    formula: str
    effects: dict[str, Estimate]
    n_participants: int
    n_experiments: int
    note: str = ""

    def summary(self) -> str:
        experiments = f"{self.n_experiments} experiment{'s' if self.n_experiments != 1 else ''}"
        head = (f"Mixed model {self.formula} ({self.n_participants} participants, {experiments})"
                f"{' - ' + self.note if self.note else ''}")
        return "\n".join([head, *(f"  {k:<22} {v}" for k, v in self.effects.items())])


PersonaDecomposition.model_rebuild()


def _component_row(name: str, groups: dict[str, pd.DataFrame], none: str, control: str, matched: str,
                   *, n_boot: int, n_perm: int, seed: int) -> ComponentRow:
    frames = list(groups.values())
    diffs = {
        "total": [f[none].to_numpy() - f[matched].to_numpy() for f in frames],
        "population_component": [f[none].to_numpy() - f[control].to_numpy() for f in frames],
        "individual_component": [f[control].to_numpy() - f[matched].to_numpy() for f in frames],
    }
    n = sum(len(f) for f in frames)
    estimates = {}
    for key, parts in diffs.items():
        value = mean_of_means(parts)
        if n_boot == 0:
            lo = hi = math.nan
        elif len(parts) == 1:
            lo, hi = bootstrap_mean(parts[0], n_resamples=n_boot, seed=seed)
        else:
            lo, hi = cluster_bootstrap(parts, mean_of_means, n_resamples=n_boot, seed=seed)
        p = None
        if key == "individual_component":
            weights = np.concatenate([np.full(len(f), 1 / (len(f) * len(frames))) for f in frames])
            p = paired_permutation_p(np.concatenate([f[control].to_numpy() for f in frames]),
                                     np.concatenate([f[matched].to_numpy() for f in frames]),
                                     weights, n_resamples=n_perm, seed=seed)
        estimates[key] = Estimate(value=value, lo=lo, hi=hi, p=p, n=n)
    dz = {k: float(np.mean([paired_dz(d) for d in parts])) for k, parts in diffs.items()}
    return ComponentRow(experiment=name, n_participants=n, total=estimates["total"],
                        population_component=estimates["population_component"],
                        individual_component=estimates["individual_component"],
                        d_z_total=dz["total"], d_z_population=dz["population_component"],
                        d_z_individual=dz["individual_component"])


def decompose_personas(
    responses: pd.DataFrame,
    *,
    model: str | None = None,
    matched: str = "interview",
    control: str = "shuffled",
    none: str = "none",
    by: str = "study",
    n_boot: int = 2000,
    n_perm: int = 9999,
    mixed: bool = True,
    seed: int = 0,
) -> PersonaDecomposition:
    """Split a persona's benefit into population- and individual-level components.

    `responses`: the per-response table of `surrogate run` (one model, or choose `model`).
    `by`: the experiment unit, `study` (Psych-201's experiments) or `experiment`.
    `n_boot=0` skips the bootstrap (fast, for simulations).
    """
    strategies = [none, control, matched]
    means = participant_means(responses, strategies, model=model, by=by)
    groups = {str(u): g for u, g in means.groupby("unit", sort=True) if len(g) >= 2}
    if not groups:
        raise ValueError("no experiment has two or more participants scored under "
                         f"{strategies}")
    rows = [_component_row(u, {u: g}, none, control, matched, n_boot=n_boot, n_perm=n_perm, seed=seed)
            for u, g in groups.items()]
    pooled = _component_row("pooled", groups, none, control, matched, n_boot=n_boot, n_perm=n_perm,
                            seed=seed)
    model_name = model or str(responses["model"].iloc[0])
    mm = None
    if mixed:
        extra = [s for s in ("population", "shuffled") if s not in strategies
                 and s in set(responses["persona"])]
        try:
            mm = mixed_model(responses, [*strategies, *extra], model=model_name, by=by, reference=none)
        except ValueError as e:
            mm = MixedModelResult(formula="not fitted", effects={}, n_participants=0, n_experiments=0,
                                  note=str(e))
    return PersonaDecomposition(model=model_name, matched=matched, control=control, rows=rows,
                                pooled=pooled, mixed=mm)


MAX_MIXED_PARTICIPANTS = 1500  # per experiment: its design matrix is dense in statsmodels


def mixed_model(
    responses: pd.DataFrame,
    strategies: list[str],
    *,
    model: str | None = None,
    by: str = "study",
    reference: str = "none",
) -> MixedModelResult:
    """NLL ~ strategy on participant x strategy means, with participant random intercepts
    and experiment as a variance component (statsmodels MixedLM)."""
    import statsmodels.formula.api as smf

    means = participant_means(responses, strategies, model=model, by=by)
    long = means.melt(id_vars=["unit", "experiment", "participant"], value_vars=strategies,
                      var_name="strategy", value_name="nll")
    long["pid"] = long["unit"].astype(str) + "/" + long["experiment"].astype(str) + "/" + long["participant"].astype(str)
    sizes = long.groupby("unit")["pid"].nunique()
    if sizes.max() > MAX_MIXED_PARTICIPANTS:
        raise ValueError(f"experiment {sizes.idxmax()} has {sizes.max()} participants; the mixed "
                         f"model is fitted up to {MAX_MIXED_PARTICIPANTS} per experiment")
    formula = f"nll ~ C(strategy, Treatment(reference='{reference}'))"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if long["unit"].nunique() > 1:
            fit = smf.mixedlm(formula, long, groups="unit", re_formula="1",
                              vc_formula={"participant": "0 + C(pid)"}).fit(reml=True)
            shown = f"{formula} + (1 | experiment) + (1 | participant)"
        else:
            fit = smf.mixedlm(formula, long, groups="pid").fit(reml=True)
            shown = f"{formula} + (1 | participant)"
    ci = fit.conf_int()
    effects = {}
    for name in fit.fe_params.index:
        if name == "Intercept":
            continue
        label = name.split("[T.")[-1].rstrip("]")
        effects[label] = Estimate(value=float(fit.fe_params[name]), lo=float(ci.loc[name, 0]),
                                  hi=float(ci.loc[name, 1]), p=float(fit.pvalues[name]),
                                  n=int(long["pid"].nunique()))
    return MixedModelResult(formula=shown, effects=effects, n_participants=int(long["pid"].nunique()),
                            n_experiments=int(long["unit"].nunique()),
                            note="effects are NLL differences from " + reference)


class MetadataBenefit(BaseModel):
    """The paper's meta-data benefit: Cohen's d of (none - interview) per experiment, averaged."""

    model_config = ConfigDict(frozen=True)
    per_experiment: dict[str, float]
    mean: Estimate

    def to_frame(self) -> pd.DataFrame:
        rows = [{"experiment": k, "cohens_d": v} for k, v in self.per_experiment.items()]
        rows.append({"experiment": "mean", "cohens_d": self.mean.value, "lo": self.mean.lo,
                     "hi": self.mean.hi})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        return (f"Meta-data benefit (paper's measure, d of none - interview, averaged over "
                f"experiments): {self.mean}\n  It mixes population- and individual-level effects; "
                "see the decomposition for which one it is.")


def metadata_benefit(responses: pd.DataFrame, *, model: str | None = None, none: str = "none",
                     persona: str = "interview", by: str = "study", n_boot: int = 2000,
                     seed: int = 0) -> MetadataBenefit:
    means = participant_means(responses, [none, persona], model=model, by=by)
    per = {str(u): cohens_d(g[none], g[persona]) for u, g in means.groupby("unit") if len(g) >= 2}
    values = np.array([v for v in per.values() if np.isfinite(v)])
    lo, hi = bootstrap_mean(values, n_resamples=n_boot, seed=seed) if len(values) > 1 else (math.nan, math.nan)
    return MetadataBenefit(per_experiment=per, mean=Estimate(value=float(values.mean()) if len(values) else math.nan,
                                                              lo=lo, hi=hi, n=len(values)))
