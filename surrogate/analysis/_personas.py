"""Does a persona help predict this person, or only people in general?

From per-participant mean NLL under `none` (N), the matched persona (M) and a control (S:
`shuffled`, someone else's persona rendered by the same strategy; or `population`, the
experiment's pooled persona):

    total benefit        = N - M
    population component = N - S
    individual component = S - M          (total = population + individual)

Positive means the persona lowers NLL. Only participants whose matched persona uses at
least one metadata field enter (for the others matched = none, which would dilute every
component), and, under a shuffled control, only those who were paired (a participant alone
in a `--stratify` level gets no control persona); both are counted per experiment.

A persona has an effect of its own on whoever receives it (its length, which fields it
fills). Under a derangement each persona is received twice, by its owner (M) and by one
recipient (S), so that effect cancels in the sum of S - M over each cycle of the
derangement, but not in the per-participant spread of S - M. The individual component's
uncertainty therefore treats the cycles as the independent units (cluster-robust, t on
K - 1 df). With `weight="response"` every member of a cycle gets the cycle's mean number of
responses as its weight (a common weight keeps the cancellation). A form-matched control
(the same strategy with values withheld: `placebo` for the participant's own fields,
`shuffled-placebo` for the swap partner's) gives the content-only individual component
(S - Wd) - (M - Wo), free of persona x recipient interactions through the form.

Per experiment: t intervals and p-values (the same t statistic for both), also on the
relative scale (per cent of the experiment's no-persona NLL). Pooled: experiments weighted
equally with a t interval over them (raw nats, and relative per cent, where experiments of
very different NLL scale count alike), the fixed-effect row, tau^2, I^2 and a prediction
interval for a new experiment.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from .._errors import OptionError
from ..personas import control_renders, matched_control
from ._inference import (
    DEFAULT_SESOI,
    MIN_PARTICIPANTS,
    Pooled,
    Sesoi,
    adjust,
    cluster_mean_estimate,
    fmt_p,
    mean_estimate,
    minimum_detectable_effect,
    pool,
    scaled,
    tost_p,
)
from ._stats import Estimate, cohens_d
from ._trend import cr2_test

ALPHA = 0.05

COMPONENTS = ("total", "population_component", "individual_component")
EXTRA = ("prefix_component", "population_information", "individual_content")
Weight = Literal["participant", "response"]
ESTIMANDS = {
    "participant": "mean over participants of their mean per-response effect",
    "response": "per-response mean, each swap cycle weighted by its members' mean number of responses",
}
# What `by` pools over and what a participant is. A participant is one session, (study,
# experiment, participant id): Psych-201 numbers participants per experiment, so the same id
# in two experiments of a study is two people (guenther2024associations' participant 1 is 29
# in experiment 1 and 20 in experiment 2). `study-person` is for data whose ids name one
# person across a study's experiments: that person's sessions are clustered (one unit of
# independence), not counted as independent.
BY = {
    "study": "experiments pooled by study; each session (study, experiment, participant id) a participant",
    "experiment": "each experiment on its own; each session a participant",
    "study-person": "experiments pooled by study; a participant id repeated across a study's experiments is one "
                    "person, whose sessions are clustered",
}
SESSION = ["study", "experiment", "participant"]
_SEP = "\x1f"


def check_by(by: str) -> str:
    if by not in BY:
        raise OptionError("by", by, f"expected one of {', '.join(BY)}")
    return by


def unit_column(by: str) -> str:
    """The column whose values are the experiment units of `by`."""
    return "experiment" if check_by(by) == "experiment" else "study"


def _keys(by: str) -> list[str]:
    return list(dict.fromkeys([unit_column(by), *SESSION]))


def session_key(study, experiment, participant) -> str:
    """One participant's identity in a table (ids repeat across experiments)."""
    return _SEP.join((str(study), str(experiment), str(participant)))


def shown(key: str) -> str:
    """A session key as people read it: experiment/participant."""
    _, experiment, participant = key.split(_SEP)
    return f"{experiment}/{participant}"


def response_matrix(frame: pd.DataFrame, column: str, *, by: str = "study") -> pd.DataFrame:
    """Every scored response (rows: experiment unit, session, response index) under every
    level of `column` (columns): what paired_means compares, pivoted once so that many
    pairs of levels (a grid of models) share the work."""
    frame = frame[frame["nll"].notna()]
    return frame.pivot_table(index=[*_keys(by), "response_index"], columns=column, values="nll", aggfunc="first")


def paired_means(frame: pd.DataFrame, column: str, levels: list[str], *, by: str = "study",
                 wide: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per participant (session), one column per level of `column` (persona
    strategies, or models), each the mean NLL over the responses scored under every level, so
    that cut or unscored responses never make the levels compare different responses. `unit`
    is the experiment unit (`by`); `key` the session's identity; `n_responses` the responses
    compared; `tokens` the mean tokens per response under the first level (where the table
    records them). `wide`: the frame's response_matrix, when the caller has it already."""
    keys = _keys(by)
    if wide is None:
        frame = frame[frame[column].isin(levels) & frame["nll"].notna()]
        missing = set(levels) - set(frame[column].unique())
        if missing:
            raise ValueError(f"no scored responses for {column} {sorted(missing)}")
        wide = response_matrix(frame, column, by=by)
    elif set(levels) - set(wide.columns):
        raise ValueError(f"no scored responses for {column} {sorted(set(levels) - set(wide.columns))}")
    wide = wide[levels].dropna()
    means = wide.groupby(level=keys).mean()
    means["n_responses"] = wide.groupby(level=keys).size()
    if "n_tokens" in frame:
        first = frame[(frame[column] == levels[0]) & frame["nll"].notna()].set_index(
            [*keys, "response_index"])["n_tokens"]
        first = first[~first.index.duplicated()].reindex(wide.index).astype(float)
        means["tokens"] = first.groupby(level=keys).mean()
    else:
        means["tokens"] = math.nan
    means.columns.name = None
    means = means.reset_index()
    means.insert(0, "unit", means[unit_column(by)].astype(str))
    means.insert(1, "key", [session_key(*k) for k in means[SESSION].itertuples(index=False, name=None)])
    return means


def person_means(means: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """paired_means rows combined per person (study, participant id) over their sessions:
    each level's mean over all the person's compared responses (for `by="study-person"`)."""
    w = means["n_responses"].astype(float)
    weighted = means[levels].mul(w, axis=0).assign(n_responses=w, tokens_w=means["tokens"] * w)
    g = weighted.groupby([means["unit"], means["study"], means["participant"]], sort=True)
    out = g.sum()
    out[levels] = out[levels].div(out["n_responses"], axis=0)
    out["tokens"] = out.pop("tokens_w") / out["n_responses"]
    out = out.reset_index()
    out["key"] = [session_key(s, "*", p) for s, p in zip(out["study"], out["participant"])]
    return out


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


def _donor_text(d) -> str | None:
    return None if d is None or (isinstance(d, float) and math.isnan(d)) else str(d)


def persona_table(responses: pd.DataFrame, *, model: str | None = None, none: str = "none",
                  matched: str = "interview", control: str = "shuffled", by: str = "study",
                  extra: Sequence[str] = ()) -> pd.DataFrame:
    """participant_means for none, control, matched (and `extra` strategies), plus
    `has_metadata` (the matched persona used at least one field; True where the table does
    not record fields), `donor` (whose persona the control was, by participant id; None where
    not recorded or where the participant was not paired) and `donor_key` (the donor's full
    identity, see `resolve_donors`), and `donor:<name>` / `donor_key:<name>` for each extra
    strategy."""
    frame, _ = _one_model(responses, model)
    means = paired_means(frame, "persona", list(dict.fromkeys([none, control, matched, *extra])), by=by)
    keys = _keys(by)
    idx = pd.MultiIndex.from_frame(means[keys].astype(object))
    if "persona_fields" in frame:
        fields = _first_per_participant(frame, matched, "persona_fields", by).reindex(idx)
        means["has_metadata"] = [isinstance(f, str) and f != "" for f in fields]
    else:
        means["has_metadata"] = True
    for name, column in [(control, "donor"), *((e, f"donor:{e}") for e in extra)]:
        donors = experiments = [None] * len(means)
        if "persona_donor" in frame:
            donors = [_donor_text(d) for d in _first_per_participant(frame, name, "persona_donor", by).reindex(idx)]
        if "persona_donor_experiment" in frame:
            experiments = [_donor_text(d) for d in
                           _first_per_participant(frame, name, "persona_donor_experiment", by).reindex(idx)]
        means[column] = donors
        means[column.replace("donor", "donor_key", 1)] = resolve_donors(means, donors, experiments)
    return means


def resolve_donors(means: pd.DataFrame, donors: Sequence[str | None], experiments: Sequence[str | None]
                   ) -> list[str | None]:
    """Each row's donor as a session key. Tables record the donor's experiment; older ones
    only its id, which is looked up in the recipient's own experiment first (swaps are drawn
    within experiments), then among the study's other experiments where it is unique (an
    experiment of one participant is paired within its study). None: no donor, the population
    control, or an id that cannot be told apart."""
    where: dict[tuple[str, str], list[str]] = defaultdict(list)
    own = set(means["key"])
    for study, experiment, participant in means[SESSION].astype(str).itertuples(index=False, name=None):
        where[(study, participant)].append(experiment)
    out: list[str | None] = []
    for (study, experiment), donor, donor_exp in zip(means[["study", "experiment"]].astype(str).itertuples(
            index=False, name=None), donors, experiments):
        if donor is None or donor == "population":
            out.append(None)
        elif donor_exp is not None:
            out.append(session_key(study, donor_exp, donor))
        elif session_key(study, experiment, donor) in own:
            out.append(session_key(study, experiment, donor))
        else:
            found = where.get((study, donor), [])
            out.append(session_key(study, found[0], donor) if len(found) == 1 else None)
    return out


def derangement_cycles(g: pd.DataFrame, column: str = "donor_key") -> list[np.ndarray] | None:
    """The cycles of the control's derangement within one experiment unit (index arrays into
    g), from each row's donor (session keys); only cycles whose every member is in g. None
    when the table does not say whose persona each control was, or a participant received
    their own."""
    if g[column].isna().any():
        return None
    pid = g["key"].tolist()
    donor = g[column].tolist()
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


def linked_units(g: pd.DataFrame, columns: Sequence[str], *, same_person: bool = False) -> list[np.ndarray]:
    """Independent units for contrasts that involve several swap controls: the connected
    components of the graph joining each participant to each of its donors (the swap cycles
    themselves when the controls share one pairing, as `surrogate run` draws them); with
    `same_person`, also the sessions of one person (study, participant id)."""
    pid = g["key"].tolist()
    row_of = {p: i for i, p in enumerate(pid)}
    parent = list(range(len(pid)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for column in columns:
        for i, d in enumerate(g[column]):
            j = row_of.get(d) if isinstance(d, str) else None
            if j is not None:
                parent[find(i)] = find(j)
    if same_person:
        for idx in _person_groups(g):
            for j in idx[1:]:
                parent[find(j)] = find(idx[0])
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(pid)):
        groups[find(i)].append(i)
    return [np.array(v) for v in groups.values()]


def _person_groups(g: pd.DataFrame) -> list[np.ndarray]:
    """Row indices of each person (study, participant id) in g."""
    codes = g.groupby(["study", "participant"], sort=False).ngroup().to_numpy()
    return [np.flatnonzero(codes == c) for c in np.unique(codes)]


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
    n_unpaired: int = 0
    d_z_total: float = math.nan
    d_z_population: float = math.nan
    d_z_individual: float = math.nan
    pooling: dict[str, Pooled] = {}
    # With placebo rows (P): N - P, what any persona-shaped prefix does; P - S, population-level
    # information beyond the prefix. With the form-matched control (placebo and
    # shuffled-placebo rows): (S - Wd) - (M - Wo), the individual component of the content.
    prefix_component: Estimate | None = None
    population_information: Estimate | None = None
    individual_content: Estimate | None = None
    # Per cent of the no-persona NLL per response, by component (and extra component).
    relative: dict[str, Estimate] = {}
    none_nll: float = math.nan  # mean no-persona NLL per response of the participants entered
    tokens: float = math.nan  # mean tokens per response
    scale: str = "nats"  # what the estimates are in: nats per response, or % (pooled_relative)

    def estimates(self) -> dict[str, Estimate]:
        out = {c: getattr(self, c) for c in COMPONENTS}
        out |= {c: getattr(self, c) for c in EXTRA if getattr(self, c) is not None}
        return out


def _d_z(est: Estimate) -> float:
    """Mean over the SD that the test uses (SE x sqrt(n)): for the individual component the
    SD of the persona-paired contrast, free of persona effects."""
    if est.se is None or not np.isfinite(est.se) or est.se <= 0 or est.n < 2:
        return math.nan
    return est.value / (est.se * math.sqrt(est.n))


def _nan_estimate(value: float, n: int) -> Estimate:
    return Estimate(value=value, lo=math.nan, hi=math.nan, n=n)


def cr2_mean_estimate(x: np.ndarray, clusters: Sequence[np.ndarray], weights: np.ndarray) -> Estimate:
    """The weighted mean of x with the CR2 cluster-robust SE and Bell-McCaffrey degrees of
    freedom: honest with few clusters of unequal size, where cluster_mean_estimate is not."""
    from ._inference import t_estimate

    n = int(sum(len(c) for c in clusters))
    if len(clusters) < 2:
        return Estimate(value=float(np.sum(weights * x) / np.sum(weights)), lo=math.nan, hi=math.nan, n=n)
    labels = np.empty(len(x), dtype=int)
    for k, c in enumerate(clusters):
        labels[c] = k
    value, se, df = cr2_test(np.ones((len(x), 1)), np.asarray(x, dtype=float), labels, 0, np.asarray(weights, float))
    return t_estimate(value, se, df, n)


def _weights(n_responses: np.ndarray, units: list[np.ndarray], weight: str) -> np.ndarray:
    """Per participant: 1, or the mean number of responses of its unit (swap cycle), so that
    the members of a cycle share a weight and a persona's own effect still cancels."""
    if weight == "participant":
        return np.ones(len(n_responses))
    w = np.asarray(n_responses, dtype=float).copy()
    for u in units:
        w[u] = w[u].mean()
    return w


def _singletons(n: int) -> list[np.ndarray]:
    return [np.array([i]) for i in range(n)]


class _Columns(BaseModel):
    """Which persona labels play which role in a decomposition."""

    none: str
    matched: str
    control: str
    placebo: str | None = None
    form: str | None = None  # the swap partner's persona with values withheld


def _experiment_row(name: str, g: pd.DataFrame, n_without: int, n_unpaired: int, cols: _Columns,
                    units: list[np.ndarray] | None, weight: str, people: list[np.ndarray] | None = None
                    ) -> ComponentRow:
    """One experiment unit's decomposition. `units`: the independent units of contrasts with
    a swap control (swap cycles); `people`: those of the others (each participant, or each
    person's sessions under `by="study-person"`)."""
    n = len(g)
    common = dict(experiment=name, n_participants=n, n_without_metadata=n_without, n_unpaired=n_unpaired)
    if n == 0:
        nan = _nan_estimate(math.nan, 0)
        status = "no metadata" if n_unpaired == 0 else "too few participants (none paired)"
        return ComponentRow(status=status, total=nan, population_component=nan, individual_component=nan, **common)
    N, M, S = (g[c].to_numpy(dtype=float) for c in (cols.none, cols.matched, cols.control))
    cycles = units if units is not None else _singletons(n)
    w = _weights(g["n_responses"].to_numpy(), cycles, weight)
    none_nll = float(np.sum(w * N) / np.sum(w))
    tok = g["tokens"].to_numpy(dtype=float)
    tokens = float(np.sum(w * tok) / np.sum(w)) if np.isfinite(tok).all() else math.nan
    if n < MIN_PARTICIPANTS:
        mean = lambda x: float(np.sum(w * x) / np.sum(w))  # noqa: E731
        return ComponentRow(
            status=f"too few participants (< {MIN_PARTICIPANTS})", total=_nan_estimate(mean(N - M), n),
            population_component=_nan_estimate(mean(N - S), n), individual_component=_nan_estimate(mean(S - M), n),
            none_nll=none_nll, tokens=tokens, **common)
    single = people if people is not None else _singletons(n)
    # A person's sessions and their swap partners can link into a few clusters of very
    # different size (most sessions in one), where CR1 with t on K - 1 df rejects true nulls
    # far too often; then the CR2 variance with Bell-McCaffrey df (as the trend tests use).
    mean = cluster_mean_estimate if people is None else cr2_mean_estimate
    total = mean(N - M, single, w)
    population = mean(N - S, single, w)
    individual = mean(S - M, cycles, w)
    extra: dict[str, Estimate] = {}
    if cols.placebo is not None:
        P = g[cols.placebo].to_numpy(dtype=float)
        extra |= {"prefix_component": mean(N - P, single, w),
                  "population_information": mean(P - S, single, w)}
        if cols.form is not None:
            Wd = g[cols.form].to_numpy(dtype=float)
            extra["individual_content"] = mean((S - Wd) - (M - P), cycles, w)
    ests = {"total": total, "population_component": population, "individual_component": individual, **extra}
    return ComponentRow(status="ok", total=total, population_component=population, individual_component=individual,
                        d_z_total=_d_z(total), d_z_population=_d_z(population), d_z_individual=_d_z(individual),
                        relative={k: scaled(e, none_nll / 100) for k, e in ests.items()},
                        none_nll=none_nll, tokens=tokens, **extra, **common)


POOLED_LABELS = ("pooled", "pooled_fixed", "pooled_relative", "pooled_per_token")


def _pooled_rows(rows: list[ComponentRow], n_without: int, n_unpaired: int, per_token: bool) -> list[ComponentRow]:
    ok = [r for r in rows if r.status == "ok"]
    n = sum(r.n_participants for r in ok)
    names = [c for c in (*COMPONENTS, *EXTRA) if ok and all(getattr(r, c) is not None for r in ok)]

    def pooled_on(get) -> dict[str, Pooled | None]:
        return {c: pool([get(r, c).value for r in ok], [get(r, c).se or math.nan for r in ok], n,
                        [get(r, c).df for r in ok]) for c in names}

    raw = pooled_on(lambda r, c: getattr(r, c))
    if not ok or any(raw[c] is None for c in COMPONENTS):
        return []
    k = len(ok)
    what = f"over {k} experiment" + ("s" if k != 1 else "")
    common = dict(n_participants=n, n_without_metadata=n_without, n_unpaired=n_unpaired)

    def row(label: str, status: str, pooled: dict[str, Pooled | None], attr: str, scale: str, keep: bool) -> ComponentRow:
        ests = {c: getattr(p, attr) for c, p in pooled.items() if p is not None}
        if attr == "fixed":
            # Descriptive only: its z test weights experiments by SEs estimated on a few swap
            # cycles each and rejected 18% of true nulls with 12 participants per experiment.
            ests = {c: _nan_estimate(e.value, e.n) for c, e in ests.items()}
        return ComponentRow(experiment=label, status=status, pooling=pooled if keep else {}, scale=scale,
                            **{c: ests.get(c) for c in names}, **common)

    out = [row("pooled", f"random effect {what}", raw, "random", "nats", True),
           row("pooled_fixed", f"fixed effect {what} (descriptive: no interval or test)", raw, "fixed", "nats",
               False)]
    rel = pooled_on(lambda r, c: r.relative[c])
    if all(rel[c] is not None for c in COMPONENTS):
        out.append(row("pooled_relative", f"random effect {what}, % of the no-persona NLL", rel, "random", "%", True))
    if per_token and all(np.isfinite(r.tokens) and r.tokens > 0 for r in ok):
        tok = pooled_on(lambda r, c: scaled(getattr(r, c), r.tokens))
        if all(tok[c] is not None for c in COMPONENTS):
            out.append(row("pooled_per_token", f"random effect {what}, nats per token", tok, "random",
                           "nats/token", True))
    return out


class Equivalence(BaseModel):
    """The pooled equivalence claim for the individual component, on the verdict's row (the
    scale the SESOI is given in): TOST against +-SESOI and, with three or more experiments,
    the prediction interval inside +-SESOI (a claim about experiments like these); with fewer
    there is no prediction interval and the claim is about these experiments only."""

    model_config = ConfigDict(frozen=True)
    row: str
    margin: float
    tost_p: float
    prediction_inside: bool | None  # None: not defined (fewer than 3 experiments)
    equivalent: bool
    total_indistinguishable: bool  # neither the total nor the population component differs from 0

    @property
    def scope(self) -> str:
        return "these experiments" if self.prediction_inside is None else "experiments like these"

    def text(self, sesoi: Sesoi) -> str:
        lines = [f"equivalence (|individual| < {sesoi}, on the {self.row} row): TOST p = {fmt_p(self.tost_p)}"]
        if self.prediction_inside is None:
            lines.append("prediction interval not defined with fewer than 3 experiments, so the claim is about "
                         "these experiments only")
        else:
            lines.append("prediction interval " + ("inside" if self.prediction_inside else "not inside")
                         + f" +-{sesoi}")
        verdict = (f"equivalent in {self.scope}: no individual effect as large as the SESOI" if self.equivalent
                   else "equivalence not shown")
        out = "; ".join(lines) + f" -> {verdict}"
        if self.total_indistinguishable:
            out += ("\n      note: neither the total persona benefit nor its population component differs from 0, so "
                    "the model may ignore the prefix; equivalence then does not show that the metadata carries no "
                    "individual information")
        return out


VerdictKind = Literal["individual", "negative", "equivalent", "no evidence", "not estimable"]


class Verdict(BaseModel):
    """What one decomposition shows about individual-level information, in one line, read
    from the scale-free row where the SESOI is relative (the default) so that an experiment
    at 30x another's NLL does not decide it: `individual` (the own persona predicts better
    than someone else's, p < .05 after any multiplicity adjustment), `negative` (it predicts
    worse), `equivalent` (no individual effect as large as the SESOI: TOST and, with three or
    more experiments, the prediction interval), `no evidence` (neither shown: inconclusive,
    which is not absence), `not estimable`."""

    model_config = ConfigDict(frozen=True)
    kind: VerdictKind
    row: str
    p: float | None  # the individual component's p the verdict used (adjusted where several were tested)
    text: str


class Multiplicity(BaseModel):
    """Holm's adjustment of the verdict rows' individual-component p-values over a family of
    tests: the matched strategies decomposed for one model (their primary pairings)."""

    model_config = ConfigDict(frozen=True)
    method: str = "holm"
    family: list[str]
    p_adjusted: float


class PersonaDecomposition(BaseModel):
    """Results of `decompose_personas`: per-experiment rows and the pooled rows."""

    model_config = ConfigDict(frozen=True)
    model: str
    matched: str
    control: str
    sesoi: Sesoi
    rows: list[ComponentRow]
    pooled_rows: list[ComponentRow]
    weight: Weight = "participant"
    form: str | None = None
    notes: list[str] = []
    multiplicity: Multiplicity | None = None

    @property
    def pooled(self) -> ComponentRow:
        """The random-effects pooled row (experiments like these), in nats."""
        if not self.pooled_rows:
            raise ValueError("no experiment could be pooled (see rows' status)")
        return self.pooled_rows[0]

    def pooled_row(self, label: str) -> ComponentRow | None:
        return next((r for r in self.pooled_rows if r.experiment == label), None)

    def _margin(self, row: ComponentRow) -> float:
        """The SESOI in the units of this row's estimates (NaN where it has none)."""
        if row.experiment in POOLED_LABELS:
            wanted = {"%": "%", "nats": "nats", "nats/token": "nats/token"}[self.sesoi.unit]
            return self.sesoi.value if row.scale == wanted else math.nan
        return self.sesoi.margin(row.none_nll, row.tokens)

    @property
    def verdict_label(self) -> str:
        """The pooled row the verdict and the equivalence test read: the scale of the SESOI
        (per cent of each experiment's NLL by default, so experiments count alike)."""
        return {"%": "pooled_relative", "nats": "pooled", "nats/token": "pooled_per_token"}[self.sesoi.unit]

    def verdict_row(self) -> ComponentRow | None:
        return self.pooled_row(self.verdict_label)

    def equivalence(self) -> Equivalence | None:
        row = self.verdict_row()
        if row is None:
            return None
        ind = row.individual_component
        margin = self._margin(row)
        p = tost_p(ind, margin)
        pooled = row.pooling.get("individual_component")
        inside = None
        if pooled is not None and pooled.k >= 3 and np.isfinite(pooled.pi_lo):
            inside = bool(-margin < pooled.pi_lo and pooled.pi_hi < margin)
        quiet = all(e.p is None or e.p >= ALPHA for e in (row.total, row.population_component))
        return Equivalence(row=row.experiment, margin=margin, tost_p=p, prediction_inside=inside,
                           equivalent=bool(np.isfinite(p) and p < ALPHA and inside is not False),
                           total_indistinguishable=quiet)

    def verdict(self) -> Verdict:
        """One line on individual-level information (see Verdict)."""
        row = self.verdict_row()
        label = self.verdict_label
        if row is None or not np.isfinite(row.individual_component.value):
            return Verdict(kind="not estimable", row=label, p=None,
                           text="not estimable: " + ("; ".join(f"{r.experiment}: {r.status}" for r in self.rows
                                                               if r.status != "ok") or "no pooled row"))
        ind, pop = row.individual_component, row.population_component
        p = self.multiplicity.p_adjusted if self.multiplicity is not None else ind.p
        unit = "%" if row.scale == "%" else f" {row.scale}"
        shown_ind = f"individual {_fmt(ind, unit)}, p {fmt_p(p)}" + (
            f" (Holm over {len(self.multiplicity.family)} strategies)" if self.multiplicity is not None else "")
        population = (f"; the persona also acts at the population level (population {_fmt(pop, unit)}, p "
                      f"{fmt_p(pop.p)})" if pop.p is not None and pop.p < ALPHA else "")
        eq = self.equivalence()
        if p is not None and p < ALPHA and ind.value > 0:
            kind, text = "individual", f"individual-level information: the own persona predicts better than someone " \
                                       f"else's ({shown_ind}){population}"
        elif p is not None and p < ALPHA and ind.value < 0:
            kind, text = "negative", f"a negative individual component: the own persona predicts worse than " \
                                     f"someone else's ({shown_ind}){population}"
        elif eq is not None and eq.equivalent:
            kind = "equivalent"
            text = (f"no individual-level information as large as {self.sesoi} (equivalence shown in {eq.scope}: TOST "
                    f"p {fmt_p(eq.tost_p)}; {shown_ind}){population}")
            if eq.total_indistinguishable:
                text += "; but the persona changes nothing measurable at all, so the model may ignore it"
        else:
            kind = "no evidence"
            text = (f"no evidence of individual-level information, and no equivalence to 0 either: inconclusive "
                    f"({shown_ind}; TOST p {fmt_p(eq.tost_p) if eq else 'not defined'}){population}")
        return Verdict(kind=kind, row=label, p=p, text=text)

    def to_frame(self) -> pd.DataFrame:
        """The persona_effects.csv table: one row per experiment plus `pooled` (random effects),
        `pooled_fixed` and `pooled_relative` (per cent of the no-persona NLL)."""
        records = []
        exp_rows = self.rows
        adjusted = {m: adjust([r.individual_component.p for r in exp_rows], m) for m in ("holm", "fdr_bh")}
        verdict = self.verdict() if self.pooled_rows else None
        for i, row in enumerate([*exp_rows, *self.pooled_rows]):
            rec = {"experiment": row.experiment, "n_participants": row.n_participants}
            for name in COMPONENTS:
                est: Estimate = getattr(row, name)
                rec |= {name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi}
            ind = row.individual_component
            margin = self._margin(row)
            rec |= {"individual_p": ind.p, "d_z_individual": row.d_z_individual,
                    "status": row.status, "n_without_metadata": row.n_without_metadata,
                    "n_unpaired": row.n_unpaired,
                    "individual_p_holm": adjusted["holm"][i] if i < len(exp_rows) else math.nan,
                    "individual_p_bh": adjusted["fdr_bh"][i] if i < len(exp_rows) else math.nan,
                    "individual_tost_p": tost_p(ind, margin) if np.isfinite(margin) else math.nan,
                    "sesoi": str(self.sesoi), "sesoi_margin": margin, "scale": row.scale,
                    "weight": self.weight, "estimand": ESTIMANDS[self.weight],
                    "none_nll": row.none_nll, "tokens_per_response": row.tokens,
                    "individual_mde": minimum_detectable_effect(ind),
                    "d_z_total": row.d_z_total, "d_z_population": row.d_z_population,
                    # The verdict's row: its kind and the p it used (Holm over strategies where several).
                    "verdict": verdict.kind if verdict and row.experiment == verdict.row else "",
                    "verdict_p": verdict.p if verdict and row.experiment == verdict.row else math.nan}
            for name in EXTRA:
                est = getattr(row, name)
                if est is not None:
                    rec |= {name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi, f"{name}_p": est.p}
            for name, est in row.relative.items():
                rec |= {f"{name}_rel": est.value, f"{name}_rel_lo": est.lo, f"{name}_rel_hi": est.hi}
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
        lines = [f"Persona decomposition for {self.model}: matched = {self.matched}, control = {self.control}, "
                 f"weights: {self.weight} ({ESTIMANDS[self.weight]})",
                 "(positive = the persona lowers NLL, nats per response; 95% t intervals)"]
        if self.pooled_rows:
            p = self.pooled
            pi = p.pooling["individual_component"]
            lines += [
                f"  pooled over {pi.k} experiment(s), experiments weighted equally (experiments like these):",
                f"    total benefit        {p.total}",
                f"    population component {p.population_component}",
                f"    individual component {p.individual_component}",
                "      " + _heterogeneity(pi),
            ]
            rel = self.pooled_row("pooled_relative")
            if rel is not None:
                lines.append(f"    on the relative scale (% of the no-persona NLL per response): total "
                             f"{_pct(rel.total)}, individual {_pct(rel.individual_component)}")
            if p.individual_content is not None:
                lines.append(f"    individual component of the content (form-matched control, "
                             f"(S - Wd) - (M - Wo)): {p.individual_content}")
            eq = self.equivalence()
            if eq is not None:
                lines.append("    " + eq.text(self.sesoi) + f"; minimum detectable effect "
                             f"{minimum_detectable_effect(p.individual_component):.4f} nats")
            fixed = self.pooled_row("pooled_fixed")
            if fixed is not None and pi.k > 1:
                lines.append(f"    inverse-variance weighted mean of these experiments (descriptive, no test): individual "
                             f"{fixed.individual_component.value:+.4f}")
            lines.append(f"    verdict: {self.verdict().text}")
        else:
            lines.append("  no experiment could be estimated (see the statuses below)")
        for r in self.rows:
            left = [f"{r.n_without_metadata} without metadata"] if r.n_without_metadata else []
            left += [f"{r.n_unpaired} unpaired"] if r.n_unpaired else []
            if r.status != "ok" or left:
                lines.append(f"  {r.experiment}: {r.status}" + (f" ({', '.join(left)} left out)" if left else ""))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt(est: Estimate, unit: str) -> str:
    ci = f" [{est.lo:+.3g}{unit}, {est.hi:+.3g}{unit}]" if np.isfinite(est.lo) else ""
    return f"{est.value:+.3g}{unit}{ci}"


def with_multiplicity(decompositions: dict[str, "PersonaDecomposition"]) -> dict[str, "PersonaDecomposition"]:
    """Holm-adjust the verdict p-values of the primary decompositions of each model over its
    matched strategies (a family of tests per model); single tests are left as they are."""
    by_model: dict[str, list[str]] = defaultdict(list)
    for key, d in decompositions.items():
        row = d.verdict_row()
        if row is not None and row.individual_component.p is not None and not re.search(r"\.\d+$", d.control):
            by_model[d.model].append(key)
    out = dict(decompositions)
    for keys in by_model.values():
        if len(keys) < 2:
            continue
        ps = [decompositions[k].verdict_row().individual_component.p for k in keys]
        family = [decompositions[k].matched for k in keys]
        for k, q in zip(keys, adjust(ps, "holm")):
            out[k] = decompositions[k].model_copy(update={"multiplicity": Multiplicity(family=family, p_adjusted=q)})
    return out


def _pct(est: Estimate) -> str:
    if not np.isfinite(est.value):
        return "not defined"
    ci = f" [{est.lo:+.2f}%, {est.hi:+.2f}%]" if np.isfinite(est.lo) else ""
    return f"{est.value:+.2f}%{ci}"


def _heterogeneity(pi: Pooled) -> str:
    if pi.k < 2:
        return "tau^2 and I^2 not defined with one experiment; prediction interval needs at least 3"
    text = f"tau^2 = {pi.tau2:.3g}, I^2 = {pi.i2:.2f}, "
    if pi.k < 3:
        return text + "prediction interval needs at least 3 experiments"
    return text + f"prediction interval for a new experiment [{pi.pi_lo:+.4f}, {pi.pi_hi:+.4f}]"


def _dropped(core: pd.DataFrame, narrower: pd.DataFrame) -> dict[str, list[str]]:
    """Per experiment unit, the participants of `core` missing from `narrower`."""
    out = {}
    have = set(narrower["key"])
    for unit, g in core.groupby("unit"):
        gone = sorted(shown(k) for k in g["key"] if k not in have)
        if gone:
            out[str(unit)] = gone
    return out


def _describe(by_unit: dict[str, list[str]]) -> str:
    return "; ".join(f"{len(v)} in {u} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                     for u, v in sorted(by_unit.items()))


def resolve_columns(frame: pd.DataFrame, matched: str, control: str | None, none: str,
                    placebo: str | None, form: str | None) -> tuple[_Columns, list[str]]:
    """The labels of each role, checked: a control must render the matched strategy."""
    have = set(frame["persona"].unique())
    notes = []
    control = control or matched_control(matched)
    renders = control_renders(control)
    if renders is not None and renders[1] != matched:
        raise ValueError(
            f"control {control!r} renders {renders[1]!r} personas, so S - M would compare {matched!r} with "
            f"another format; the control of {matched!r} is {matched_control(matched, renders[0])!r}")
    if renders is None:
        notes.append(f"cannot tell from its name which strategy control {control!r} renders; it must be "
                     f"{matched!r} for the individual component to measure information")
    if placebo is None:
        placebo = matched_control(matched, "placebo") if matched_control(matched, "placebo") in have else None
    if form is None and placebo is not None:
        guess = matched_control(placebo, "shuffled")
        form = guess if guess in have else None
    for label in [none, matched, control, placebo, form]:
        if label is not None and label not in have:
            raise ValueError(f"no {label!r} rows in the table (personas: {sorted(have)}); score them with "
                             f"--persona {label}")
    if placebo in (none, matched, control):
        placebo = None
    return _Columns(none=none, matched=matched, control=control, placebo=placebo, form=form), notes


def decompose_personas(
    responses: pd.DataFrame,
    *,
    model: str | None = None,
    matched: str = "interview",
    control: str | None = None,
    none: str = "none",
    by: str = "study",
    sesoi: Sesoi | str | float = DEFAULT_SESOI,
    placebo: str | None = None,
    form: str | None = None,
    weight: Weight = "participant",
) -> PersonaDecomposition:
    """Split a persona's benefit into population- and individual-level components.

    `responses`: the per-response table of `surrogate run` (one model, or choose `model`).
    `control`: default the shuffled control of the matched strategy (`shuffled` for
    interview, `shuffled-narrative` for narrative); a control of another strategy is refused.
    `by`: the experiment unit, `study` (Psych-201's experiments) or `experiment`.
    `sesoi`: the smallest individual effect of interest for the equivalence test (`1%` of the
    no-persona NLL, `0.01` nats per response, `0.002/token`).
    `placebo`, `form`: the placebo (own form, values withheld) and form-matched control
    (partner's form), found by name when the table has them.
    `weight`: `participant` (each participant once) or `response` (per-response scale, a
    common weight per swap cycle).
    """
    if weight not in ESTIMANDS:
        raise ValueError(f"weight {weight!r}: expected participant or response")
    sesoi = Sesoi.parse(sesoi)
    frame, model_name = _one_model(responses, model)
    cols, notes = resolve_columns(frame, matched, control, none, placebo, form)
    core = persona_table(frame, none=none, matched=matched, control=cols.control, by=by)
    table = core
    extra = [c for c in (cols.placebo, cols.form) if c is not None]
    if extra:
        with_extra = persona_table(frame, none=none, matched=matched, control=cols.control, by=by, extra=extra)
        lacking = _dropped(core, with_extra)
        if lacking:
            # Tables combined from runs that scored the placebo for some participants only: the
            # placebo contrasts are left out rather than the participants.
            notes.append(f"{' and '.join(extra)} rows exist for only some participants (missing for "
                         f"{_describe(lacking)}); the placebo and form-matched contrasts are left out")
            cols = cols.model_copy(update={"placebo": None, "form": None})
        else:
            table = with_extra
    unit_of = unit_column(by)
    nones = frame[frame["persona"] == none].drop_duplicates(SESSION)
    entered = set(core["key"])
    missing: dict[str, list[str]] = defaultdict(list)
    for u, *ident in nones[[unit_of, *SESSION]].itertuples(index=False, name=None):
        if session_key(*ident) not in entered:
            missing[str(u)].append(shown(session_key(*ident)))
    if missing:
        notes.append(f"participants with no-persona rows but without {matched!r} or {cols.control!r} rows are not in "
                     f"the decomposition: {_describe(missing)}")
    has_donor_column = "persona_donor" in frame
    swap = has_donor_column and table["donor"].map(lambda d: d is not None and d != "population").any()
    unresolved = int((table["donor"].notna() & (table["donor"] != "population") & table["donor_key"].isna()).sum())
    if unresolved:
        notes.append(f"{unresolved} participant(s) received a persona whose owner the table does not identify (a "
                     "donor id found in several experiments and no donor experiment recorded): left out as unpaired")
    person = by == "study-person"
    rows = []
    total_without = total_unpaired = 0
    for unit, g in table.groupby("unit", sort=True):
        kept = g[g["has_metadata"]].reset_index(drop=True)
        n_without = len(g) - len(kept)
        n_unpaired = 0
        units = None
        if swap:
            # Participants without a swap partner (alone in a stratum) or outside a closed
            # cycle have no valid control: they leave before the estimate, and are counted.
            paired = kept[kept["donor_key"].notna()].reset_index(drop=True)
            cycles = derangement_cycles(paired) or []
            members = np.concatenate(cycles) if cycles else np.array([], dtype=int)
            n_unpaired = len(kept) - len(members)
            kept = paired.iloc[np.sort(members)].reset_index(drop=True)
            donor_columns = ["donor_key"] + ([f"donor_key:{cols.form}"] if cols.form else [])
            if cols.form is not None and kept[f"donor_key:{cols.form}"].isna().any():
                raise ValueError(f"{unit}: some participants have {cols.control!r} but no {cols.form!r} donor; "
                                 "score both controls in one run so they share a pairing")
            units = linked_units(kept, donor_columns, same_person=person)
        elif person:
            units = _person_groups(kept)
        total_without += n_without
        total_unpaired += n_unpaired
        rows.append(_experiment_row(str(unit), kept, n_without, n_unpaired, cols, units, weight,
                                    people=_person_groups(kept) if person else None))
    scales = [r.none_nll for r in rows if r.status == "ok" and np.isfinite(r.none_nll) and r.none_nll > 0]
    if len(scales) >= 2 and max(scales) / min(scales) > 5:
        notes.append(f"the experiments' no-persona NLL ranges from {min(scales):.3g} to {max(scales):.3g} nats per "
                     "response: the raw pooled row is dominated by the largest and its interval is unreliable; "
                     "read the relative row (pooled_relative, % of each experiment's NLL)")
    if cols.control.startswith("population"):
        notes.append("control = population: the individual component also contains the difference "
                     "between each participant's persona and the pooled one (completeness); use "
                     "shuffled for individual-level claims")
    elif has_donor_column and not swap:
        notes.append(f"the {cols.control} rows record no donor: the individual component's uncertainty "
                     "includes the personas' own effects (conservative)")
    return PersonaDecomposition(model=model_name, matched=matched, control=cols.control, sesoi=sesoi, rows=rows,
                                pooled_rows=_pooled_rows(rows, total_without, total_unpaired,
                                                         sesoi.unit == "nats/token"),
                                weight=weight, form=cols.form, notes=notes)


# --- comparing strategies ----------------------------------------------------------------

class StrategyDifference(BaseModel):
    """A minus B per component, per experiment and pooled, on the participants both
    decompositions entered; the individual difference on the shared swap cycles."""

    model_config = ConfigDict(frozen=True)
    a: str
    b: str
    rows: list[ComponentRow]
    pooled: ComponentRow | None
    # The pooled individual difference's p, Holm-adjusted over every pair of strategies compared.
    individual_p_holm: float | None = None


class StrategyComparison(BaseModel):
    """Several matched strategies, each against its own shuffled control, on one pairing."""

    model_config = ConfigDict(frozen=True)
    model: str
    decompositions: dict[str, PersonaDecomposition]
    differences: list[StrategyDifference]

    def ranking(self) -> pd.DataFrame:
        """One row per strategy: pooled components with CIs, ranked (1 = largest benefit)."""
        rows = []
        for name, d in self.decompositions.items():
            if not d.pooled_rows:
                continue
            p = d.pooled
            rec = {"model": self.model, "strategy": name, "control": d.control, "experiments": p.pooling[
                "individual_component"].k, "n_participants": p.n_participants}
            for c in COMPONENTS:
                e = getattr(p, c)
                rec |= {c: e.value, f"{c}_lo": e.lo, f"{c}_hi": e.hi, f"{c}_p": e.p}
            verdict = d.verdict()
            rec |= {"verdict": verdict.kind, "verdict_row": verdict.row, "verdict_p": verdict.p,
                    "verdict_p_method": "holm" if d.multiplicity is not None else "none"}
            rows.append(rec)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            for c in COMPONENTS:
                frame[f"rank_{c.split('_')[0]}"] = frame[c].rank(ascending=False, method="min").astype(int)
        return frame

    def differences_frame(self) -> pd.DataFrame:
        rows = []
        for diff in self.differences:
            for r in [*diff.rows, *([diff.pooled] if diff.pooled else [])]:
                rec = {"model": self.model, "a": diff.a, "b": diff.b, "experiment": r.experiment,
                       "status": r.status, "n_participants": r.n_participants,
                       "individual_p_holm": diff.individual_p_holm if r is diff.pooled else math.nan}
                for c in COMPONENTS:
                    e = getattr(r, c)
                    rec |= {c: e.value, f"{c}_lo": e.lo, f"{c}_hi": e.hi, f"{c}_p": e.p}
                rows.append(rec)
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = [f"Persona strategies compared for {self.model} (each against its own shuffled control, one "
                 "pairing; pooled over experiments; > 0: lowers NLL; verdicts Holm-adjusted over the strategies):"]
        rank = self.ranking()
        if rank.empty:
            lines.append("  no strategy could be pooled: " + "; ".join(
                f"{name}: " + (", ".join(sorted({f"{r.experiment} {r.status}" for r in d.rows})) or "no experiments")
                for name, d in self.decompositions.items()))
            rank = pd.DataFrame(columns=["individual_component"])
        for _, r in rank.sort_values("individual_component", ascending=False).iterrows():
            lines.append(f"  {r['strategy']:<16} total {r['total']:+.4f}  population {r['population_component']:+.4f}"
                         f"  individual {r['individual_component']:+.4f} [{r['individual_component_lo']:+.4f}, "
                         f"{r['individual_component_hi']:+.4f}]")
        for diff in self.differences:
            if diff.pooled is None:
                lines.append(f"  {diff.a} - {diff.b}: no experiment with enough participants in both")
                continue
            p = diff.pooled
            holm = (f" (Holm-adjusted over {len(self.differences)} comparisons: p {fmt_p(diff.individual_p_holm)})"
                    if len(self.differences) > 1 else "")
            lines.append(f"  {diff.a} - {diff.b}: total {p.total}; individual {p.individual_component}{holm}")
        return "\n".join(lines)


def _difference_row(name: str, ga: pd.DataFrame, gb: pd.DataFrame, ca: _Columns, cb: _Columns, weight: str,
                    person: bool = False) -> ComponentRow:
    ident = ["key", "study", "participant"]
    both = ga.add_suffix("@a").rename(columns={f"{c}@a": c for c in ident}).merge(
        gb.add_suffix("@b").drop(columns=[f"{c}@b" for c in ident[1:]]).rename(columns={"key@b": "key"}), on="key")
    n = len(both)
    nan = _nan_estimate(math.nan, n)
    if n < MIN_PARTICIPANTS:
        return ComponentRow(experiment=name, status=f"too few participants (< {MIN_PARTICIPANTS})", n_participants=n,
                            n_without_metadata=0, total=nan, population_component=nan, individual_component=nan)
    get = lambda col, side: both[f"{col}@{side}"].to_numpy(dtype=float)  # noqa: E731
    Na, Ma, Sa = get(ca.none, "a"), get(ca.matched, "a"), get(ca.control, "a")
    Nb, Mb, Sb = get(cb.none, "b"), get(cb.matched, "b"), get(cb.control, "b")
    units = linked_units(both.rename(columns={"donor_key@a": "da", "donor_key@b": "db"}), ["da", "db"],
                         same_person=person)
    resp = np.minimum(both["n_responses@a"].to_numpy(), both["n_responses@b"].to_numpy())
    w = _weights(resp, units, weight)
    single = _person_groups(both) if person else _singletons(n)
    mean = cr2_mean_estimate if person else cluster_mean_estimate  # see _experiment_row
    total = mean((Na - Ma) - (Nb - Mb), single, w)
    population = mean((Na - Sa) - (Nb - Sb), single, w)
    individual = mean((Sa - Ma) - (Sb - Mb), units, w)
    return ComponentRow(experiment=name, status="ok", n_participants=n, n_without_metadata=0, total=total,
                        population_component=population, individual_component=individual)


def compare_strategies(
    responses: pd.DataFrame,
    matched: Sequence[str],
    *,
    model: str | None = None,
    none: str = "none",
    by: str = "study",
    sesoi: Sesoi | str | float = DEFAULT_SESOI,
    weight: Weight = "participant",
) -> StrategyComparison:
    """Decompose each matched strategy against its own shuffled control and compare them in
    pairs: the difference of each component (A - B), per experiment and pooled, with the
    individual difference's uncertainty on the swap cycles the controls share."""
    if len(matched) < 2:
        raise ValueError("comparing strategies needs at least two matched strategies")
    frame, model_name = _one_model(responses, model)
    decs, tables, columns = {}, {}, {}
    for m in matched:
        decs[m] = decompose_personas(frame, matched=m, none=none, by=by, sesoi=sesoi, weight=weight)
        cols = _Columns(none=none, matched=m, control=decs[m].control)
        t = persona_table(frame, none=none, matched=m, control=cols.control, by=by)
        t = t[t["has_metadata"] & t["donor_key"].notna()]
        tables[m], columns[m] = t, cols
    diffs = []
    for i, a in enumerate(matched):
        for b in matched[i + 1:]:
            rows = []
            for unit in sorted(set(tables[a]["unit"]) & set(tables[b]["unit"])):
                ga = tables[a][tables[a]["unit"] == unit]
                gb = tables[b][tables[b]["unit"] == unit]
                rows.append(_difference_row(str(unit), ga, gb, columns[a], columns[b], weight,
                                            person=by == "study-person"))
            ok = [r for r in rows if r.status == "ok"]
            pooled = None
            if ok:
                n = sum(r.n_participants for r in ok)
                pp = {c: pool([getattr(r, c).value for r in ok], [getattr(r, c).se or math.nan for r in ok], n)
                      for c in COMPONENTS}
                if all(v is not None for v in pp.values()):
                    pooled = ComponentRow(experiment="pooled", status=f"random effect over {len(ok)} experiments",
                                          n_participants=n, n_without_metadata=0, pooling=pp,
                                          **{c: pp[c].random for c in COMPONENTS})
            diffs.append(StrategyDifference(a=a, b=b, rows=rows, pooled=pooled))
    holm = adjust([d.pooled.individual_component.p if d.pooled else None for d in diffs], "holm")
    diffs = [d.model_copy(update={"individual_p_holm": None if not np.isfinite(q) else q}) for d, q in zip(diffs, holm)]
    return StrategyComparison(model=model_name, decompositions=with_multiplicity(decs), differences=diffs)


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
    by = unit_column(by)
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
    if by == "study-person":
        table = person_means(table, list(dict.fromkeys([none, persona])))
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
