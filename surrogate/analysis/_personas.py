"""Does a persona help predict this person, or only people in general?

From per-participant mean NLL under `none` (N), the matched persona (M) and a control (S:
`shuffled`, someone else's persona; or `population`, the experiment's pooled persona):

    total benefit        = N - M
    population component = N - S
    individual component = S - M          (total = population + individual)

Positive means the persona lowers NLL. Only participants whose matched persona uses at
least one metadata field enter (for the others matched = none, which would dilute every
component); how many were left out is reported per experiment.

A persona has an effect of its own on whoever receives it (its length, which fields it
fills). Under a derangement each persona is received twice, by its owner (M) and by one
recipient (S), so that effect cancels in the sum of S - M over each cycle of the
derangement, but not in the per-participant spread of S - M. The individual component's
uncertainty therefore treats the cycles as the independent units (cluster-robust, t on
K - 1 df). `surrogate run` draws derangements of random swaps, so an experiment of n
participants gives about n/2 independent cycles. With the population control every
participant receives the same pooled persona, so the plain S - M contrast is used; its
estimand then includes the difference between a complete persona and the pooled one (see
README).

Per experiment: t intervals and p-values (the same t statistic for both). Pooled: a
random-effects meta-analysis of the per-experiment contrasts (the mean over experiments
like these; HKSJ interval), with the fixed-effect row (these experiments) beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ._inference import (
    DEFAULT_SESOI,
    MIN_PARTICIPANTS,
    Pooled,
    adjust,
    cluster_mean_estimate,
    mean_estimate,
    minimum_detectable_effect,
    pool,
    tost_p,
)
from ._stats import Estimate, cohens_d

COMPONENTS = ("total", "population_component", "individual_component")


def _keys(by: str) -> list[str]:
    return list(dict.fromkeys([by, "experiment", "participant"]))


def paired_means(frame: pd.DataFrame, column: str, levels: list[str], *, by: str = "study") -> pd.DataFrame:
    """One row per participant, one column per level of `column` (persona strategies, or
    models), each the mean NLL over the responses scored under every level, so that cut or
    unscored responses never make the levels compare different responses. `unit` is the
    experiment unit (`by`)."""
    frame = frame[frame[column].isin(levels) & frame["nll"].notna()]
    missing = set(levels) - set(frame[column])
    if missing:
        raise ValueError(f"no scored responses for {column} {sorted(missing)}")
    keys = _keys(by)
    wide = frame.pivot_table(index=[*keys, "response_index"], columns=column, values="nll",
                             aggfunc="first")
    wide = wide[levels].dropna()
    means = wide.groupby(level=keys).mean()
    means["n_responses"] = wide.groupby(level=keys).size()
    means.columns.name = None
    means = means.reset_index()
    means.insert(0, "unit", means[by].astype(str))
    return means


def _one_model(responses: pd.DataFrame, model: str | None) -> tuple[pd.DataFrame, str]:
    frame = responses if model is None else responses[responses["model"] == model]
    models = frame["model"].unique()
    if len(models) != 1:
        raise ValueError(f"choose one model; the table holds {list(responses['model'].unique())}")
    return frame, str(models[0])


def participant_means(responses: pd.DataFrame, strategies: list[str], *, model: str | None = None,
                      by: str = "study") -> pd.DataFrame:
    """Per-participant mean NLL under each persona strategy, for one model."""
    frame, _ = _one_model(responses, model)
    return paired_means(frame, "persona", strategies, by=by)


def _first_per_participant(frame: pd.DataFrame, persona: str, column: str, by: str) -> pd.Series:
    rows = frame[frame["persona"] == persona]
    keys = _keys(by)
    return rows.groupby(keys)[column].first()


def persona_table(responses: pd.DataFrame, *, model: str | None = None, none: str = "none",
                  matched: str = "interview", control: str = "shuffled", by: str = "study",
                  extra: list[str] = ()) -> pd.DataFrame:
    """participant_means for none, control, matched, plus `has_metadata` (the matched persona
    used at least one field; True where the table does not record fields) and `donor` (whose
    persona the control was; None where not recorded)."""
    frame, _ = _one_model(responses, model)
    means = paired_means(frame, "persona", list(dict.fromkeys([none, control, matched, *extra])), by=by)
    keys = _keys(by)
    idx = pd.MultiIndex.from_frame(means[keys].astype(object))
    if "persona_fields" in frame:
        fields = _first_per_participant(frame, matched, "persona_fields", by).reindex(idx)
        means["has_metadata"] = [isinstance(f, str) and f != "" for f in fields]
    else:
        means["has_metadata"] = True
    if "persona_donor" in frame:
        donors = _first_per_participant(frame, control, "persona_donor", by).reindex(idx)
        means["donor"] = [None if d is None or (isinstance(d, float) and math.isnan(d)) else str(d)
                          for d in donors]
    else:
        means["donor"] = None
    return means


def derangement_cycles(g: pd.DataFrame) -> list[np.ndarray] | None:
    """The cycles of the control's derangement within one experiment (index arrays into g),
    from each row's donor; only cycles whose every member is in g. None when the table does
    not say whose persona each control was, or a participant received their own."""
    if g["donor"].isna().any():
        return None
    pid = g["participant"].astype(str).tolist()
    donor = g["donor"].astype(str).tolist()
    if any(p == d for p, d in zip(pid, donor)):
        return None
    row_of = {p: i for i, p in enumerate(pid)}
    seen: set[int] = set()
    cycles = []
    for start in range(len(pid)):
        if start in seen:
            continue
        path, i = [], start
        while i is not None and i not in seen and i not in path:
            path.append(i)
            i = row_of.get(donor[i])
        seen.update(path)
        if i == start:  # closed: every persona in it was given and received inside the cycle
            cycles.append(np.array(path))
    return cycles


class ComponentRow(BaseModel):
    """The decomposition for one experiment (or a pooled row)."""

    model_config = ConfigDict(frozen=True)
    experiment: str
    status: str  # "ok", "no metadata", "too few participants", or "pooled ..."
    n_participants: int
    n_without_metadata: int
    total: Estimate
    population_component: Estimate
    individual_component: Estimate
    d_z_total: float = math.nan
    d_z_population: float = math.nan
    d_z_individual: float = math.nan
    pooling: dict[str, Pooled] = {}
    # With placebo rows (P): N - P, what any persona-shaped prefix does; P - S, population-level
    # information beyond the prefix.
    prefix_component: Estimate | None = None
    population_information: Estimate | None = None


def _d_z(est: Estimate) -> float:
    """Mean over the SD that the test uses (SE x sqrt(n)): for the individual component the
    SD of the persona-paired contrast, free of persona effects."""
    if est.se is None or not np.isfinite(est.se) or est.se <= 0 or est.n < 2:
        return math.nan
    return est.value / (est.se * math.sqrt(est.n))


def _nan_estimate(value: float, n: int) -> Estimate:
    return Estimate(value=value, lo=math.nan, hi=math.nan, n=n)


def _experiment_row(name: str, g: pd.DataFrame, n_without: int, none: str, control: str, matched: str,
                    placebo: str | None = None) -> ComponentRow:
    n = len(g)
    if n == 0:
        nan = _nan_estimate(math.nan, 0)
        return ComponentRow(experiment=name, status="no metadata", n_participants=0,
                            n_without_metadata=n_without, total=nan, population_component=nan,
                            individual_component=nan)
    N, M, S = (g[c].to_numpy(dtype=float) for c in (none, matched, control))
    if n < MIN_PARTICIPANTS:
        return ComponentRow(
            experiment=name, status=f"too few participants (< {MIN_PARTICIPANTS})", n_participants=n,
            n_without_metadata=n_without, total=_nan_estimate(float(np.mean(N - M)), n),
            population_component=_nan_estimate(float(np.mean(N - S)), n),
            individual_component=_nan_estimate(float(np.mean(S - M)), n))
    total, population = mean_estimate(N - M), mean_estimate(N - S)
    cycles = derangement_cycles(g)
    individual = mean_estimate(S - M) if cycles is None else cluster_mean_estimate(S - M, cycles)
    extra = {}
    if placebo is not None and placebo in g:
        P = g[placebo].to_numpy(dtype=float)
        extra = {"prefix_component": mean_estimate(N - P), "population_information": mean_estimate(P - S)}
    return ComponentRow(experiment=name, status="ok", n_participants=n, n_without_metadata=n_without,
                        total=total, population_component=population, individual_component=individual,
                        d_z_total=_d_z(total), d_z_population=_d_z(population),
                        d_z_individual=_d_z(individual), **extra)


def _pooled_rows(rows: list[ComponentRow], n_without: int) -> list[ComponentRow]:
    ok = [r for r in rows if r.status == "ok"]
    n = sum(r.n_participants for r in ok)
    pooled = {c: pool([getattr(r, c).value for r in ok], [getattr(r, c).se or math.nan for r in ok], n)
              for c in COMPONENTS}
    if any(p is None for p in pooled.values()):
        return []
    out = []
    for label, attr in (("pooled", "random"), ("pooled_fixed", "fixed")):
        ests = {c: getattr(pooled[c], attr) for c in COMPONENTS}
        out.append(ComponentRow(
            experiment=label, status=f"{'random' if attr == 'random' else 'fixed'} effect over {len(ok)} "
            "experiment" + ("s" if len(ok) != 1 else ""), n_participants=n, n_without_metadata=n_without,
            pooling=pooled if attr == "random" else {}, **ests))
    return out


class PersonaDecomposition(BaseModel):
    """Results of `decompose_personas`: per-experiment rows and the pooled rows."""

    model_config = ConfigDict(frozen=True)
    model: str
    matched: str
    control: str
    sesoi: float
    rows: list[ComponentRow]
    pooled_rows: list[ComponentRow]
    notes: list[str] = []

    @property
    def pooled(self) -> ComponentRow:
        """The random-effects pooled row (experiments like these)."""
        if not self.pooled_rows:
            raise ValueError("no experiment could be pooled (see rows' status)")
        return self.pooled_rows[0]

    def to_frame(self) -> pd.DataFrame:
        """The persona_effects.csv table: one row per experiment plus `pooled` (random effects)
        and `pooled_fixed`."""
        records = []
        exp_rows = self.rows
        adjusted = {m: adjust([r.individual_component.p for r in exp_rows], m) for m in ("holm", "fdr_bh")}
        for i, row in enumerate([*exp_rows, *self.pooled_rows]):
            rec = {"experiment": row.experiment, "n_participants": row.n_participants}
            for name in COMPONENTS:
                est: Estimate = getattr(row, name)
                rec |= {name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi}
            ind = row.individual_component
            rec |= {"individual_p": ind.p, "d_z_individual": row.d_z_individual,
                    "status": row.status, "n_without_metadata": row.n_without_metadata,
                    "individual_p_holm": adjusted["holm"][i] if i < len(exp_rows) else math.nan,
                    "individual_p_bh": adjusted["fdr_bh"][i] if i < len(exp_rows) else math.nan,
                    "individual_tost_p": tost_p(ind, self.sesoi), "sesoi": self.sesoi,
                    "individual_mde": minimum_detectable_effect(ind),
                    "d_z_total": row.d_z_total, "d_z_population": row.d_z_population}
            for name in ("prefix_component", "population_information"):
                est = getattr(row, name)
                if est is not None:
                    rec |= {name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi, f"{name}_p": est.p}
            for name in COMPONENTS:
                est = getattr(row, name)
                rec |= {f"{name}_se": est.se, f"{name}_p": est.p}
                pooled = row.pooling.get(name)
                rec |= {f"{name}_tau2": pooled.tau2 if pooled else math.nan,
                        f"{name}_i2": pooled.i2 if pooled else math.nan,
                        f"{name}_pi_lo": pooled.pi_lo if pooled else math.nan,
                        f"{name}_pi_hi": pooled.pi_hi if pooled else math.nan}
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def summary(self) -> str:
        lines = [f"Persona decomposition for {self.model}: matched = {self.matched}, control = {self.control}",
                 "(positive = the persona lowers NLL, nats per response; 95% t intervals)"]
        if self.pooled_rows:
            p = self.pooled
            pi = p.pooling["individual_component"]
            lines += [
                f"  pooled over {pi.k} experiment(s), random effects (experiments like these):",
                f"    total benefit        {p.total}",
                f"    population component {p.population_component}",
                f"    individual component {p.individual_component}",
                f"      tau^2 = {pi.tau2:.3g}, I^2 = {pi.i2:.2f}, prediction interval "
                f"[{pi.pi_lo:+.4f}, {pi.pi_hi:+.4f}]",
                f"      equivalence (|effect| < {self.sesoi:g}): TOST p = "
                f"{tost_p(p.individual_component, self.sesoi):.3g}; minimum detectable effect "
                f"{minimum_detectable_effect(p.individual_component):.4f}",
                f"    fixed effect (these experiments): individual {self.pooled_rows[1].individual_component}",
            ]
        for r in self.rows:
            if r.status != "ok":
                lines.append(f"  {r.experiment}: {r.status}"
                             + (f" ({r.n_without_metadata} without metadata left out)" if r.n_without_metadata else ""))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def decompose_personas(
    responses: pd.DataFrame,
    *,
    model: str | None = None,
    matched: str = "interview",
    control: str = "shuffled",
    none: str = "none",
    by: str = "study",
    sesoi: float = DEFAULT_SESOI,
    placebo: str = "placebo",
) -> PersonaDecomposition:
    """Split a persona's benefit into population- and individual-level components.

    `responses`: the per-response table of `surrogate run` (one model, or choose `model`).
    `by`: the experiment unit, `study` (Psych-201's experiments) or `experiment`.
    `sesoi`: the smallest individual effect of interest (nats/response) for the TOST.
    `placebo`: the placebo strategy's label; used when the table has its rows.
    """
    frame, model_name = _one_model(responses, model)
    table = persona_table(frame, none=none, matched=matched, control=control, by=by)
    use_placebo = placebo if placebo in set(frame["persona"]) and placebo not in (none, matched, control) else None
    if use_placebo:  # every contrast over the responses scored under all four
        table = persona_table(frame, none=none, matched=matched, control=control, by=by, extra=[use_placebo])
    rows = []
    total_without = 0
    for unit, g in table.groupby("unit", sort=True):
        kept = g[g["has_metadata"]]
        n_without = len(g) - len(kept)
        total_without += n_without
        rows.append(_experiment_row(str(unit), kept.reset_index(drop=True), n_without, none, control, matched,
                                    use_placebo))
    notes = []
    if control == "population":
        notes.append("control = population: the individual component also contains the difference "
                     "between each participant's persona and the pooled one (completeness); use "
                     "shuffled for individual-level claims")
    if "persona_donor" in frame and control != "population" and table["donor"].isna().all():
        notes.append(f"the {control} rows record no donor: the individual component's uncertainty "
                     "includes the personas' own effects (conservative)")
    return PersonaDecomposition(model=model_name, matched=matched, control=control, sesoi=sesoi, rows=rows,
                                pooled_rows=_pooled_rows(rows, total_without), notes=notes)


class MetadataBenefit(BaseModel):
    """The meta-data benefit per experiment: the paper's d (`d_paper`, over response rows as
    plot_meta.py computes it) and surrogate's per-participant d (`cohens_d`, paired
    participants with metadata), averaged over experiments."""

    model_config = ConfigDict(frozen=True)
    per_experiment: dict[str, float]
    d_paper: dict[str, float]
    n_participants: dict[str, int]
    mean: Estimate
    mean_paper: float

    def to_frame(self) -> pd.DataFrame:
        rows = [{"experiment": k, "cohens_d": self.per_experiment.get(k, math.nan), "lo": math.nan,
                 "hi": math.nan, "d_paper": self.d_paper.get(k, math.nan),
                 "n_participants": self.n_participants.get(k, 0)}
                for k in sorted(set(self.per_experiment) | set(self.d_paper))]
        rows.append({"experiment": "pooled", "cohens_d": self.mean.value, "lo": self.mean.lo,
                     "hi": self.mean.hi, "d_paper": self.mean_paper,
                     "n_participants": sum(self.n_participants.values())})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        return (f"Meta-data benefit (d of none - interview, averaged over experiments): paper's d "
                f"{self.mean_paper:+.4f}; per-participant d {self.mean}\n  It mixes population- and "
                "individual-level effects; see the decomposition for which one it is.")


# plot_meta.py leaves these two studies out of the meta-data benefit.
META_EXCLUDE = frozenset({"evangelidis2023upscaling", "gunadi2021deferral"})


def paper_metadata_d(frame: pd.DataFrame, *, none: str, persona: str, by: str = "study") -> dict[str, float]:
    """plot_meta.py: per experiment, (mean_none - mean_meta) / sqrt((sd_none^2 + sd_meta^2)/2)
    over all response rows, population SDs (ddof=0); the meta condition only for participants
    whose persona used a field; two studies excluded."""
    d = frame[frame["nll"].notna() & ~frame[by].isin(META_EXCLUDE)]
    a = d[d["persona"] == none]
    m = d[d["persona"] == persona]
    if "persona_fields" in m:
        m = m[m["persona_fields"].map(lambda f: isinstance(f, str) and f != "")]
    ga, gm = a.groupby(by)["nll"], m.groupby(by)["nll"]
    common = ga.mean().index.intersection(gm.mean().index)
    pooled = np.sqrt((ga.std(ddof=0).loc[common] ** 2 + gm.std(ddof=0).loc[common] ** 2) / 2)
    per = (ga.mean().loc[common] - gm.mean().loc[common]) / pooled
    return {str(k): float(v) for k, v in per.items()}


def metadata_benefit(responses: pd.DataFrame, *, model: str | None = None, none: str = "none",
                     persona: str = "interview", by: str = "study") -> MetadataBenefit:
    """The paper's meta-data benefit and a per-participant version restricted to participants
    with metadata; the mean over experiments gets a t interval over experiments."""
    frame, _ = _one_model(responses, model)
    table = persona_table(frame, none=none, matched=persona, control=persona, by=by)
    table = table[table["has_metadata"]]
    per, counts = {}, {}
    for u, g in table.groupby("unit"):
        if len(g) >= 2 and str(u) not in META_EXCLUDE:
            per[str(u)] = cohens_d(g[none], g[persona])
            counts[str(u)] = len(g)
    values = np.array([v for v in per.values() if np.isfinite(v)])
    paper = paper_metadata_d(frame, none=none, persona=persona, by=by)
    finite = [v for v in paper.values() if np.isfinite(v)]
    return MetadataBenefit(per_experiment=per, d_paper=paper, n_participants=counts,
                           mean=mean_estimate(values),
                           mean_paper=float(np.mean(finite)) if finite else math.nan)
