"""Do model agents behave like these people, and like each person?

From per-participant behaviour tables (`behaviour.csv` of `surrogate simulate` / `import`:
behaviour indices, fitted parameters, traits, true parameters of synthetic people) and
per-trial choice tables (`trials.parquet`: which option position each participant chose at
each trial):

- population level: per behaviour index, the agents' mean against the people's, with a
  permutation p-value (group labels shuffled over participants); and the per-trial choice
  proportions, the distance between the two groups being the mean over trials of the total
  variation distance, with the same permutation null. Both are exact tests of "agents and
  people are draws from one population" (calibrated: bench/calibration.py);
- individual level: is agent i (given person i's persona) closer to person i than to the other
  people? T = mean_i [mean_{j != i} d(a_i, p_j) - d(a_i, p_i)] on standardised indices (and on
  fitted parameters), with a p-value from random re-pairings of agents and people: under "the
  persona carries nothing about the person" every pairing is alike;
- trait recovery: the generating model's fitted parameters against the true ones (people),
  and against the traits the personas showed (agents): Pearson r with Fisher intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from ._stats import CONFIDENCE, Estimate

META = ("agent", "participant", "index", "n_trials", "person")


def index_columns(behaviour: pd.DataFrame) -> list[str]:
    """The behaviour indices of a behaviour table (not traits, true or fitted parameters)."""
    return [c for c in behaviour.columns if c not in META and not c.startswith(("trait:", "true:", "fit:"))
            and pd.api.types.is_numeric_dtype(behaviour[c])]


def _perm_p(observed: float, null: np.ndarray) -> float:
    return float((1 + np.sum(null >= observed - 1e-12)) / (len(null) + 1))


class IndexComparison(BaseModel):
    model_config = ConfigDict(frozen=True)
    index: str
    people: float
    agents: float
    difference: float  # agents - people
    p: float  # permutation test of equal means


class ChoiceDistance(BaseModel):
    model_config = ConfigDict(frozen=True)
    trials: int
    tvd: float  # mean over trials of the TVD between the groups' choice distributions
    p: float


class IndividualMatch(BaseModel):
    """How much closer each agent is to its own person than to the others."""

    model_config = ConfigDict(frozen=True)
    on: str  # "indices" or "fitted parameters"
    pairs: int
    closer: float  # T
    p: float


class Recovery(BaseModel):
    model_config = ConfigDict(frozen=True)
    group: str  # "people" (true vs fitted) or an agent (trait vs fitted)
    x: str
    y: str
    r: Estimate


class AgentComparison(BaseModel):
    """`compare_agents`'s results for one agent population against the people."""

    model_config = ConfigDict(frozen=True)
    agent: str
    people: str
    n_people: int
    n_agents: int
    indices: list[IndexComparison]
    choices: ChoiceDistance | None
    individual: list[IndividualMatch]
    recovery: list[Recovery]

    def tables(self) -> dict[str, pd.DataFrame]:
        base = {"agent": self.agent, "people": self.people}
        return {
            "indices": pd.DataFrame([{**base, **i.model_dump()} for i in self.indices]),
            "individual": pd.DataFrame([{**base, **i.model_dump()} for i in self.individual]),
            "recovery": pd.DataFrame([{**base, "group": r.group, "x": r.x, "y": r.y, "r": r.r.value, "lo": r.r.lo,
                                       "hi": r.r.hi, "p": r.r.p, "n": r.r.n} for r in self.recovery]),
            "choices": pd.DataFrame([{**base, **self.choices.model_dump()}] if self.choices else []),
        }

    def summary(self) -> str:
        lines = [f"{self.agent} ({self.n_agents} agents) against {self.people} ({self.n_people} people):",
                 "  population level (permutation tests of one population):"]
        for i in self.indices:
            lines.append(f"    {i.index:<24} people {i.people:8.3f}  agents {i.agents:8.3f}  difference "
                         f"{i.difference:+.3f}, p {_fmt(i.p)}")
        if self.choices is not None:
            lines.append(f"    choices per trial: mean TVD {self.choices.tvd:.3f} over {self.choices.trials} trials, "
                         f"p {_fmt(self.choices.p)}")
        lines.append("  individual level (is agent i closer to person i than to the others?):")
        for m in self.individual:
            lines.append(f"    on {m.on}: closer by {m.closer:+.3f} (standardised distance), p {_fmt(m.p)} over "
                         f"{m.pairs} pairs")
        if not self.individual:
            lines.append("    not tested: agents and people are not paired by participant")
        if self.recovery:
            lines.append("  recovery (Pearson r, 95% CI):")
            for r in self.recovery:
                lines.append(f"    {r.group}: {r.x} ~ {r.y}: r {r.r.value:+.2f} [{r.r.lo:+.2f}, {r.r.hi:+.2f}], "
                             f"p {_fmt(r.r.p)}, n {r.r.n}")
        return "\n".join(lines)


def _fmt(p: float | None) -> str:
    from ._inference import fmt_p

    return fmt_p(p)


def correlation(x: np.ndarray, y: np.ndarray) -> Estimate:
    """Pearson r with its Fisher 95% interval and p."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Estimate(value=math.nan, lo=math.nan, hi=math.nan, n=int(len(x)))
    res = stats.pearsonr(x, y)
    ci = res.confidence_interval(CONFIDENCE)
    return Estimate(value=float(res.statistic), lo=float(ci.low), hi=float(ci.high), p=float(res.pvalue), n=len(x))


def population_indices(people: pd.DataFrame, agents: pd.DataFrame, indices: Sequence[str], *, n_perm: int,
                       rng: np.random.Generator) -> list[IndexComparison]:
    out = []
    for name in indices:
        a = people[name].to_numpy(dtype=float)
        b = agents[name].to_numpy(dtype=float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 2 or len(b) < 2:
            continue
        pooled = np.concatenate([a, b])
        observed = abs(b.mean() - a.mean())
        null = np.empty(n_perm)
        for k in range(n_perm):
            perm = rng.permutation(pooled)
            null[k] = abs(perm[len(a):].mean() - perm[: len(a)].mean())
        out.append(IndexComparison(index=name, people=float(a.mean()), agents=float(b.mean()),
                                   difference=float(b.mean() - a.mean()), p=_perm_p(observed, null)))
    return out


def choice_distance(people: pd.DataFrame, agents: pd.DataFrame, *, n_perm: int,
                    rng: np.random.Generator) -> ChoiceDistance | None:
    """Mean over trials of the TVD between the groups' distributions of the chosen option's
    position, with group labels permuted over participants for the null."""
    both = pd.concat([people.assign(group=0), agents.assign(group=1)], ignore_index=True)
    trials = sorted(set(people["trial"]) & set(agents["trial"]))
    if not trials:
        return None
    both = both[both["trial"].isin(trials)]
    k = int(both["position"].max()) + 1
    who = both[["group", "participant"]].drop_duplicates()
    ids = {p: i for i, p in enumerate(who["participant"] + "@" + who["group"].astype(str))}
    pid = (both["participant"] + "@" + both["group"].astype(str)).map(ids).to_numpy()
    t_index = {t: i for i, t in enumerate(trials)}
    tt = both["trial"].map(t_index).to_numpy()
    pos = both["position"].to_numpy(dtype=int)
    groups = who["group"].to_numpy()

    def tvd(labels: np.ndarray) -> float:
        g = labels[pid]
        counts = np.zeros((2, len(trials), k))
        np.add.at(counts, (g, tt, pos), 1)
        totals = counts.sum(2, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        both_seen = (totals[0, :, 0] > 0) & (totals[1, :, 0] > 0)
        return float(0.5 * np.abs(shares[0] - shares[1]).sum(1)[both_seen].mean())

    observed = tvd(groups)
    null = np.array([tvd(rng.permutation(groups)) for _ in range(n_perm)])
    return ChoiceDistance(trials=len(trials), tvd=observed, p=_perm_p(observed, null))


def individual_match(people: pd.DataFrame, agents: pd.DataFrame, columns: Sequence[str], on: str, *,
                     n_perm: int, rng: np.random.Generator) -> IndividualMatch | None:
    """Agents paired with people by `person` (the participant whose persona the agent was
    given); distances on the columns standardised by the people's SD."""
    paired = agents.merge(people, left_on="person", right_on="participant", suffixes=("@a", "@p"))
    columns = [c for c in columns if paired[f"{c}@a"].notna().all() and paired[f"{c}@p"].notna().all()
               and people[c].std() > 0]
    if len(paired) < 4 or not columns:
        return None
    sd = people[columns].std().to_numpy()
    A = paired[[f"{c}@a" for c in columns]].to_numpy(dtype=float) / sd
    P = paired[[f"{c}@p" for c in columns]].to_numpy(dtype=float) / sd
    D = np.sqrt(((A[:, None, :] - P[None, :, :]) ** 2).sum(-1))  # agent x person
    n = len(D)

    def closer(perm: np.ndarray) -> float:
        own = D[np.arange(n), perm]
        others = (D.sum(1) - own) / (n - 1)
        return float(np.mean(others - own))

    observed = closer(np.arange(n))
    null = np.array([closer(rng.permutation(n)) for _ in range(n_perm)])
    return IndividualMatch(on=on, pairs=n, closer=observed, p=_perm_p(observed, null))


def recovery(people: pd.DataFrame, agents: pd.DataFrame, agent: str) -> list[Recovery]:
    out = []
    for col in people.columns:
        if col.startswith("true:") and f"fit:{col[5:]}" in people:
            x = np.log(people[col].to_numpy(dtype=float))
            y = np.log(people[f"fit:{col[5:]}"].to_numpy(dtype=float))
            out.append(Recovery(group="people", x=f"true {col[5:]} (log)", y=f"fitted {col[5:]} (log)", r=correlation(x, y)))
    traits = [c for c in agents.columns if c.startswith("trait:") and pd.api.types.is_numeric_dtype(agents[c])]
    fits = [c for c in agents.columns if c.startswith("fit:") and c != "fit:nll"]
    for t in traits:
        for f in fits:
            x = agents[t].to_numpy(dtype=float)
            y = np.log(agents[f].to_numpy(dtype=float))
            out.append(Recovery(group=agent, x=f"persona's {t[6:]}", y=f"fitted {f[4:]} (log)", r=correlation(x, y)))
    return out


def agent_comparison(people: pd.DataFrame, agents: pd.DataFrame, people_trials: pd.DataFrame | None = None,
                   agents_trials: pd.DataFrame | None = None, *, n_perm: int = 1999, seed: int = 0,
                   people_name: str = "people", agent_name: str | None = None) -> AgentComparison:
    """Compare one agent population with the people (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    agent_name = agent_name or str(agents["agent"].iloc[0])
    indices = [c for c in index_columns(people) if c in agents]
    pop = population_indices(people, agents, indices, n_perm=n_perm, rng=rng)
    choices = (choice_distance(people_trials, agents_trials, n_perm=n_perm, rng=rng)
               if people_trials is not None and agents_trials is not None else None)
    individual = []
    if "person" in agents and agents["person"].notna().all():
        for on, cols in (("indices", indices),
                         ("fitted parameters", [c for c in agents if c.startswith("fit:") and c != "fit:nll"
                                                and c in people])):
            m = individual_match(people, agents, cols, on, n_perm=n_perm, rng=rng)
            if m is not None:
                individual.append(m)
    return AgentComparison(agent=agent_name, people=people_name, n_people=len(people), n_agents=len(agents),
                           indices=pop, choices=choices, individual=individual,
                           recovery=recovery(people, agents, agent_name))
