"""Jobs: `run` scores models on transcripts; results land in a resumable folder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..data import TruncationConfig, load
from ..models import ModelSpec, ScorerBackend, load_backend
from ._analysis import Analysis, PersonaComparison, analyze, compare_personas, plan
from ..organisms import DEFAULT_MODELS, DEFAULT_PERSONAS, ORGANISM_NOTICE, default_data
from ._simulate import AgentSpec, SimulationResult, read_sessions, resolve_experiment, simulate
from ._job import COLUMNS, RunConfig, parse_shard, RunResult, build_units, execute, summarize, unit_rows
from ._merge import merge
from ._compare_agents import AgentsReport, compare_agents
from ._import import import_table, trial_table
from ._report import Report, report
from ._store import CHOICES, RESPONSES, ResultFolder, read_choices, read_responses

ModelLike = str | ModelSpec | ScorerBackend


def _resolve(models: Sequence[ModelLike], **options) -> list[ModelSpec | ScorerBackend]:
    """Model strings parsed once into ModelSpecs (built-in names resolve when loaded);
    backends as given."""
    return [ModelSpec.parse(m, **options) if isinstance(m, str) else m for m in models]


def check_out(out: str | Path) -> Path:
    """`--out` names a folder that exists or can be made, and can be written."""
    import os

    if not str(out).strip():
        raise ValueError("--out must name a folder (it is empty)")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out}: a file is in the way (the output is a folder); choose another --out")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out}: {parent} is a file, so no folder can be made under it")
            if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"--out {out}: cannot create it (no write permission in {parent})")
            break
    if path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: no write permission in this folder")
    return path


def _check_options(options: dict[str, list[str]]) -> None:
    for study, values in options.items():
        values = [v for v in values if v.strip()]
        if len(set(values)) < 2:
            raise ValueError(f"--options {study}={','.join(values)}: a closed option set needs at least two "
                             "distinct options")


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
            out.append((m.label, lambda spec=m: load_backend(spec)))
        else:
            out.append((m.name, lambda b=m: b))
    labels = [label for label, _ in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels repeat: {labels}; name them with NAME=PATH")
    return out


def _distributed(shard, device: str, log) -> tuple[tuple[int, int] | None, str]:
    """The share of the work this process scores: --shard K/N, or under torchrun /
    accelerate launch (WORLD_SIZE > 1) its rank's share, on its own GPU."""
    import os

    shard = parse_shard(shard) if isinstance(shard, str) else shard
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return shard, device
    if shard is not None:
        raise ValueError("--shard and a torchrun / accelerate launch both split the work; use one")
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        import torch

        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    log(f"rank {rank} of {world}: scoring shard {rank}/{world} on {device}")
    return (rank, world), device


def run(
    models: Sequence[ModelLike] = (),
    data: str | Path | None = None,
    persona: str | Sequence[str] = "off",
    out: str | Path = "runs/default",
    *,
    chat: str = "auto",
    dtype: str = "auto",
    device: str = "auto",
    backend: str = "hf",
    batch_tokens: int | None = None,
    attention: str = "auto",
    trust_remote_code: bool = False,
    max_participants: int | None = None,
    studies: Sequence[str] | None = None,
    skip_invalid: bool = False,
    truncation: TruncationConfig | None = None,
    seed: int = 0,
    stratify: str | None = None,
    derangements: int = 1,
    checkpoint_seconds: float = 30.0,
    shard: str | tuple[int, int] | None = None,
    choices: bool = True,
    options: dict[str, list[str]] | None = None,
    heldout_only: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> RunResult:
    """Score models on Psych-201 transcripts; the Python form of `surrogate run`.

    `models`: paths / hub ids (optionally NAME=PATH), ModelSpecs, or ready ScorerBackends;
    none: the shipped organisms (organism-base, organism-post). `data`: any source
    `surrogate.data.load` reads; None: the shipped sample of real Psych-201 participants. With
    neither (the built-in default) the personas none, interview and shuffled are always scored,
    so the persona decomposition can be estimated. `persona`: strategy names (comma-separated
    or a list; on/off/both). Results go to `out` (responses.parquet, run.json, summary.csv); a
    re-run skips finished units. With neither models nor data this is the built-in default job,
    as `surrogate run` with no options: it also estimates misalignment and the persona
    decomposition and writes the report (`result.analysis`, `result.report`).
    """
    default_job = not models and data is None
    shard, device = _distributed(shard, device, log)
    check_out(out)
    from ..models import check_device

    check_device(device)
    personas = persona.split(",") if isinstance(persona, str) else list(persona)
    if default_job:
        log(ORGANISM_NOTICE)
        from ..personas import ALIASES

        wanted = [n for p in personas for n in ALIASES.get(p.strip(), [p.strip()])]
        extra = [n for n in wanted if n not in DEFAULT_PERSONAS]
        if wanted != ["none"]:
            log(f"the built-in default job always scores {', '.join(DEFAULT_PERSONAS)} (the persona decomposition needs "
                "all three)" + (f"; your --persona adds {', '.join(extra)}" if extra else "; your --persona is among them"))
        from ._default import run_default_job

        return run_default_job(list(dict.fromkeys([*DEFAULT_PERSONAS, *wanted])), out, progress=progress, log=log,
                               run_options=dict(chat=chat, dtype=dtype, device=device, backend=backend,
                                                batch_tokens=batch_tokens, attention=attention,
                                                trust_remote_code=trust_remote_code, max_participants=max_participants,
                                                skip_invalid=skip_invalid, truncation=truncation, seed=seed,
                                                stratify=stratify, derangements=derangements,
                                                checkpoint_seconds=checkpoint_seconds, shard=shard, choices=choices,
                                                options=options, heldout_only=heldout_only))
    models = list(models) or list(DEFAULT_MODELS)
    if data is None:
        data = default_data()
    model_options = dict(chat=chat, dtype=dtype, device=device, batch_tokens=batch_tokens, attention=attention,
                         trust_remote_code=trust_remote_code, backend=backend)
    resolved = _resolve(models, **model_options)
    factories = _backend_factories(resolved)
    specs = [m for m in resolved if isinstance(m, ModelSpec)]
    _check_models(specs)
    config = RunConfig(models=specs, data=str(data), personas=personas, out=Path(out),
                       max_participants=max_participants, studies=list(studies) if studies else None,
                       skip_invalid=skip_invalid, truncation=truncation or TruncationConfig(), seed=seed,
                       stratify=stratify, derangements=derangements,
                       checkpoint_seconds=checkpoint_seconds, choices=choices, options=options or {},
                       shard=shard, heldout_only=heldout_only)
    # Everything that can be checked before the output folder exists is checked here, so a
    # typo never leaves a half-made folder behind.
    from ..personas import resolve_strategies

    resolve_strategies(personas, seed=seed, stratify=stratify, derangements=derangements)
    _check_options(options or {})
    dataset = load(data, skip_invalid=skip_invalid, max_participants=max_participants, studies=studies)
    if stratify is not None:
        from ..personas import Stratify

        field = Stratify.parse(stratify).field
        if not any(field in p.metadata for p in dataset.participants):
            present = sorted({k for p in dataset.participants for k in p.metadata})
            raise ValueError(f"--stratify {stratify!r}: no participant in {data} has the metadata field {field!r}; "
                             f"fields present: {', '.join(present) or 'none'}")
    if dataset.invalid:
        log(f"{len(dataset.invalid)} invalid records skipped; see {Path(out) / 'invalid.jsonl'}")
    from ..organisms import trained_participants

    trained = {m.label: trained_participants(m.path, m.adapter) for m in specs}
    if heldout_only:
        seen = set().union(*trained.values()) if trained else set()
        before = len(dataset.participants)
        dataset.participants = [p for p in dataset.participants if p.key not in seen]
        log(f"--heldout-only: {before - len(dataset.participants)} participants a model was trained on left out, "
            f"{len(dataset.participants)} scored")
    if not dataset.participants:
        raise ValueError(f"no participants to score in {data}")
    unknown = sorted(set(options or {}) - set(dataset.studies))
    if unknown:
        raise ValueError(f"--options for {', '.join(unknown)}: no such study in {data} (studies: "
                         f"{', '.join(dataset.studies)})")
    return execute(config, dataset, factories, progress=progress, log=log, trained=trained)


__all__ = [
    "Analysis", "PersonaComparison", "analyze", "compare_personas", "plan",
    "AgentSpec", "SimulationResult", "read_sessions", "resolve_experiment", "simulate",
    "AgentsReport", "compare_agents", "import_table", "trial_table", "CHOICES", "COLUMNS", "Report", "report", "merge", "parse_shard", "RESPONSES", "read_choices", "ResultFolder", "RunConfig", "RunResult", "build_units",
    "DEFAULT_MODELS", "DEFAULT_PERSONAS", "ORGANISM_NOTICE", "default_data", "execute", "read_responses", "run", "summarize", "unit_rows",
]
