"""`surrogate compare-agents PEOPLE AGENTS`: do model agents behave like these people, and
like each person? (surrogate.analysis.agent_comparison on the folders `simulate` and `import`
write.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._errors import OptionError
from ..analysis import AgentComparison, agent_comparison
from ..store import atomic_write_bytes, atomic_write_json


def _tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    behaviour, trials = folder / "behaviour.csv", folder / "trials.parquet"
    if not behaviour.is_file():
        raise FileNotFoundError(f"{folder}: no behaviour.csv; give a folder written by `surrogate simulate` or "
                                "`surrogate import`")
    frame = pd.read_csv(behaviour, dtype={"participant": str, "person": str, "agent": str})
    return frame, (pd.read_parquet(trials).astype({"participant": str}) if trials.is_file() else None)


@dataclass
class AgentsReport:
    out: Path
    comparisons: list[AgentComparison]
    experiment: str

    def summary(self) -> str:
        return "\n\n".join(c.summary() for c in self.comparisons)


def compare_agents(people: str | Path, agents: str | Path, out: str | Path | None = None, *,
                   people_agent: str | None = None, n_perm: int = 1999, seed: int = 0) -> AgentsReport:
    """Compare every agent population of `agents` with the people of `people` (the group named
    `people_agent`, or the only one there). Agents are paired with the people whose personas
    they were given (`person`), or by their index (agent i and person i share traits, and
    nothing else, in `simulate`). Writes the tables and summary.txt to `out` (default:
    AGENTS/comparison)."""

    if n_perm < 99:
        raise OptionError("n_perm", n_perm, "at least 99 permutations")
    people_dir, agents_dir = Path(people), Path(agents)
    p_frame, p_trials = _tables(people_dir)
    a_frame, a_trials = _tables(agents_dir)
    groups = list(p_frame["agent"].unique())
    if people_agent is None:
        if len(groups) != 1:
            raise ValueError(f"{people_dir} holds several groups ({', '.join(groups)}); choose the people with "
                             "--people-agent")
        people_agent = groups[0]
    if people_agent not in groups:
        raise OptionError("people_agent", people_agent, f"not in {people_dir} (groups: {', '.join(groups)})")
    people_rows = p_frame[p_frame["agent"] == people_agent].reset_index(drop=True)
    people_trials = p_trials[p_trials["agent"] == people_agent] if p_trials is not None else None
    experiment = _experiment_of(people_dir)
    if experiment is not None and _experiment_of(agents_dir) not in (None, experiment):
        raise ValueError(f"{people_dir} holds people of {experiment!r} and {agents_dir} agents of "
                         f"{_experiment_of(agents_dir)!r}: behaviour in different experiments is not comparable")
    experiment = experiment or "experiment"
    by_index = dict(zip(people_rows["index"], people_rows["participant"]))
    comparisons = []
    for agent in a_frame["agent"].unique():
        if agent == people_agent and agents_dir.resolve() == people_dir.resolve():
            continue
        rows = a_frame[a_frame["agent"] == agent].reset_index(drop=True)
        person = rows["person"] if "person" in rows else pd.Series([None] * len(rows))
        if person.isin(set(people_rows["participant"])).all():
            rows = rows.assign(person=person)
        else:  # simulated together: agent i has person i's traits
            rows = rows.assign(person=rows["index"].map(by_index))
        trials = a_trials[a_trials["agent"] == agent] if a_trials is not None else None
        comparisons.append(agent_comparison(people_rows, rows, people_trials, trials, n_perm=n_perm, seed=seed,
                                   people_name=people_agent, agent_name=str(agent)))
    if not comparisons:
        raise ValueError(f"{agents_dir}: no agent population besides the people to compare")
    out = Path(out) if out is not None else agents_dir / "comparison"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("indices", "individual", "recovery", "choices"):
        frame = pd.concat([c.tables()[name] for c in comparisons], ignore_index=True)
        if not frame.empty:
            atomic_write_bytes(out / f"agents_{name}.csv", frame.to_csv(index=False).encode())
        else:  # a table an earlier comparison wrote here is not this one's
            (out / f"agents_{name}.csv").unlink(missing_ok=True)
    report = AgentsReport(out=out, comparisons=comparisons, experiment=experiment)
    atomic_write_bytes(out / "summary.txt", (report.summary() + "\n").encode())
    atomic_write_json(out / "comparison.json", {"people": str(people_dir), "agents": str(agents_dir),
                                                "experiment": experiment, "people_agent": people_agent,
                                                "comparisons": [c.model_dump(mode="json") for c in comparisons]})
    return report


def _experiment_of(folder: Path) -> str | None:
    """The experiment a simulate or import folder holds (its summary.json), if it says."""
    import json

    path = folder / "summary.json"
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["experiment"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not a simulate or import summary (edited or damaged)") from None


def load_comparison(folder: Path) -> tuple[dict, list[AgentComparison]]:
    import json

    data = json.loads((folder / "comparison.json").read_text())
    return data, [AgentComparison.model_validate(c) for c in data["comparisons"]]


def agents_figures(folder: Path) -> list[tuple[str, str, str, object]]:
    """The custom study's figures from a compare-agents folder: choices per trial, indices,
    recovery, and the individual-level test."""
    from . import figures

    data, comparisons = load_comparison(folder)
    people_dir, agents_dir = Path(data["people"]), Path(data["agents"])
    people, p_trials = _tables(people_dir)
    agents, a_trials = _tables(agents_dir)
    people = people[people["agent"] == data["people_agent"]]
    made = [("agents_choices", "Choices trial by trial", "Share of participants choosing the first option at each "
             "trial, people against each agent population (the population-level choice test in the caption of the "
             "table).", figures.choices_per_trial(p_trials[p_trials["agent"] == data["people_agent"]], a_trials)),
            ("agents_indices", "Behaviour indices", "Each participant's behaviour indices, people against agents; "
             "diamonds are means (permutation tests in the estimates).", figures.index_strips(people, agents)),
            ("agents_recovery", "Parameter recovery", "People: the generating model's fitted parameters against the "
             "true ones; agents: fitted parameters against the personas' traits.", figures.recovery_plot(people, agents)),
            ("agents_individual", "Is each agent closest to its own person?", "Per agent population: how much closer "
             "agent i is to person i than to the other people (standardised distance), against the same statistic "
             "over random re-pairings (grey).", figures.individual_plot(comparisons))]
    return made
