"""`surrogate run`: score models on participants' transcripts, per persona strategy.

A *unit* is one (model, persona strategy, participant). Its key hashes everything that
determines its scores (weights, tokenizer, template, dtype, the rendered conditioning, the
cleaned transcript, truncation, code version), so re-running skips what is done and a
changed model or setting can never be mistaken for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from typing_extensions import Unpack

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from .._version import __version__
from ..agents import ParticipantAgent, choice_rows, detect_option_sets, make_agents, response_rows
from ..data import Dataset, Participant, Transcript, TruncationConfig, load, prepare_transcript
from ..models import ChoiceBackend, ModelSpec, ScoreResult, ScorerBackend, load_backend
from ..organisms import DEFAULT_MODELS, default_data, resolved
from ..personas import PersonaStrategy, Shuffled, Stratify, resolve_strategies
from ..options import OptionError, ScoringArgs, ScoringOptions, parse_shard, split_options
from ..store import IDENTITY, ResultFolder, UnitIndex, atomic_write_bytes, atomic_write_json

COLUMNS = ["study", "experiment", "participant", "response_index", "response_text", "model",
           "persona", "nll", "n_tokens", "truncated", "chat", "persona_fields", "persona_donor",
           "unit_key", "top1", "persona_donor_experiment"]
CHOICE_COLUMNS = ["study", "experiment", "participant", "response_index", "model", "persona", "options",
                  "chosen", "probs", "p_chosen", "correct", "nll_choice", "nll_uniform", "condition",
                  "unit_key"]


class RunConfig(BaseModel):
    """What a run scores (run.json's `config`): models, data, persona strategies, the output
    folder, and the scoring options."""

    model_config = ConfigDict(frozen=True)

    models: list[ModelSpec] = Field(default_factory=list, description="Models to score (empty: the shipped organisms).")
    data: str | None = Field(None, description="Psych-201 source (None: the shipped sample of real participants).")
    personas: list[str] = Field(default_factory=lambda: ["none"],
                                description="Persona strategies (names, on/off/both, module:Class).")
    out: Path = Field(Path("runs/default"), description="Output folder.")
    options: ScoringOptions = Field(default_factory=ScoringOptions)

    @property
    def truncation(self) -> TruncationConfig:
        return self.options.truncation

    @property
    def shard(self) -> tuple[int, int] | None:
        return parse_shard(self.options.shard)

    @property
    def shard_label(self) -> str:
        return f"{self.shard[0]}-of-{self.shard[1]}" if self.shard else "0-of-1"


def writer_name(config: RunConfig, labels: Sequence[str]) -> str:
    """Who writes: a plain run is `0-of-1`; a shard is `K-of-N-` and a digest of its models'
    labels, so array tasks of different models on the same share write one folder side by
    side, while a second process on the same models' share stops at once."""
    if config.shard is None:
        return config.shard_label
    return f"{config.shard_label}-{hashlib.sha256(chr(10).join(sorted(labels)).encode()).hexdigest()[:8]}"


def in_shard(unit_identity: tuple[str, ...], shard: tuple[int, int] | None) -> bool:
    """Units are dealt to shards by a hash of (model, persona, study, experiment,
    participant): every process computes the same deal, whatever order it loads data in."""
    if shard is None:
        return True
    digest = hashlib.sha256("\x1f".join(unit_identity).encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


@dataclass
class Unit:
    key: str
    agent: ParticipantAgent
    options: tuple[tuple[str, ...], ...] | None = None  # closed option set per scored response

    @property
    def transcript(self) -> Transcript:
        return self.agent.transcript

    @property
    def participant(self) -> Participant:
        return self.agent.participant

    @property
    def persona(self) -> str:
        return self.agent.persona

    @property
    def conditioning(self):
        return self.agent.conditioning


class ModelStats(BaseModel):
    """What one model did in a run (run.json's `models`)."""

    units: int
    skipped: int
    scored: int = 0
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_second: float | None = None
    empty_persona: dict[str, int] = {}
    chat: bool
    fingerprint: dict[str, Any]
    choice_units: int = 0
    backend: dict[str, Any] = {}
    trained_on: int = Field(0, description="Participants this model was trained on (built-in organisms and "
                                           "adapters with a split.json), scored here")


class RunInfo(BaseModel):
    """run.json: the resolved configuration, package versions, data, per-model statistics,
    and how the run ended (running, complete, interrupted, failed)."""

    status: str
    started: str
    finished: str | None = None
    updated: str | None = Field(None, description="When this file was last written (at every checkpoint), so "
                                                  "`surrogate status` can tell a live writer from a stopped one")
    config: dict[str, Any]
    versions: dict[str, str]
    data: dict[str, Any]
    choices: dict[str, Any] | None = None
    models: dict[str, ModelStats] = {}
    responses: dict[str, int] | None = None
    error: str | None = None
    notes: list[str] = []


@dataclass
class RunResult:
    """What a run produced: its folder, the full responses table, the summary, run.json."""

    out: Path
    responses: pd.DataFrame
    summary: pd.DataFrame
    info: RunInfo


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def build_units(
    participants: Sequence[Participant],
    strategies: Sequence[PersonaStrategy],
    backend: ScorerBackend,
    truncation: TruncationConfig,
    *,
    supports_system: bool,
    option_sets=None,
    fingerprint: dict[str, Any] | None = None,
    label: str = "",
) -> list[Unit]:
    """An agent per participant and strategy, keyed by its model label and everything that
    sets its scores (`fingerprint`: the backend's, if already computed; hashing weights is
    not free). The label is part of the key: one model under two labels is two units each."""
    fingerprint = fingerprint if fingerprint is not None else backend.fingerprint()
    units = []
    for strategy in strategies:
        for agent in make_agents(participants, backend, strategy, truncation):
            c, p = agent.conditioning, agent.participant
            if c.system and not supports_system:
                raise ValueError(f"persona strategy {strategy.name!r} gives a system message, which "
                                 f"needs chat-template scoring; model {fingerprint.get('model')} "
                                 "is scored without one (use --chat on)")
            transcript = agent.transcript
            options = option_sets.for_participant(p) if option_sets is not None else None
            if options is not None:
                options = options[: len(transcript.spans)]
            key = _sha({
                "code": __version__, "label": label, "backend": fingerprint, "persona": strategy.name,
                "who": p.key, "text": hashlib.sha256(transcript.text.encode()).hexdigest(),
                "spans": transcript.spans, "system": c.system, "truncation": truncation.model_dump(),
                "options": options,
            })
            units.append(Unit(key, agent, options))
    return units


def _score(backend: ScorerBackend, units: Sequence[Unit]) -> Iterator[tuple[Unit, ScoreResult]]:
    """Closed-set units through score_choices, the rest through score."""
    choice = [u for u in units if u.options is not None]
    plain = [u for u in units if u.options is None]
    if choice:
        requests = [u.agent.request(u.options) for u in choice]
        for i, result in backend.score_choices(requests):
            yield choice[i], result
    if plain:
        requests = [u.agent.request() for u in plain]
        for i, result in backend.score(requests):
            yield plain[i], result


def unit_rows(unit: Unit, result: ScoreResult, model: str, chat: bool) -> list[dict[str, Any]]:
    """The agent's response rows plus what the run records about the unit."""
    extra = {"chat": chat, "persona_fields": ",".join(unit.conditioning.fields),
             "persona_donor": unit.conditioning.donor, "unit_key": unit.key,
             "persona_donor_experiment": unit.conditioning.donor_experiment}
    return [row | extra for row in response_rows(unit.agent, result, model)]


def summarize(responses: pd.DataFrame) -> pd.DataFrame:
    """Mean NLL per model x persona x study, with counts."""
    if responses.empty:
        return pd.DataFrame(columns=["model", "persona", "study", "participants", "responses",
                                     "truncated", "mean_nll", "nll_per_token"])
    g = responses.groupby(["model", "persona", "study"], sort=True)
    out = pd.DataFrame({
        "participants": g["participant"].nunique(),
        "responses": g["nll"].count(),
        "truncated": g["truncated"].sum(),
        "mean_nll": g["nll"].mean(),
        "nll_per_token": g["nll"].sum() / g["n_tokens"].sum().replace(0, np.nan),
    }).reset_index()
    return out


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"surrogate": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "tokenizers", "numpy", "pandas", "pyarrow", "peft"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _check_stale(index: UnitIndex, units: Sequence[Unit], model: str) -> None:
    for u in units:
        if index.conflicts((model, u.persona, *u.participant.key), u.key):
            group = (" Shuffled and population personas depend on the whole group of participants, "
                     "so a different participant selection changes them too.") if u.conditioning.donor else ""
            raise ValueError(
                f"the output folder already holds results for model {model!r}, persona "
                f"{u.persona!r}, participant {u.participant.participant} computed differently "
                f"(weights, tokenizer, settings, persona text or code version); use a new --out "
                f"folder.{group}")


Progress = Callable[[str, int, int], None]  # (model, done, total)


def execute(
    config: RunConfig,
    dataset: Dataset,
    backends: Sequence[tuple[str, Callable[[], ScorerBackend]]],
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda s: None,
    trained: dict[str, set[tuple[str, str, str]]] | None = None,
) -> RunResult:
    """Score every (model, strategy, participant) unit not already in config.out. `trained`:
    per model label, the participants it was trained on (said in the output and run.json)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    name = writer_name(config, [label for label, _ in backends])
    with ResultFolder(out).writer(name) as writer, _terminate_as_interrupt():
        return _execute(config, dataset, backends, out, writer, progress=progress, log=log, trained=trained or {},
                        name=name)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (SLURM's warning before a kill) during a run: finished units were
    written, run.json says "interrupted", and the same command resumes."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.message, self.signal_number = message, signal_number


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises in the main thread as Ctrl-C does, so a batch scheduler's warning
    signal flushes finished units like an interactive Ctrl-C."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: dict[str, int] = {}

    def handler(signum, frame):
        received["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except KeyboardInterrupt as e:
        number = received.get("signal", int(signal.SIGINT))
        if isinstance(e, RunInterrupted):
            e.signal_number = number
            raise
        raise RunInterrupted("interrupted", number) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _execute(config, dataset, backends, out: Path, writer, *, progress, log, trained, name: str) -> RunResult:
    opts = config.options
    strategies = resolve_strategies(config.personas, seed=opts.seed, stratify=opts.stratify,
                                    derangements=opts.derangements)
    if dataset.invalid:
        lines = "".join(json.dumps(r.model_dump()) + "\n" for r in dataset.invalid)
        atomic_write_bytes(out / "invalid.jsonl", lines.encode())
    option_sets = None
    if opts.choices:
        plain = [prepare_transcript(p.text, "", config.truncation) for p in dataset.participants]
        option_sets = detect_option_sets(dataset.participants, plain, declared=opts.option_sets)
    info = RunInfo(
        status="running", started=datetime.now(timezone.utc).isoformat(),
        config=json.loads(config.model_dump_json()), versions=_versions(),
        data={"sources": dataset.sources, "participants": len(dataset), "invalid": len(dataset.invalid),
              "studies": dataset.studies},
        choices=None if option_sets is None else {
            "participants_with_options": len(option_sets.options),
            "experiments_fixed_labels": sorted(f"{a}/{b}" for (a, b), v in option_sets.shared.items() if v)})
    if opts.stratify is not None and any(isinstance(s, Shuffled) for s in strategies):
        stratify = Stratify.parse(opts.stratify)
        lacking = stratify.lacking(dataset.participants)
        if lacking:
            note = (f"--stratify {stratify}: {len(lacking)} participant(s) lack {stratify.field!r} (e.g. "
                    f"{', '.join(f'{p.experiment}/{p.participant}' for p in lacking[:3])}) and get no shuffled "
                    "persona: they are unpaired, and the decomposition leaves them out and counts them")
            info.notes.append(note)
            log(f"warning: {note}")
    info_name = "run.json" if config.shard is None else f"run-shard-{name}.json"

    def write_info() -> None:
        info.updated = datetime.now(timezone.utc).isoformat()
        atomic_write_json(out / info_name, info.model_dump(mode="json"))

    write_info()
    # From here on, whatever stops the run (a model that does not load, a bad score, Ctrl-C,
    # SIGTERM) leaves run.json saying so, never "running".
    try:
        existing = writer.existing(columns=[*IDENTITY, "unit_key"])
        done = set(existing["unit_key"]) if not existing.empty else set()
        index = UnitIndex(existing)
        for label, make_backend in backends:
            _score_model(label, make_backend, config, dataset, strategies, option_sets, writer, info, index, done,
                         write_info, progress=progress, log=log, trained=trained)
        responses = writer.existing()
    except BaseException as e:
        info.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        info.error = getattr(e, "message", None) or str(e) or type(e).__name__
        with contextlib.suppress(OSError):
            write_info()
        if isinstance(e, KeyboardInterrupt) and not isinstance(e, RunInterrupted):
            raise RunInterrupted(f"interrupted before scoring finished in {out}; run the same command again to "
                                 "resume", 2) from None
        raise
    summary = summarize(responses)
    info.status = "complete"
    info.finished = datetime.now(timezone.utc).isoformat()
    info.responses = {"rows": len(responses), "truncated": int(responses["truncated"].sum()) if len(responses) else 0}
    write_info()
    # Every shard writes the summary of what the folder holds when it ends; the last to end
    # writes the whole table's.
    atomic_write_bytes(out / "summary.csv", summary.to_csv(index=False).encode())
    return RunResult(out=out, responses=responses, summary=summary, info=info)


def _score_model(label, make_backend, config, dataset, strategies, option_sets, writer, info, index, done,
                 write_info, *, progress, log, trained) -> None:
    """Score one model's pending units, committing them at least every checkpoint_seconds."""
    backend = make_backend()
    supports_system = backend.chat
    can_choose = isinstance(backend, ChoiceBackend)
    fingerprint = backend.fingerprint()
    writer.register(label, fingerprint)
    units = build_units(dataset.participants, strategies, backend, config.truncation,
                        supports_system=supports_system,
                        option_sets=option_sets if can_choose else None, fingerprint=fingerprint, label=label)
    _check_stale(index, units, label)
    if config.shard is not None:
        units = [u for u in units if in_shard((label, u.persona, *u.participant.key), config.shard)]
    pending = [u for u in units if u.key not in done]
    empty = {s.name: sum(1 for u in units if u.persona == s.name and not u.conditioning.fields)
             for s in strategies if s.name != "none"}
    log(f"{label}: {len(units)} units, {len(units) - len(pending)} already done")
    seen_in_training = trained.get(label) or set()
    stats = ModelStats(units=len(units), skipped=len(units) - len(pending), empty_persona=empty,
                       chat=supports_system, fingerprint=fingerprint,
                       choice_units=sum(u.options is not None for u in units), backend=backend.describe(),
                       trained_on=len({u.participant.key for u in units} & seen_in_training))
    if stats.trained_on:
        note = (f"{label} was trained on {stats.trained_on} of the participants scored here (its split says so): "
                "their NLLs are not held-out predictions; --heldout-only scores only the others")
        info.notes.append(note)
        log(f"warning: {note}")
    info.models[label] = stats
    buffer: list[dict[str, Any]] = []
    choice_buffer: list[dict[str, Any]] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal buffer, choice_buffer, last_flush
        if buffer:
            frame = pd.DataFrame(buffer, columns=COLUMNS)
            committed = writer.commit(frame, pd.DataFrame(choice_buffer, columns=CHOICE_COLUMNS))
            others = frame["unit_key"].nunique() - committed
            if others:
                log(f"{label}: {others} unit(s) another writer committed first were left to it")
            write_info()  # progress for `surrogate status`, at every checkpoint
        buffer, choice_buffer, last_flush = [], [], time.monotonic()

    # All pending units go to the backend at once: it streams them (encoding the next
    # window while the device computes, holding only a few windows in memory), and
    # finished units are written at least every checkpoint_seconds.
    t0 = time.perf_counter()
    try:
        for unit, result in _score(backend, pending):
            stats.seconds += time.perf_counter() - t0
            rows = unit_rows(unit, result, label, supports_system)
            choices = (choice_rows(unit.agent, result, unit.options, label, unit.key)
                       if unit.options is not None else [])
            buffer.extend(rows)  # a unit enters the buffer whole or not at all
            choice_buffer.extend(choices)
            stats.tokens += result.n_input_tokens
            stats.scored += 1
            if progress:
                progress(label, stats.skipped + stats.scored, len(units))
            if time.monotonic() - last_flush >= config.options.checkpoint_seconds:
                flush()
            t0 = time.perf_counter()
        flush()
    except BaseException as e:
        # Keep what is finished (Ctrl-C, SIGTERM, a bad score), and say what happened.
        saved = True
        try:
            flush()
        except BaseException:  # noqa: BLE001 - the original error matters more (a full disk)
            saved = False
        if isinstance(e, KeyboardInterrupt):
            raise RunInterrupted(
                f"interrupted: {label} has {stats.skipped + stats.scored} of {len(units)} units in {config.out}"
                + ("" if saved else " (the last ones could not be written)")
                + "; run the same command again to resume", 2) from None
        raise
    stats.tokens_per_second = stats.tokens / stats.seconds if stats.seconds else None
    write_info()


ModelLike = str | ModelSpec | ScorerBackend


def _resolve(models: Sequence[ModelLike], **options) -> list[ModelSpec | ScorerBackend]:
    """Model strings parsed once into ModelSpecs (built-in names resolve when loaded);
    backends as given."""
    return [ModelSpec.parse(m, **options) if isinstance(m, str) else m for m in models]


def check_out(out: str | Path) -> Path:
    """`out` names a folder that exists or can be made, and can be written."""
    import os

    if not str(out).strip():
        raise OptionError("out", str(out), "must name a folder (it is empty)")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise OptionError("out", str(out), "a file is in the way (the output is a folder); choose another")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OptionError("out", str(out), f"{parent} is a file, so no folder can be made under it")
            if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
                raise OptionError("out", str(out), f"cannot create it (no write permission in {parent})")
            break
    if path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise OptionError("out", str(out), "no write permission in this folder")
    return path


def _check_models(specs: Sequence[ModelSpec]) -> None:
    """What can be known of each model before the output folder exists: its device is one
    this machine has, a local path exists, an adapter is one surrogate loads. A typo never
    leaves a half-made folder."""
    from .._cache import looks_local
    from ..models import check_device
    from ..organisms import resolve_model

    for spec in specs:
        check_device(spec.device)
        path = str(resolve_model(spec.path))
        if looks_local(path) and not Path(path).exists():
            raise FileNotFoundError(f"{spec.path}: no such file or folder (a model path or hub id)")
        if spec.adapter:
            from ..models import check_adapter

            check_adapter(Path(spec.adapter))


def _backend_factories(models: Sequence[ModelSpec | ScorerBackend]) -> list[tuple[str, Callable[[], ScorerBackend]]]:
    out: list[tuple[str, Callable[[], ScorerBackend]]] = []
    for m in models:
        if isinstance(m, ModelSpec):
            out.append((m.label, lambda spec=m: load_backend(resolved(spec))))
        else:
            out.append((m.name, lambda b=m: b))
    labels = [label for label, _ in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels repeat: {labels}; name them with NAME=PATH")
    return out


def _distributed(options: ScoringOptions, log) -> ScoringOptions:
    """The share of the work this process scores: shard K/N, or under torchrun / accelerate
    launch (WORLD_SIZE > 1) its rank's share, on its own GPU."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return options
    if options.shard is not None:
        raise OptionError("shard", options.shard, "a torchrun / accelerate launch splits the work too; use one")
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = options.device
    if device == "auto":
        import torch

        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    log(f"rank {rank} of {world}: scoring shard {rank}/{world} on {device}")
    return options.model_copy(update={"shard": f"{rank}/{world}", "device": device})


def run(
    models: Sequence[ModelLike] = (),
    data: str | Path | None = None,
    persona: str | Sequence[str] = "off",
    out: str | Path = "runs/default",
    *,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
    **options: Unpack[ScoringArgs],
) -> RunResult:
    """Score models on Psych-201 transcripts; the Python form of `surrogate run`.

    `models`: paths / hub ids (optionally NAME=PATH), ModelSpecs, or ready ScorerBackends;
    none: the shipped organisms. `data`: any source `surrogate.data.load` reads; None: the
    shipped sample of real Psych-201 participants. `persona`: strategy names (comma-separated or a list; on/off/both). Results
    go to `out` (responses.parquet, run.json, summary.csv); a re-run skips finished units.
    `options`: any of ScoringOptions' fields (surrogate.options), as the command line's options
    (`chat="off"`, `studies=[...]`, `max_participants=8`, ...). Give models or data (or both):
    the built-in default job (`surrogate run` with no options) is `surrogate.default_job()`.
    """
    (opts,) = split_options(dict(options), ScoringOptions)
    return run_with(opts, models, data, persona, out, progress=progress, log=log)


def run_with(opts: ScoringOptions, models: Sequence[ModelLike] = (), data: str | Path | None = None,
             persona: str | Sequence[str] = "off", out: str | Path = "runs/default", *,
             progress: Callable[[str, int, int], None] | None = None,
             log: Callable[[str], None] = lambda s: None) -> RunResult:
    """`run` with its options already built (the command line's and the default job's path)."""
    if not models and data is None:
        raise ValueError("give models or data (or both); with neither, `surrogate run` on the command line runs the "
                         "built-in default job, which is surrogate.default_job() in Python")
    opts = _distributed(opts, log)
    check_out(out)
    from ..models import check_device

    check_device(opts.device)
    personas = persona.split(",") if isinstance(persona, str) else list(persona)
    models = list(models) or list(DEFAULT_MODELS)
    if data is None:
        data = default_data()
    specs_or_backends = _resolve(models, **opts.model_options)
    factories = _backend_factories(specs_or_backends)
    specs = [m for m in specs_or_backends if isinstance(m, ModelSpec)]
    _check_models(specs)
    config = RunConfig(models=specs, data=str(data), personas=personas, out=Path(out), options=opts)
    # Everything that can be checked before the output folder exists is checked here, so a
    # typo never leaves a half-made folder behind.
    resolve_strategies(personas, seed=opts.seed, stratify=opts.stratify, derangements=opts.derangements)
    dataset = load(data, skip_invalid=opts.skip_invalid, max_participants=opts.max_participants, studies=opts.studies)
    if opts.stratify is not None:
        field = Stratify.parse(opts.stratify).field
        if not any(field in p.metadata for p in dataset.participants):
            present = sorted({k for p in dataset.participants for k in p.metadata})
            raise OptionError("stratify", opts.stratify, f"no participant in {data} has the metadata field {field!r}; "
                                                         f"fields present: {', '.join(present) or 'none'}")
    if dataset.invalid:
        log(f"{len(dataset.invalid)} invalid records skipped; see {Path(out) / 'invalid.jsonl'}")
    from ..organisms import trained_participants

    trained = {m.label: trained_participants(m.path, m.adapter) for m in specs}
    if opts.heldout_only:
        seen = set().union(*trained.values()) if trained else set()
        before = len(dataset.participants)
        dataset.participants = [p for p in dataset.participants if p.key not in seen]
        log(f"heldout_only: {before - len(dataset.participants)} participants a model was trained on left out, "
            f"{len(dataset.participants)} scored")
    if not dataset.participants:
        raise ValueError(f"no participants to score in {data}")
    unknown = sorted(set(opts.option_sets) - set(dataset.studies))
    if unknown:
        raise OptionError("option_sets", ", ".join(unknown), f"no such study in {data} (studies: "
                                                             f"{', '.join(dataset.studies)})")
    return execute(config, dataset, factories, progress=progress, log=log, trained=trained)
