"""`surrogate simulate`: run synthetic participants and model agents through an experiment.

Writes Psych-201-format transcripts (`prompts.jsonl`, readable by every other command),
the full sessions (`sessions.jsonl`: trials, feedback, true parameters, the option
probabilities model agents chose from), per-participant behaviour (`behaviour.csv`) and a
summary (`summary.json`: choice rates, rewards, trait-behaviour correlations).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from ..experiments import BUILTIN, Experiment, MeasuresBehaviour, SessionRecord, SyntheticSpec, TraitLink, simulate_synthetic, switch_rate
from .._imports import load_object
from ..models import ModelSpec
from ._store import atomic_write_bytes, atomic_write_json


class AgentSpec(BaseModel):
    """One population of simulated participants: synthetic (with trait links) or a model."""

    model_config = ConfigDict(frozen=True)
    kind: str  # "synthetic" or "model"
    name: str
    links: tuple[TraitLink, ...] | None = None  # synthetic; None: the paradigm's default links
    model: ModelSpec | None = None  # model agents: the model as `run` loads it
    persona: str = "none"
    policy: str = "sample"

    @property
    def path(self) -> str:
        return self.model.path if self.model is not None else ""

    @classmethod
    def parse(cls, text: str, index: int = 0, *, persona: str = "none") -> "AgentSpec":
        """`synthetic`, `synthetic:none`, `synthetic:TRAIT>PARAM=SLOPE[;...]`, or
        `model:PATH[,persona=S][,policy=sample|argmax][,name=N]` plus any option of a model
        string (`adapter=DIR`, `chat=`, `dtype=`, `device=`, `attention=`). `persona`: the
        persona strategy of model agents that do not name one."""
        kind, _, rest = text.partition(":")
        if kind == "synthetic":
            if not rest:
                return cls(kind="synthetic", name="syn")
            if rest == "none":
                return cls(kind="synthetic", name="syn", links=())
            return cls(kind="synthetic", name="syn",
                       links=tuple(TraitLink.parse(x) for x in rest.split(";") if x.strip()))
        if kind == "model" and rest:
            path, *opts = rest.split(",")
            agent: dict[str, str] = {"persona": persona}
            model_opts = []
            for opt in opts:
                key, sep, value = opt.partition("=")
                if sep and key.strip() in ("persona", "policy"):
                    agent[key.strip()] = value.strip()
                else:
                    model_opts.append(opt)
            try:
                spec = ModelSpec.parse(",".join([path, *model_opts]))
            except ValueError as e:
                raise ValueError(f"agent {text!r}: {e} (or persona=, policy=)") from None
            if agent.get("policy", "sample") not in ("sample", "argmax"):
                raise ValueError(f"agent {text!r}: policy must be sample or argmax")
            name = spec.name or (f"model{index + 1}" if index else "model")
            return cls(kind="model", name=name, model=spec.model_copy(update={"name": name}), **agent)
        raise ValueError(f"cannot read agent {text!r}; expected synthetic[:...] or model:PATH[,...]")


def resolve_experiment(name: str | Experiment, trials: int | None = None) -> Experiment:
    """A built-in paradigm by name, `module:Class` or `file.py:Class` (instantiated without
    arguments), or an
    Experiment object; `trials` sets n_trials when the experiment has one."""
    if not isinstance(name, str):
        experiment = name
    elif name in BUILTIN:
        experiment = BUILTIN[name]()
    elif ":" in name:
        obj = load_object(name)
        experiment = obj() if isinstance(obj, type) else obj
    else:
        raise ValueError(f"unknown experiment {name!r}; built in: {', '.join(BUILTIN)}, or module:Class")
    if not isinstance(experiment, Experiment):
        raise TypeError(f"{name} is not an experiment (needs .name and .session(rng))")
    if trials is not None:
        if not dataclasses.is_dataclass(experiment) or "n_trials" not in {f.name for f in dataclasses.fields(experiment)}:
            raise ValueError(f"experiment {experiment.name!r} has no n_trials to set")
        experiment = dataclasses.replace(experiment, n_trials=trials)
    return experiment


def behaviour_rows(experiment: Experiment, records: Sequence[SessionRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        rewards = [f.reward for f in r.feedback if f.reward is not None]
        row = {"agent": r.agent, "participant": r.participant, "n_trials": len(r.choices),
               "switch_rate": switch_rate(r.choices), "mean_reward": float(np.mean(rewards)) if rewards else np.nan}
        if isinstance(experiment, MeasuresBehaviour):
            row.update(experiment.behaviour(r))
        row.update({f"trait:{k}": v for k, v in r.metadata.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_behaviour(frame: pd.DataFrame) -> dict[str, Any]:
    """Per agent: means of each behaviour index, and Pearson r (p) of every numeric trait
    with every index across participants."""
    out: dict[str, Any] = {}
    indices = [c for c in frame.columns if c not in ("agent", "participant", "n_trials") and not c.startswith("trait:")]
    traits = [c for c in frame.columns if c.startswith("trait:") and pd.api.types.is_numeric_dtype(frame[c])]
    for agent, g in frame.groupby("agent", sort=False):
        entry: dict[str, Any] = {"participants": len(g),
                                 "means": {i: float(g[i].mean()) for i in indices if g[i].notna().any()},
                                 "trait_correlations": {}}
        for t in traits:
            for i in indices:
                x, y = g[t].to_numpy(float), g[i].to_numpy(float)
                ok = ~np.isnan(x) & ~np.isnan(y)
                if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                    res = stats.pearsonr(x[ok], y[ok])
                    entry["trait_correlations"][f"{t.removeprefix('trait:')} ~ {i}"] = {
                        "r": float(res.statistic), "p": float(res.pvalue)}
        out[str(agent)] = entry
    return out


class AgentSummary(BaseModel):
    """One agent population's behaviour: means of each index, and each numeric trait's
    Pearson r (and p) with each index across participants."""

    participants: int
    means: dict[str, float]
    trait_correlations: dict[str, dict[str, float]]


class SimulationSummary(BaseModel):
    """summary.json of a simulate run."""

    experiment: str
    seed: int
    participants_per_agent: int
    agents: dict[str, AgentSummary]


@dataclass
class SimulationResult:
    out: Path
    records: list[SessionRecord]
    behaviour: pd.DataFrame
    summary: SimulationSummary


def simulate(
    experiment: str | Experiment,
    agents: Sequence[str | AgentSpec] = ("synthetic",),
    participants: int = 50,
    *,
    seed: int = 0,
    out: str | Path = "runs/simulated",
    trials: int | None = None,
    batch_size: int = 16,
    persona: str = "none",
    log: Callable[[str], None] = lambda s: None,
) -> SimulationResult:
    """Simulate participants in an experiment; the Python form of `surrogate simulate`."""
    from ..agents import play_model
    from ..models import load_backend
    from ..personas import resolve_strategies

    exp = resolve_experiment(experiment, trials)
    specs = [a if isinstance(a, AgentSpec) else AgentSpec.parse(a, i, persona=persona) for i, a in enumerate(agents)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names repeat: {names}; name model agents with ,name=...")
    records: list[SessionRecord] = []
    for spec in specs:
        if spec.kind == "synthetic":
            links = spec.links if spec.links is not None else tuple(getattr(exp, "default_links", ()))
            records += simulate_synthetic(exp, participants, seed=seed, spec=SyntheticSpec(links=links),
                                          id_prefix=spec.name)
            log(f"{spec.name}: {participants} synthetic participants, links: "
                + (", ".join(f"{l.trait}>{l.param}={l.slope}" for l in links) or "none"))
        else:
            backend = load_backend(spec.model)
            strategy = resolve_strategies(spec.persona, seed=seed)
            if len(strategy) != 1:
                raise ValueError(f"agent {spec.name}: give one persona strategy, not {spec.persona!r}")
            recs = play_model(exp, backend, participants, seed=seed, strategy=strategy[0], policy=spec.policy,
                              batch_size=batch_size, id_prefix=spec.name)
            records += [r.model_copy(update={"agent": spec.name}) for r in recs]
            log(f"{spec.name}: {participants} model agents ({spec.path}, persona {spec.persona}, {spec.policy})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "prompts.jsonl", "".join(json.dumps(r.to_psych201()) + "\n" for r in records).encode())
    atomic_write_bytes(out / "sessions.jsonl", "".join(r.model_dump_json() + "\n" for r in records).encode())
    behaviour = behaviour_rows(exp, records)
    atomic_write_bytes(out / "behaviour.csv", behaviour.to_csv(index=False).encode())
    summary = SimulationSummary(experiment=exp.name, seed=seed, participants_per_agent=participants,
                                agents=summarize_behaviour(behaviour))
    atomic_write_json(out / "summary.json", summary.model_dump(mode="json"))
    return SimulationResult(out=out, records=records, behaviour=behaviour, summary=summary)


def read_sessions(folder: str | Path) -> list[SessionRecord]:
    """The sessions a simulate run wrote (for oracle scoring and replay checks)."""
    path = Path(folder) / "sessions.jsonl"
    return [SessionRecord.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
