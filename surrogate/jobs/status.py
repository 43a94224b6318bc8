"""How far a results folder has got while many tasks write it (`surrogate status OUT`).

Every writer of a folder (a plain run: run.json; a shard: run-shard-K-of-N-DIGEST.json, the
# digest of its models' labels) rewrites its
own small progress file at every checkpoint: per model, units of its share, done, tokens,
seconds. Status reads those files only (no lock, no table), so it never disturbs the
writers, and sums them per model. Where `surrogate grid script` wrote the task lists, the
tasks not started yet count too, so a model's total is known before its first task runs.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from .grid import expected_tasks

STALE_SECONDS = 15 * 60  # a "running" file not rewritten for this long is probably a killed task


class ModelProgress(BaseModel):
    model_config = ConfigDict(frozen=True)
    model: str
    tasks: int
    tasks_done: int
    tasks_running: int
    tasks_failed: int
    tasks_pending: int
    units_done: int
    units_total: int | None
    tokens: int
    tokens_per_second: float | None
    seconds_left: float | None
    errors: list[str] = []


class Status(BaseModel):
    model_config = ConfigDict(frozen=True)
    out: str
    models: list[ModelProgress]

    @property
    def done(self) -> bool:
        return bool(self.models) and all(m.tasks_done == m.tasks for m in self.models)

    @property
    def failed(self) -> bool:
        return any(m.tasks_failed for m in self.models)

    @property
    def exit_code(self) -> int:
        """0: every task complete; 1: a task failed (or stopped without finishing); 2: tasks
        still running or not started."""
        return 0 if self.done else 1 if self.failed else 2

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for m in self.models:
            left = ("" if m.seconds_left is None else f"{m.seconds_left / 3600:.1f} h" if m.seconds_left >= 3600
                    else f"{m.seconds_left / 60:.0f} min")
            rows.append({"model": m.model, "tasks done": f"{m.tasks_done}/{m.tasks}",
                         "running": m.tasks_running, "failed": m.tasks_failed, "pending": m.tasks_pending,
                         "units": f"{m.units_done}/{m.units_total if m.units_total is not None else '?'}",
                         "tokens": m.tokens,
                         "tokens/s": "" if m.tokens_per_second is None else f"{m.tokens_per_second:.0f}",
                         "time left": left})
        return pd.DataFrame(rows)


def _shard_of(path: Path) -> str | None:
    """run-shard-3-of-8-1a2b3c4d.json -> 3/8; run.json -> None."""
    if path.name == "run.json":
        return None
    k, _, rest = path.stem[len("run-shard-"):].partition("-of-")
    return f"{k}/{rest.split('-')[0]}"


def _age(text: str | None, now: datetime) -> float:
    if not text:
        return math.inf
    try:
        return (now - datetime.fromisoformat(text)).total_seconds()
    except ValueError:
        return math.inf


def status(out: str | Path, *, now: datetime | None = None) -> Status:
    """Per model: tasks done / running / failed / pending, units done of the total known,
    tokens, tokens per second and the time left at that rate (per task running in parallel)."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such results folder")
    now = now or datetime.now(timezone.utc)
    # (model label, shard) -> what that writer says
    seen: dict[tuple[str, str | None], dict] = {}
    for path in sorted([*out.glob("run.json"), *out.glob("run-shard-*-of-*.json")]):
        try:
            info = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # being replaced right now (the writer writes atomically; a rare race on some filesystems)
        shard = _shard_of(path)
        models = info.get("models") or {}
        run_status = info.get("status", "running")
        if run_status == "running" and _age(info.get("updated") or info.get("started"), now) > STALE_SECONDS:
            run_status = "stopped"
        order = list(models)
        for i, (label, stats) in enumerate(models.items()):
            # In a run of several models the ones before the last are finished; the last one
            # has the run's status.
            state = "complete" if (i < len(order) - 1 or run_status == "complete") else run_status
            seen[(label, shard)] = {"stats": stats, "state": state, "error": info.get("error"),
                                    "file": path.name}
    expected = expected_tasks(out)
    labels = _labels(expected, seen)
    progress = []
    for label in labels:
        keys = {(label, t.shard) for t in expected if _label_of(t.model) == label}
        keys |= {k for k in seen if k[0] == label}
        tasks = len(keys)
        states = [seen[k]["state"] if k in seen else "pending" for k in keys]
        done_units = total_units = tokens = 0
        seconds = 0.0
        known_total = True
        for k in keys:
            if k not in seen:
                known_total = False
                continue
            s = seen[k]["stats"]
            done_units += int(s.get("skipped", 0)) + int(s.get("scored", 0))
            total_units += int(s.get("units", 0))
            tokens += int(s.get("tokens", 0))
            seconds += float(s.get("seconds", 0.0))
        running = states.count("running")
        failed = sum(st in ("failed", "interrupted", "stopped") for st in states)
        pending = states.count("pending")
        complete = states.count("complete")
        tps = tokens / seconds if seconds > 0 else None
        if not known_total and complete + running + failed:
            # tasks not started: as large as the started ones, on average
            started = tasks - pending
            total_units = round(total_units * tasks / started) if started else 0
        left = None
        scored = sum(int(seen[k]["stats"].get("scored", 0)) for k in keys if k in seen)
        if scored and seconds > 0:
            per_unit = seconds / scored
            parallel = max(running, 1)
            left = (total_units - done_units) * per_unit / parallel
        errors = sorted({f"{seen[k]['file']}: {seen[k]['error']}" for k in keys
                         if k in seen and seen[k]["state"] != "complete" and seen[k]["error"]})
        errors += [f"{seen[k]['file']}: not updated for over {STALE_SECONDS // 60} min (a killed task?)"
                   for k in keys if k in seen and seen[k]["state"] == "stopped"]
        progress.append(ModelProgress(model=label, tasks=tasks, tasks_done=complete, tasks_running=running,
                                      tasks_failed=failed, tasks_pending=pending, units_done=done_units,
                                      units_total=total_units if (known_total or complete + running + failed)
                                      else None, tokens=tokens, tokens_per_second=tps, seconds_left=left,
                                      errors=errors))
    return Status(out=str(out), models=progress)


def _label_of(model_string: str) -> str:
    """The label a `--model` string gives its results (NAME=PATH: NAME; PATH@REV: PATH)."""
    from ..models import ModelSpec

    return ModelSpec.parse(model_string).label


def _labels(expected, seen) -> list[str]:
    out: list[str] = []
    for label in [_label_of(t.model) for t in expected] + [k[0] for k in seen]:
        if label not in out:
            out.append(label)
    return out
