"""`surrogate simulate`: run synthetic participants and model agents through an experiment.

Writes Psych-201-format transcripts (`EXPERIMENT/prompts.jsonl`, readable by every other
command, the study named after the experiment),
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

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..experiments import (BUILTIN, Experiment, SessionRecord, SyntheticSpec, TraitLink, behaviour_rows, session_index,
                           simulate_synthetic, summarize_behaviour, trial_rows)
from .._errors import OptionError
from .._imports import load_object
from ..models import ModelSpec
from ..organisms import resolved
from .._paths import check_name
from ..store import atomic_write_bytes, atomic_write_json, claim_output, exclusive_file, writer_lock


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
        """`synthetic`, `synthetic:none`, `synthetic:TRAIT>PARAM=SLOPE[;...]` (each optionally
        `,name=N`), or
        `model:PATH[,persona=S][,policy=sample|argmax][,name=N]` plus any option of a model
        string (`adapter=DIR`, `chat=`, `dtype=`, `device=`, `attention=`). `persona`: the
        persona strategy of model agents that do not name one."""
        kind, _, rest = text.partition(":")
        if kind.startswith("synthetic"):
            head, _, opt = text.partition(",")
            kind, _, rest = head.partition(":")
            name = f"syn{index + 1}" if index else "syn"
            if opt:
                key, sep, value = opt.partition("=")
                if key.strip() != "name" or not sep or not value.strip():
                    raise ValueError(f"agent {text!r}: after the links only name=N")
                name = value.strip()
            if kind != "synthetic":
                raise ValueError(f"cannot read agent {text!r}; expected synthetic[:...] or model:PATH[,...]")
            if not rest:
                return cls(kind="synthetic", name=name)
            if rest == "none":
                return cls(kind="synthetic", name=name, links=())
            return cls(kind="synthetic", name=name,
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
    """A built-in paradigm by name, a declarative experiment file (.toml, .json),
    `module:Class` or `file.py:Class` (instantiated without arguments), or an Experiment
    object; `trials` sets the number of trials when the experiment has one."""
    from ..experiments import DeclarativeExperiment, load_experiment_spec

    if not isinstance(name, str):
        experiment = name
    elif name in BUILTIN:
        experiment = BUILTIN[name]()
    elif name.endswith((".toml", ".json")):
        if not Path(name).is_file():
            raise FileNotFoundError(f"{name}: no such experiment file")
        experiment = DeclarativeExperiment(load_experiment_spec(name))
    elif ":" in name:
        obj = load_object(name)
        experiment = obj() if isinstance(obj, type) else obj
    else:
        raise ValueError(f"unknown experiment {name!r}; built in: {', '.join(BUILTIN)}, a .toml/.json file, or "
                         "module:Class")
    if not isinstance(experiment, Experiment):
        raise TypeError(f"{name} is not an experiment (needs .name and .session(rng))")
    if trials is not None:
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise OptionError("trials", trials, "at least one trial per session")
        if isinstance(experiment, DeclarativeExperiment):
            return experiment.with_trials(trials)
        if not dataclasses.is_dataclass(experiment) or "n_trials" not in {f.name for f in dataclasses.fields(experiment)}:
            raise ValueError(f"experiment {experiment.name!r} has no n_trials to set")
        experiment = dataclasses.replace(experiment, n_trials=trials)
    return experiment


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


class _SessionParts:
    """Finished sessions of a simulate folder, in parts that appear whole (a killed run
    resumes; each shard writes and cleans up only its own parts)."""

    def __init__(self, folder: Path, owner: str):
        self.folder, self.owner = folder / "sessions", owner
        self.folder.mkdir(parents=True, exist_ok=True)
        for tmp in self.folder.glob(f"_part-{owner}-*.tmp"):
            tmp.unlink(missing_ok=True)

    def read(self) -> list[SessionRecord]:
        out = []
        for part in sorted(self.folder.glob("part-*.jsonl")):
            out += [SessionRecord.model_validate_json(line) for line in part.read_text().splitlines() if line.strip()]
        return out

    def write(self, records: Sequence[SessionRecord]) -> None:
        import uuid

        if not records:
            return
        name = f"part-{self.owner}-{uuid.uuid4().hex[:12]}.jsonl"
        tmp = self.folder / f"_{name}.tmp"
        with exclusive_file(tmp) as f:
            f.write("".join(r.model_dump_json() + "\n" for r in records).encode())
        tmp.replace(self.folder / name)


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
    people: str | Path | None = None,
    shard: str | tuple[int, int] | None = None,
    fit: bool = True,
    progress: Callable[..., None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> SimulationResult:
    """Simulate participants in an experiment; the Python form of `surrogate simulate`.

    Synthetic participants and model agents are seeded: agent i gets synthetic participant
    i's traits, or with `people` (a folder of participants: a simulate or import output)
    person i's metadata as its persona, and task randomness of its own (so that it resembles
    person i only through the persona; a second synthetic group shares only the traits too). Finished sessions are kept in parts, so
    a killed run resumes; `shard` (K/N) plays a deterministic share of the sessions.
    Writes EXPERIMENT/prompts.jsonl (Psych-201 format), sessions.jsonl, behaviour.csv (indices,
    fitted and true parameters, traits), trials.parquet and summary.json."""
    from ..agents import play_model
    from ..data import load
    from ..models import load_backend
    from ..personas import resolve_strategies
    from .run import in_shard, parse_shard
    from .run import check_out

    exp = resolve_experiment(experiment, trials)
    check_name(exp.name, "experiment name")
    if batch_size < 1:
        raise OptionError("batch_size", batch_size, "at least one model agent per forward pass")
    specs = [a if isinstance(a, AgentSpec) else AgentSpec.parse(a, i, persona=persona) for i, a in enumerate(agents)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names repeat: {names}; name model agents with ,name=...")
    if participants < 1:
        raise OptionError("participants", participants, "at least one")
    for spec in specs:  # a bad persona name fails before anything is played
        if spec.kind == "model":
            resolve_strategies(spec.persona, seed=seed)
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    # The first synthetic group is the canonical one (stream 0); later ones share its traits only.
    synthetic_streams = {s.name: k for k, s in enumerate(x for x in specs if x.kind == "synthetic")}
    given = None
    if people is not None:
        given = sorted(load(people).participants, key=lambda p: (session_index(p.participant), p.participant))
        participants = len(given)
    out = check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    # The folder holds one simulation: a re-run resumes it only with the same specification.
    claim_output(out, "simulate", {
        "experiment": experiment_identity(exp), "seed": seed, "participants": participants,
        "agents": [a.model_dump(mode="json") for a in specs], "persona": persona, "fit": fit,
        "people": None if given is None else [[p.participant, p.metadata_text] for p in given]})
    label = f"{shard[0]}-of-{shard[1]}" if shard else "0-of-1"
    with writer_lock(out, f"simulate-{label}"):
        parts = _SessionParts(out, label)
        done = {(r.agent, session_index(r.participant)) for r in parts.read()}
        for spec in specs:
            wanted = [i for i in range(participants) if (spec.name, i + 1) not in done
                      and in_shard((spec.name, str(i + 1)), shard)]
            if not wanted:
                log(f"{spec.name}: all {participants} sessions already done")
                continue
            if spec.kind == "synthetic":
                if given is not None:
                    raise OptionError("people", str(people), "gives model agents personas; synthetic participants draw their own "
                                     "traits (drop --people, or simulate the synthetic people separately)")
                links = spec.links if spec.links is not None else tuple(getattr(exp, "default_links", ()))
                recs = simulate_synthetic(exp, participants, seed=seed, spec=SyntheticSpec(links=links),
                                          id_prefix=spec.name, stream=synthetic_streams[spec.name])
                parts.write([r.model_copy(update={"agent": spec.name}) for r in recs
                             if session_index(r.participant) - 1 in wanted])
                log(f"{spec.name}: {len(wanted)} synthetic participants, links: "
                    + (", ".join(f"{x.trait}>{x.param}={x.slope}" for x in links) or "none"))
                continue
            backend = load_backend(resolved(spec.model))
            strategy = resolve_strategies(spec.persona, seed=seed)
            if len(strategy) != 1:
                raise ValueError(f"agent {spec.name}: give one persona strategy, not {spec.persona!r}")
            finished = [0]

            def keep(batch, recs, spec=spec, finished=finished):
                persons = {i: (given[i].participant if given is not None else f"#{i + 1}") for i in batch}
                parts.write([r.model_copy(update={"agent": spec.name, "person": persons[session_index(r.participant) - 1]})
                             for r in recs])
                finished[0] += len(recs)
                if progress:
                    progress(spec.name, finished[0], len(wanted))

            play_model(exp, backend, participants, seed=seed, strategy=strategy[0], policy=spec.policy,
                       batch_size=batch_size, id_prefix=spec.name, people=given, indices=[i for i in wanted],
                       on_batch=keep)
            log(f"{spec.name}: {len(wanted)} model agents ({spec.path}, persona {spec.persona}, {spec.policy})")
        order = {n: k for k, n in enumerate(names)}
        records = sorted((r for r in parts.read() if r.agent in order),
                         key=lambda r: (order[r.agent], session_index(r.participant)))
        behaviour = behaviour_rows(exp, records, fit=fit)
        summary = SimulationSummary(experiment=exp.name, seed=seed, participants_per_agent=participants,
                                    agents=summarize_behaviour(behaviour))
        write_study(out, exp.name, records, behaviour, summary)
    return SimulationResult(out=out, records=records, behaviour=behaviour, summary=summary)


def experiment_identity(experiment: Experiment) -> dict[str, Any]:
    """What an experiment is, for keying outputs: a declarative spec's fields, a paradigm's
    class and parameters."""
    from ..experiments import DeclarativeExperiment

    if isinstance(experiment, DeclarativeExperiment):
        return {"declarative": experiment.spec.model_dump(mode="json")}
    kind = f"{type(experiment).__module__}.{type(experiment).__qualname__}"
    if dataclasses.is_dataclass(experiment):
        return {"class": kind, "fields": json.loads(json.dumps(dataclasses.asdict(experiment), default=str))}
    return {"class": kind, "name": experiment.name}


def write_study(out: Path, experiment: str, records: Sequence[SessionRecord], behaviour: pd.DataFrame,
                summary: SimulationSummary) -> None:
    """The folder `simulate` and `import` write: EXPERIMENT/prompts.jsonl (Psych-201, the
    study named after the experiment), sessions.jsonl, behaviour.csv, trials.parquet and
    summary.json, each replaced atomically and never through a link."""
    import io

    folder = out / check_name(experiment, "experiment name")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "prompts.jsonl", "".join(json.dumps(r.to_psych201()) + "\n" for r in records).encode())
    atomic_write_bytes(out / "sessions.jsonl", "".join(r.model_dump_json() + "\n" for r in records).encode())
    atomic_write_bytes(out / "behaviour.csv", behaviour.to_csv(index=False).encode())
    buffer = io.BytesIO()
    trial_rows(records).to_parquet(buffer, index=False)
    atomic_write_bytes(out / "trials.parquet", buffer.getvalue())
    atomic_write_json(out / "summary.json", summary.model_dump(mode="json"))


def read_sessions(folder: str | Path) -> list[SessionRecord]:
    """The sessions a simulate run wrote (for oracle scoring and replay checks)."""
    path = Path(folder) / "sessions.jsonl"
    return [SessionRecord.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
