"""Result tables that survive being killed.

`responses.parquet` is a folder of parquet parts (pandas and pyarrow read it as one table).
Each part is written to a hidden temporary name and renamed into place, so a reader sees a
part whole or not at all; every scoring unit lives in exactly one part, so resuming never
duplicates rows. Small JSON files are replaced atomically the same way.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from .._cache import atomic_write_bytes, atomic_write_json  # noqa: F401 (re-exported)

RESPONSES = "responses.parquet"
CHOICES = "choices.parquet"


class PartStore:
    """Append-only parquet parts under one folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def remove_temporaries(self) -> None:
        for tmp in self.folder.glob("_part-*.tmp"):
            tmp.unlink(missing_ok=True)

    def parts(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("part-*.parquet"))

    def names(self) -> set[str]:
        return {p.name for p in self.parts()}

    def new_name(self) -> str:
        return f"part-{len(self.parts()):06d}-{uuid.uuid4().hex[:8]}.parquet"

    def keep_only(self, names: set[str]) -> None:
        """Remove parts without a partner of the same name in the committing store."""
        for p in self.parts():
            if p.name not in names:
                p.unlink()

    def append(self, frame: pd.DataFrame, name: str | None = None) -> Path | None:
        if frame.empty:
            return None
        name = name or self.new_name()
        tmp = self.folder / f"_{name}.tmp"  # '_' prefix: pyarrow readers skip it
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.folder / name)
        return self.folder / name

    def read(self, columns: list[str] | None = None, parts: list[Path] | None = None) -> pd.DataFrame:
        """All parts as one table. A unit found in several parts (two writers that scored it
        at once, or merged folders that overlap) counts once: from the first part by name."""
        parts = self.parts() if parts is None else parts
        if not parts:
            return pd.DataFrame(columns=columns or [])
        wanted = None if columns is None else list(dict.fromkeys([*columns, "unit_key"]))
        frames, seen = [], set()
        for p in parts:
            f = pd.read_parquet(p, columns=wanted)
            if "unit_key" in f.columns:
                keys = f["unit_key"]
                f = f[~keys.isin(seen)]
                seen.update(keys.unique())
            frames.append(f if columns is None or "unit_key" in columns else f.drop(columns="unit_key"))
        return pd.concat(frames, ignore_index=True)


def read_responses(run_dir: str | Path) -> pd.DataFrame:
    """The responses table of a run folder (or a responses.parquet path)."""
    path = Path(run_dir)
    folder = path if path.name == RESPONSES else path / RESPONSES
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist; is {run_dir} a surrogate run folder?")
    if folder.is_file():
        return pd.read_parquet(folder)
    return PartStore(folder).read()


def read_choices(run_dir: str | Path) -> pd.DataFrame:
    """The closed-set choices table of a run folder (empty if it has none). Only parts whose
    responses part landed count: that is the commit point of a unit."""
    path = Path(run_dir)
    folder, committed = path / CHOICES, path / RESPONSES
    if not folder.is_dir():
        return pd.DataFrame()
    names = PartStore(committed).names() if committed.is_dir() else set()
    parts = [p for p in PartStore(folder).parts() if p.name in names]
    if not parts:
        return pd.DataFrame()
    return PartStore(folder).read(parts=parts)


@contextmanager
def writer_lock(out: Path, shard: str) -> Iterator[None]:
    """One writer per (folder, shard) at a time: a second process on the same share of the
    work stops at once with a clear error instead of scoring everything twice. The lock is
    the kernel's (flock): it dies with its process, so a killed run never leaves it behind."""
    import fcntl

    path = out / f".writer-{shard}.lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ValueError(f"{out}: {holder} is already writing shard {shard} of this folder; wait for "
                         "it, or give each process its own share with --shard K/N (torchrun ranks do "
                         "this themselves)") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}")
        f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
