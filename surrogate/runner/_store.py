"""Result tables that survive being killed.

`responses.parquet` is a folder of parquet parts (pandas and pyarrow read it as one table).
Each part is written to a hidden temporary name and renamed into place, so a reader sees a
part whole or not at all; every scoring unit lives in exactly one part, so resuming never
duplicates rows. Small JSON files are replaced atomically the same way.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd

from .._cache import atomic_write_bytes, atomic_write_json, exclusive_file, writer_lock  # noqa: F401 (re-exported)

RESPONSES = "responses.parquet"
CHOICES = "choices.parquet"
LEGACY_OWNER = "0-of-1"  # parts written before names carried their writer


def _schemas():
    """One fixed schema per table, whatever a part's values (a column that is all None in
    one part would otherwise be typed null there, and no reader could join the parts)."""
    import pyarrow as pa

    text, number, flag, whole = pa.string(), pa.float64(), pa.bool_(), pa.int64()
    responses = pa.schema([("study", text), ("experiment", text), ("participant", text), ("response_index", whole),
                           ("response_text", text), ("model", text), ("persona", text), ("nll", number),
                           ("n_tokens", whole), ("truncated", flag), ("chat", flag), ("persona_fields", text),
                           ("persona_donor", text), ("unit_key", text), ("top1", number),
                           ("persona_donor_experiment", text)])
    choices = pa.schema([("study", text), ("experiment", text), ("participant", text), ("response_index", whole),
                         ("model", text), ("persona", text), ("options", pa.list_(text)), ("chosen", text),
                         ("probs", pa.list_(number)), ("p_chosen", number), ("correct", number),
                         ("nll_choice", number), ("nll_uniform", number), ("condition", text), ("unit_key", text)])
    return {RESPONSES: responses, CHOICES: choices}


class PartStore:
    """Append-only parquet parts under one folder. Each writer (a shard of a run, a merge)
    owns the parts and temporaries whose names carry its label, and cleans up only those, so
    a process starting on a folder never touches what another live writer is writing."""

    def __init__(self, folder: Path, owner: str = LEGACY_OWNER):
        self.folder, self.owner = folder, owner
        folder.mkdir(parents=True, exist_ok=True)
        self.schema = _schemas().get(folder.name)

    def _own(self, name: str) -> bool:
        """Whether a part (or temporary) name belongs to this writer. Parts written before
        names carried an owner (`part-000001-xxxxxxxx`) belong to the unsharded writer."""
        body = name.lstrip("_").removeprefix("part-")
        if body.startswith(self.owner + "-"):
            return True
        legacy = body.split("-", 1)[0].isdigit() and body.count("-") == 1
        return legacy and self.owner == LEGACY_OWNER

    def remove_temporaries(self) -> None:
        """Temporaries this writer left when it was killed (never another writer's)."""
        for tmp in self.folder.glob("_part-*.tmp"):
            if self._own(tmp.name):
                tmp.unlink(missing_ok=True)

    def parts(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("part-*.parquet"))

    def names(self) -> set[str]:
        return {p.name for p in self.parts()}

    def new_name(self) -> str:
        mine = sum(self._own(p.name) for p in self.parts())
        return f"part-{self.owner}-{mine:06d}-{uuid.uuid4().hex[:8]}.parquet"

    def keep_only(self, names: set[str]) -> None:
        """Remove this writer's parts without a partner of the same name in the committing store."""
        for p in self.parts():
            if self._own(p.name) and p.name not in names:
                p.unlink()

    def append(self, frame: pd.DataFrame, name: str | None = None) -> Path | None:
        if frame.empty:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = name or self.new_name()
        tmp = self.folder / f"_{name}.tmp"  # '_' prefix: pyarrow readers skip it
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False) if self.schema is not None \
            else pa.Table.from_pandas(frame, preserve_index=False)
        try:
            with exclusive_file(tmp) as f:
                pq.write_table(table, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / name)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk or a kill mid-write leaves nothing half-written
            raise
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
            try:
                f = pd.read_parquet(p, columns=wanted)
            except (OSError, ValueError) as e:
                raise ValueError(f"{p}: not a readable result part ({e}); move it aside and re-run the same "
                                 "command to score its units again") from None
            if "unit_key" in f.columns:
                keys = f["unit_key"]
                f = f[~keys.isin(seen)]
                seen.update(keys.unique())
            frames.append(f if columns is None or "unit_key" in columns else f.drop(columns="unit_key"))
        return pd.concat(frames, ignore_index=True)


IDENTITY = ["model", "persona", "study", "experiment", "participant"]


class UnitIndex:
    """Which unit key each (model, persona, study, experiment, participant) has in a table:
    the one check, for a resumed run and for a merge, that a unit is never stored computed
    two ways."""

    def __init__(self, table: pd.DataFrame):
        self.keys: dict[tuple, str] = {}
        if not table.empty:
            units = table.drop_duplicates("unit_key")
            for ident, key in zip(units[IDENTITY].itertuples(index=False, name=None), units["unit_key"]):
                self.keys[tuple(ident)] = key

    def conflicts(self, ident: tuple, key: str) -> bool:
        """Whether this identity is already stored under another key."""
        return self.keys.get(tuple(ident), key) != key

    def add(self, ident: tuple, key: str) -> None:
        self.keys[tuple(ident)] = key

    def __contains__(self, key: str) -> bool:
        return key in set(self.keys.values())


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


