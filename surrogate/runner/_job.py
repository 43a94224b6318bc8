"""`surrogate run`: score models on participants' transcripts, per persona strategy.

A *unit* is one (model, persona strategy, participant). Its key hashes everything that
determines its scores (weights, tokenizer, template, dtype, the rendered conditioning, the
cleaned transcript, truncation, code version), so re-running skips what is done and a
changed model or setting can never be mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..data import DataError, Dataset, MarkerError, Participant, Transcript, TruncationConfig, load, prepare_transcript
from ..models import ModelSpec, ScoreRequest, ScoreResult, ScorerBackend
from ..personas import Conditioning, PersonaStrategy, resolve_strategies
from ._store import RESPONSES, PartStore, atomic_write_bytes, atomic_write_json

COLUMNS = ["study", "experiment", "participant", "response_index", "response_text", "model",
           "persona", "nll", "n_tokens", "truncated", "chat", "persona_fields", "persona_donor",
           "unit_key"]
IDENTITY = ["model", "persona", "study", "experiment", "participant"]
CHUNK_UNITS = 256  # units handed to a backend at once (bounds memory for huge runs)


class RunConfig(BaseModel):
    """Everything `surrogate run` needs; the CLI builds one from its options."""

    model_config = ConfigDict(frozen=True)

    models: list[ModelSpec] = Field(default_factory=list,
                                    description="Models to score (empty: the demo pair).")
    data: str | None = Field(None, description="Psych-201 source (None: the built-in demo study).")
    personas: list[str] = Field(default_factory=lambda: ["none"],
                                description="Persona strategies (names, on/off/both, module:Class).")
    out: Path = Field(Path("runs/default"), description="Output folder.")
    max_participants: int | None = Field(None, ge=1, description="Per study, in file order.")
    studies: list[str] | None = Field(None, description="Only these studies.")
    skip_invalid: bool = Field(False, description="Record bad records in invalid.jsonl and go on.")
    truncation: TruncationConfig = Field(default_factory=TruncationConfig)
    seed: int = Field(0, description="Seed of the shuffled-persona derangement.")
    checkpoint_seconds: float = Field(30.0, ge=0, description="Write finished units to disk at "
                                      "least this often (and after every chunk of units).")


@dataclass
class Unit:
    key: str
    participant: Participant
    persona: str
    conditioning: Conditioning
    transcript: Transcript


@dataclass
class RunResult:
    """What a run produced: its folder, the full responses table, and the summary."""

    out: Path
    responses: pd.DataFrame
    summary: pd.DataFrame
    info: dict[str, Any]


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def build_units(
    participants: Sequence[Participant],
    strategies: Sequence[PersonaStrategy],
    fingerprint: dict[str, Any],
    truncation: TruncationConfig,
    *,
    supports_system: bool,
) -> list[Unit]:
    """Render every strategy for every participant and key the resulting units."""
    units = []
    for strategy in strategies:
        conditionings = strategy.render(participants)
        for p, c in zip(participants, conditionings, strict=True):
            if c.system and not supports_system:
                raise ValueError(f"persona strategy {strategy.name!r} gives a system message, which "
                                 f"needs chat-template scoring; model {fingerprint.get('model')} "
                                 "is scored without one (use --chat on)")
            try:
                transcript = prepare_transcript(p.text, prefix=c.prefix, config=truncation)
            except MarkerError as e:
                raise DataError(p.source.file, p.source.line, p.participant, str(e)) from None
            key = _sha({
                "code": __version__, "backend": fingerprint, "persona": strategy.name,
                "who": p.key, "text": hashlib.sha256(transcript.text.encode()).hexdigest(),
                "spans": transcript.spans, "system": c.system, "truncation": truncation.model_dump(),
            })
            units.append(Unit(key, p, strategy.name, c, transcript))
    return units


def unit_rows(unit: Unit, result: ScoreResult, model: str, chat: bool) -> list[dict[str, Any]]:
    """One row per response of the uncut transcript; cut ones have NaN and truncated=True."""
    p, t = unit.participant, unit.transcript
    scored = len(t.spans)
    rows = []
    for r, text in enumerate(t.all_responses):
        ok = r < scored and not np.isnan(result.nll[r])
        rows.append({
            "study": p.study, "experiment": p.experiment, "participant": p.participant,
            "response_index": r, "response_text": text, "model": model, "persona": unit.persona,
            "nll": float(result.nll[r]) if ok else float("nan"),
            "n_tokens": int(result.n_tokens[r]) if ok else 0,
            "truncated": not ok, "chat": chat,
            "persona_fields": ",".join(unit.conditioning.fields),
            "persona_donor": unit.conditioning.donor, "unit_key": unit.key,
        })
    return rows


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


def _chunks(items: Sequence[Unit], n: int) -> Iterator[Sequence[Unit]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _check_stale(existing: pd.DataFrame, units: Sequence[Unit], model: str) -> None:
    if existing.empty:
        return
    have = existing[existing["model"] == model].drop_duplicates("unit_key")
    if have.empty:
        return
    known = {tuple(r[c] for c in IDENTITY): r["unit_key"] for _, r in have.iterrows()}
    for u in units:
        ident = (model, u.persona, *u.participant.key)
        old = known.get(ident)
        if old is not None and old != u.key:
            raise ValueError(
                f"the output folder already holds results for model {model!r}, persona "
                f"{u.persona!r}, participant {u.participant.participant} computed with different "
                "weights, tokenizer, settings or code version; use a new --out folder")


Progress = Callable[[str, int, int], None]  # (model, done, total)


def execute(
    config: RunConfig,
    dataset: Dataset,
    backends: Sequence[tuple[str, Callable[[], ScorerBackend]]],
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> RunResult:
    """Score every (model, strategy, participant) unit not already in config.out."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    store = PartStore(out / RESPONSES)
    store.remove_temporaries()  # parts a killed run was writing when it died
    strategies = resolve_strategies(config.personas, seed=config.seed)
    if dataset.invalid:
        lines = "".join(json.dumps(r.model_dump()) + "\n" for r in dataset.invalid)
        atomic_write_bytes(out / "invalid.jsonl", lines.encode())
    info: dict[str, Any] = {
        "status": "running", "started": datetime.now(timezone.utc).isoformat(),
        "config": json.loads(config.model_dump_json()), "versions": _versions(),
        "data": {"sources": dataset.sources, "participants": len(dataset),
                 "invalid": len(dataset.invalid), "studies": dataset.studies},
        "models": {},
    }
    atomic_write_json(out / "run.json", info)
    existing = store.read(columns=[*IDENTITY, "unit_key"])
    done = set(existing["unit_key"]) if not existing.empty else set()

    for label, make_backend in backends:
        backend = make_backend()
        supports_system = bool(getattr(backend, "chat", False))
        units = build_units(dataset.participants, strategies, backend.fingerprint(),
                            config.truncation, supports_system=supports_system)
        _check_stale(existing, units, label)
        pending = [u for u in units if u.key not in done]
        empty = {s.name: sum(1 for u in units if u.persona == s.name and not u.conditioning.fields)
                 for s in strategies if s.name != "none"}
        log(f"{label}: {len(units)} units, {len(units) - len(pending)} already done")
        stats = {"units": len(units), "skipped": len(units) - len(pending), "scored": 0,
                 "tokens": 0, "seconds": 0.0, "empty_persona": empty,
                 "device": getattr(backend, "device", None),
                 "dtype": str(getattr(backend, "dtype", "")).removeprefix("torch.") or None,
                 "chat": supports_system, "fingerprint": backend.fingerprint()}
        if hasattr(backend, "fast_path"):
            stats["fast_path"] = backend.fast_path
        buffer: list[dict[str, Any]] = []
        last_flush = time.monotonic()
        for chunk in _chunks(pending, CHUNK_UNITS):
            requests = [ScoreRequest(transcript=u.transcript, system=u.conditioning.system,
                                     max_tokens=config.truncation.max_tokens) for u in chunk]
            t0 = time.perf_counter()
            for i, result in backend.score(requests):
                stats["seconds"] += time.perf_counter() - t0
                stats["tokens"] += result.n_input_tokens
                stats["scored"] += 1
                buffer.extend(unit_rows(chunk[i], result, label, supports_system))
                if progress:
                    progress(label, stats["skipped"] + stats["scored"], len(units))
                if time.monotonic() - last_flush >= config.checkpoint_seconds:
                    store.append(pd.DataFrame(buffer, columns=COLUMNS))
                    buffer, last_flush = [], time.monotonic()
                t0 = time.perf_counter()
            store.append(pd.DataFrame(buffer, columns=COLUMNS))
            buffer, last_flush = [], time.monotonic()
        stats["tokens_per_second"] = stats["tokens"] / stats["seconds"] if stats["seconds"] else None
        info["models"][label] = stats
        atomic_write_json(out / "run.json", info)
        del backend

    responses = store.read()
    summary = summarize(responses)
    info["status"] = "complete"
    info["finished"] = datetime.now(timezone.utc).isoformat()
    info["responses"] = {"rows": len(responses),
                         "truncated": int(responses["truncated"].sum()) if len(responses) else 0}
    atomic_write_json(out / "run.json", info)
    atomic_write_bytes(out / "summary.csv", summary.to_csv(index=False).encode())
    return RunResult(out=out, responses=responses, summary=summary, info=info)
