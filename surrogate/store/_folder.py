"""Result folders: tables that survive being killed, edited or written by several processes.

`responses.parquet` and `choices.parquet` are folders of parquet parts (pandas and pyarrow
read each as one table). The contract:

- **A committed part is recorded.** Each writer (a shard of a run, a merge) appends, for every
  part it commits, a line to its own manifest `_manifest-<writer>.jsonl` (hidden from pandas
  and pyarrow by the leading underscore): the part's name, sha256, row count and units, and
  its choices part's. Readers, resumes and merges verify every part against its line and name
  the part that fails; a part no manifest lists is refused.
- **A unit is committed once.** Commits happen under the folder's lock: a writer drops from its
  part every unit another writer committed first (two writers may score a unit; only the first
  commit keeps it), so plain `pandas.read_parquet` never sees a unit twice.
- **A commit is all or nothing for readers.** Parts are written to hidden temporaries, recorded,
  then renamed into place (responses before choices); a reader skips a recorded part still
  under its temporary name (a commit in flight, or one a kill interrupted), and the next
  writer to start finishes or discards the commits of writers that died, and removes their
  temporaries. No process ever touches the files of a writer that is alive (its lock is
  held).
- **A label names one model.** `labels.json` records, per model label, the identity of what it
  scores (weights, tokenizer, adapter, dtype, template); every writer registers its labels
  under the folder's lock before its first unit, and a label already bound to another model
  is refused at once.

Small JSON files are replaced atomically; nothing is written through a symbolic link.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._files import atomic_write_bytes, atomic_write_json, exclusive_file, writer_lock

RESPONSES = "responses.parquet"
CHOICES = "choices.parquet"
LABELS = "labels.json"
LEGACY_OWNER = "legacy"
IDENTITY = ["model", "persona", "study", "experiment", "participant"]


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


class StoreError(ValueError):
    """A result folder that is not what its records say (edited, damaged or foreign files)."""


def _parquet_bytes(frame: pd.DataFrame, table: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(frame, schema=_schemas()[table], preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(arrow, buffer)
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_new(path: Path, data: bytes) -> None:
    """A new file (never through a link, never over an existing one), synced."""
    try:
        with exclusive_file(path) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@dataclass
class Entry:
    """One committed part, as its writer's manifest records it."""

    part: str
    owner: str
    rows: int
    sha256: str
    units: list[str]
    choices: dict[str, Any] | None = None  # {"rows": int, "sha256": str} where the part has choices

    def line(self) -> str:
        return json.dumps({"part": self.part, "owner": self.owner, "rows": self.rows, "sha256": self.sha256,
                           "units": self.units, "choices": self.choices}) + "\n"


def _owner_alive(out: Path, owner: str) -> bool:
    """Whether another process holds `owner`'s writer lock now."""
    path = out / f".writer-{owner}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno == errno.ELOOP:
            return True  # a planted link: leave that writer's files alone
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class ResultFolder:
    """A run folder's tables and records (see the module doc)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)

    # --- locks and records ---------------------------------------------------------------

    @contextmanager
    def locked(self, *, shared: bool = False) -> Iterator[None]:
        """The folder's lock: exclusive for commits, recovery and label registration;
        shared for a reader's snapshot. A folder a reader cannot lock (read-only) is read
        without it."""
        path = self.out / ".folder.lock"
        try:
            fd = os.open(path, (os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT) | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
        except FileNotFoundError:
            if shared:  # no writer has ever locked it: nothing in flight
                yield
                return
            raise
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ValueError(f"{path} is a symbolic link; surrogate does not write through links (remove it)") \
                    from None
            if shared and e.errno in (errno.EACCES, errno.EROFS):
                yield
                return
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _table(self, table: str) -> Path:
        return self.out / table

    def manifests(self) -> dict[str, list[Entry]]:
        """Every writer's committed parts, by writer."""
        out: dict[str, list[Entry]] = {}
        folder = self._table(RESPONSES)
        if not folder.is_dir():
            return out
        for path in sorted(folder.glob("_manifest-*.jsonl")):
            owner = path.name.removeprefix("_manifest-").removesuffix(".jsonl")
            entries = []
            for number, text in enumerate(path.read_text().splitlines(), start=1):
                if not text.strip():
                    continue
                try:
                    entries.append(Entry(**json.loads(text)))
                except (ValueError, TypeError):
                    raise StoreError(f"{path}:{number}: not a manifest line (edited or damaged)") from None
            out[owner] = entries
        return out

    def _legacy(self) -> bool:
        folder = self._table(RESPONSES)
        return folder.is_dir() and any(folder.glob("part-*.parquet")) and not any(folder.glob("_manifest-*.jsonl"))

    def _temporary(self, table: str, part: str) -> Path:
        return self._table(table) / f"_{part}.tmp"

    # --- reading -------------------------------------------------------------------------

    def _verified(self, table: str, part: str, rows: int, sha256: str) -> pd.DataFrame:
        path = self._table(table) / part
        data = path.read_bytes()
        if _sha(data) != sha256:
            raise StoreError(f"{path}: its contents changed after it was committed (checksum differs): results were "
                             "edited or damaged; move the part aside (or restore it) and run the same command again "
                             "to score its units anew")
        frame = pd.read_parquet(io.BytesIO(data))
        if len(frame) != rows:
            raise StoreError(f"{path}: {len(frame)} rows where {rows} were committed")
        return frame

    def _committed(self) -> list[Entry]:
        """The entries whose parts are in place. A part still under its temporary name is a
        commit in flight (its writer alive: skipped) or one a kill interrupted (an error until
        the next writer finishes it); a part gone altogether was deleted (an error)."""
        done = []
        for entries in self.manifests().values():
            for e in entries:
                path = self._table(RESPONSES) / e.part
                if path.exists():
                    done.append(e)
                elif not self._temporary(RESPONSES, e.part).exists():
                    raise StoreError(f"{path}: committed by {e.owner} but missing (deleted?); its units are lost from "
                                     f"the table; remove its line from _manifest-{e.owner}.jsonl to score them again")
                elif not _owner_alive(self.out, e.owner):
                    raise StoreError(f"{path}: a commit that a killed writer ({e.owner}) did not finish; run the same "
                                     "command again (or any writer on this folder) to finish it")
        return sorted(done, key=lambda e: e.part)

    def read(self, table: str = RESPONSES, columns: list[str] | None = None) -> pd.DataFrame:
        """One table, every part verified; each unit once."""
        folder = self._table(table)
        if not folder.exists():
            return pd.DataFrame(columns=columns or [])
        if self._legacy():
            return _read_legacy(folder, columns, committed=self._legacy_names() if table == CHOICES else None)
        with self.locked(shared=True):
            entries = self._committed()
            if table == CHOICES:
                entries = [e for e in entries if e.choices is not None]
            listed = {e.part for e in entries}
            foreign = [p for p in sorted(folder.glob("part-*.parquet")) if p.name not in listed]
            if foreign:
                raise StoreError(f"{foreign[0]}: not recorded in any of {self._table(RESPONSES)}'s manifests (written "
                                 "by hand or by another program); move it out of the folder")
            frames = []
            for e in entries:
                if table == RESPONSES:
                    frames.append(self._verified(RESPONSES, e.part, e.rows, e.sha256))
                elif (folder / e.part).exists():
                    frames.append(self._verified(CHOICES, e.part, e.choices["rows"], e.choices["sha256"]))
                elif not self._temporary(CHOICES, e.part).exists():
                    raise StoreError(f"{folder / e.part}: committed by {e.owner} but missing (deleted?)")
        if not frames:
            return pd.DataFrame(columns=columns or [])
        frame = pd.concat(frames, ignore_index=True)
        return frame if columns is None else frame[[c for c in columns if c in frame.columns]]

    def _legacy_names(self) -> set[str]:
        return {p.name for p in self._table(RESPONSES).glob("part-*.parquet")}

    def labels(self) -> dict[str, dict[str, Any]]:
        """Per model label, the identity of the model it names here (from labels.json; for
        folders written before it, from the run records' fingerprints)."""
        path = self.out / LABELS
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError:
                raise StoreError(f"{path}: not valid JSON (edited or damaged)") from None
            if not isinstance(data, dict) or not all(isinstance(v, dict) and "identity" in v for v in data.values()):
                raise StoreError(f"{path}: expected {{label: {{identity: ...}}}} (edited or damaged)")
            return data
        out: dict[str, dict[str, Any]] = {}
        for info in sorted(self.out.glob("run*.json")):
            try:
                models = json.loads(info.read_text()).get("models", {})
            except (ValueError, AttributeError):
                continue
            for label, stats in (models.items() if isinstance(models, dict) else []):
                fp = stats.get("fingerprint") if isinstance(stats, dict) else None
                if isinstance(fp, dict):
                    out.setdefault(label, {"identity": identity_of(fp), "fingerprint": fp})
        return out

    # --- writing -------------------------------------------------------------------------

    @contextmanager
    def writer(self, owner: str) -> Iterator["Writer"]:
        """The only way to write: this writer's lock held throughout; at start, under the
        folder's lock, the interrupted commits of writers that died are finished or discarded
        and their temporaries removed, and a folder from before manifests is adopted."""
        for table in (RESPONSES, CHOICES):
            self._table(table).mkdir(parents=True, exist_ok=True)
        with writer_lock(self.out, owner):
            with self.locked():
                self._recover(owner)
            yield Writer(self, owner)

    def _recover(self, me: str) -> None:
        if self._legacy():
            self._adopt_legacy()
        manifests = self.manifests()
        temporaries = {p.name for t in (RESPONSES, CHOICES) for p in self._table(t).glob("_part-*.tmp")}
        owners = set(manifests) | {_owner_of(n) for n in temporaries}
        for owner in sorted(o for o in owners if o and (o == me or not _owner_alive(self.out, o))):
            entries = manifests.get(owner, [])
            kept = []
            for e in entries:
                done = self._finish(RESPONSES, e.part, e.sha256)
                if not done:
                    continue  # never landed: the units are not committed; they will be scored again
                if e.choices is not None and not self._finish(CHOICES, e.part, e.choices["sha256"]):
                    e = Entry(**{**e.__dict__, "choices": None})  # choices lost mid-commit: the responses stand
                kept.append(e)
            if kept != entries:
                atomic_write_bytes(self._manifest(owner), "".join(e.line() for e in kept).encode())
            for t in (RESPONSES, CHOICES):
                for tmp in self._table(t).glob(f"_part-{owner}-*.tmp"):
                    tmp.unlink(missing_ok=True)

    def _finish(self, table: str, part: str, sha256: str) -> bool:
        """Whether a recorded part is in place, after renaming its verified temporary if the
        commit was interrupted before the rename."""
        path = self._table(table) / part
        if path.exists():
            return True
        tmp = self._temporary(table, part)
        if tmp.is_file() and not tmp.is_symlink() and _sha(tmp.read_bytes()) == sha256:
            os.replace(tmp, path)
            return True
        return False

    def _manifest(self, owner: str) -> Path:
        return self._table(RESPONSES) / f"_manifest-{owner}.jsonl"

    def _adopt_legacy(self) -> None:
        """A folder written before manifests: its parts become the `legacy` writer's, each
        unit once (the first part by name keeps it, as the old reader did)."""
        names = sorted(p.name for p in self._table(RESPONSES).glob("part-*.parquet"))
        seen: set[str] = set()
        lines = []
        for name in names:
            data = (self._table(RESPONSES) / name).read_bytes()
            frame = pd.read_parquet(io.BytesIO(data))
            if frame["unit_key"].isin(seen).any():
                # The old format let two writers commit a unit twice: rewrite the part without them.
                frame = frame[~frame["unit_key"].isin(seen)]
                data = _parquet_bytes(frame, RESPONSES)
                atomic_write_bytes(self._table(RESPONSES) / name, data)
            units = list(dict.fromkeys(frame["unit_key"]))
            seen.update(units)
            choices = None
            twin = self._table(CHOICES) / name
            if twin.exists():
                cdata = twin.read_bytes()
                cframe = pd.read_parquet(io.BytesIO(cdata))
                if not cframe["unit_key"].isin(set(units)).all():
                    cframe = cframe[cframe["unit_key"].isin(set(units))]
                    cdata = _parquet_bytes(cframe, CHOICES)
                    atomic_write_bytes(twin, cdata)
                choices = {"rows": len(cframe), "sha256": _sha(cdata)}
            lines.append(Entry(part=name, owner=LEGACY_OWNER, rows=len(frame), sha256=_sha(data), units=units,
                               choices=choices).line())
        for orphan in self._table(CHOICES).glob("part-*.parquet"):
            if orphan.name not in names:
                orphan.unlink()  # choices whose responses never landed (the old commit point)
        atomic_write_bytes(self._manifest(LEGACY_OWNER), "".join(lines).encode())


def _owner_of(temporary: str) -> str | None:
    """The writer a temporary's name carries (`_part-<owner>-<seq>-<id>.parquet.tmp`)."""
    body = temporary.removeprefix("_part-").removesuffix(".tmp")
    parts = body.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else None


def _read_legacy(folder: Path, columns: list[str] | None, committed: set[str] | None) -> pd.DataFrame:
    """A folder from before manifests, read as the old reader did (each unit from the first
    part by name); it gets its manifest from the next writer."""
    parts = sorted(folder.glob("part-*.parquet"))
    if committed is not None:
        parts = [p for p in parts if p.name in committed]
    frames, seen = [], set()
    for p in parts:
        try:
            f = pd.read_parquet(p)
        except (OSError, ValueError) as e:
            raise StoreError(f"{p}: not a readable result part ({e}); move it aside and re-run the same "
                             "command to score its units again") from None
        f = f[~f["unit_key"].isin(seen)]
        seen.update(f["unit_key"].unique())
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=columns or [])
    frame = pd.concat(frames, ignore_index=True)
    return frame if columns is None else frame[[c for c in columns if c in frame.columns]]


@dataclass
class Writer:
    """A writer's handle on a result folder (from `ResultFolder.writer`)."""

    folder: ResultFolder
    owner: str
    _seq: int = 0
    _seen: dict[str, int] = field(default_factory=dict)  # manifest -> lines read
    _committed: set[str] = field(default_factory=set)

    def existing(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The folder's responses as committed so far, verified (what a resume skips)."""
        return self.folder.read(RESPONSES, columns)

    def register(self, label: str, fingerprint: dict[str, Any]) -> None:
        """Bind a model label to what it scores, or check it is bound to the same; a label
        bound to another model is refused before any unit is scored."""
        identity = identity_of(fingerprint)
        path = self.folder.out / LABELS
        with self.folder.locked():
            known = self.folder.labels()
            if label in known and known[label]["identity"] != identity:
                raise ValueError(
                    f"{self.folder.out}: the label {label!r} already names another model here (identity "
                    f"{known[label]['identity']} from {_describe_fp(known[label].get('fingerprint'))}; this one is "
                    f"{identity} from {_describe_fp(fingerprint)}); give this model another label (NAME=PATH) or use a "
                    "new --out")
            if label not in known:
                known[label] = {"identity": identity, "fingerprint": fingerprint}
                atomic_write_json(path, known)

    def _refresh(self) -> None:
        """The units other writers committed since last looked (manifests are append-only)."""
        for path in sorted(self.folder._table(RESPONSES).glob("_manifest-*.jsonl")):
            lines = path.read_text().splitlines()
            start = self._seen.get(path.name, 0)
            if start > len(lines):  # rewritten by a recovery: read it whole again
                start = 0
            for text in lines[start:]:
                if text.strip():
                    self._committed.update(json.loads(text)["units"])
            self._seen[path.name] = len(lines)

    def commit(self, responses: pd.DataFrame, choices: pd.DataFrame) -> int:
        """Commit finished units (their responses and choices rows) in one part; units another
        writer committed first are dropped. Returns the number of units committed."""
        if responses.empty:
            return 0
        folder = self.folder
        with folder.locked():
            self._refresh()
            taken = responses["unit_key"].isin(self._committed)
            if taken.any():
                keep = set(responses.loc[~taken, "unit_key"])
                responses = responses[~taken]
                choices = choices[choices["unit_key"].isin(keep)] if not choices.empty else choices
            if responses.empty:
                return 0
            self._seq += 1
            name = f"part-{self.owner}-{self._seq:06d}-{uuid.uuid4().hex[:8]}.parquet"
            data = _parquet_bytes(responses, RESPONSES)
            cdata = _parquet_bytes(choices, CHOICES) if not choices.empty else None
            tmp, ctmp = folder._temporary(RESPONSES, name), folder._temporary(CHOICES, name)
            try:
                _write_new(tmp, data)
                if cdata is not None:
                    _write_new(ctmp, cdata)
                units = list(dict.fromkeys(responses["unit_key"]))
                entry = Entry(part=name, owner=self.owner, rows=len(responses), sha256=_sha(data), units=units,
                              choices=None if cdata is None else {"rows": len(choices), "sha256": _sha(cdata)})
                manifest = folder._manifest(self.owner)
                fd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
                with os.fdopen(fd, "a") as f:
                    f.write(entry.line())
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                tmp.unlink(missing_ok=True)
                ctmp.unlink(missing_ok=True)
                raise
            # The commit point was the manifest line; the renames make it visible (a kill
            # between them is finished by the next writer from the verified temporaries).
            os.replace(tmp, folder._table(RESPONSES) / name)
            if cdata is not None:
                os.replace(ctmp, folder._table(CHOICES) / name)
            self._committed.update(units)
            self._seen[manifest.name] = self._seen.get(manifest.name, 0) + 1
            return len(units)


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


def identity_of(fingerprint: dict[str, Any]) -> str:
    """What a model label stands for: the fingerprint's content (weights, tokenizer,
    adapter, template, dtype, revision), not the path it was loaded from, unless the weights
    have no content digest (a hub checkpoint without a commit hash)."""
    fp = dict(fingerprint or {})
    if fp.get("weights") not in (None, "unknown"):
        fp.pop("model", None)
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _describe_fp(fp: dict[str, Any] | None) -> str:
    if not isinstance(fp, dict):
        return "an unknown model"
    return f"{fp.get('model', '?')} (weights {fp.get('weights', '?')})"


def check_labels(folders: list[str | Path], *, separate: bool = False, merging: bool = False
                 ) -> dict[str, dict[str, str]]:
    """Per folder, a mapping of its labels to the labels its tables are read under: the same,
    unless a label names different models in different folders, which is an error, or, with
    `separate`, renamed `label@folder` in every folder but the first that uses it."""
    first: dict[str, tuple[str, str]] = {}
    out: dict[str, dict[str, str]] = {}
    for folder in map(str, folders):
        mapping = {}
        for label, rec in ResultFolder(folder).labels().items():
            if label not in first:
                first[label] = (rec["identity"], folder)
                mapping[label] = label
            elif first[label][0] == rec["identity"]:
                mapping[label] = label
            elif separate:
                mapping[label] = f"{label}@{Path(folder).name}"
            else:
                hint = ("merge them into different folders" if merging else
                        f"analyse them apart, or pass --separate-labels to read them as {label!r} and "
                        f"'{label}@{Path(folder).name}'")
                raise ValueError(f"the label {label!r} names different models in {first[label][1]} and {folder} "
                                 f"(identities {first[label][0]} and {rec['identity']}): their tables cannot be pooled "
                                 f"under one label; {hint}")
        out[folder] = mapping
    return out


JOB = "job.json"


def claim_output(out: Path, job: str, spec: dict[str, Any]) -> bool:
    """Bind an output folder to one job's full specification (job.json), so that a re-run
    resumes only what it would itself have written. Returns whether the folder held this
    specification already (a resume); a folder holding another job's, or another
    specification's, output is refused with what differs."""
    path = Path(out) / JOB
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    with ResultFolder(out).locked():
        if path.is_file():
            try:
                old = json.loads(path.read_text())
                old_job, old_spec, old_digest = old["job"], old["spec"], old["digest"]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}: not a surrogate job record (edited or damaged); use a new --out") from None
            if old_job != job:
                raise ValueError(f"{out} holds the output of `surrogate {old_job}`, not of {job}; use a new --out")
            if old_digest != digest:
                changed = sorted(k for k in set(old_spec) | set(spec) if old_spec.get(k) != json.loads(
                    json.dumps(spec.get(k), default=str)))
                raise ValueError(f"{out} holds a {job} of another specification (differs in: "
                                 f"{', '.join(changed) or 'details'}); use a new --out, or remove the folder to "
                                 "start again")
            return True
        atomic_write_json(path, {"job": job, "digest": digest, "spec": spec})
        return False


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (an input a job's output depends on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def read_responses(run_dir: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The responses table of a run folder (or a responses.parquet path), every part verified."""
    path = Path(run_dir)
    folder = path if path.name == RESPONSES else path / RESPONSES
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist; is {run_dir} a surrogate run folder?")
    if folder.is_file():
        return pd.read_parquet(folder)
    return ResultFolder(folder.parent).read(RESPONSES, columns)


def read_choices(run_dir: str | Path) -> pd.DataFrame:
    """The closed-set choices table of a run folder (empty if it has none): the choices parts
    of committed units, verified."""
    path = Path(run_dir)
    if not (path / CHOICES).is_dir():
        return pd.DataFrame()
    return ResultFolder(path).read(CHOICES)
