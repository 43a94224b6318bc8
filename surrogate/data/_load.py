"""Read Psych-201 data: jsonl / jsonl.zip / parquet files, study directories, HF datasets.

Every source is reduced to rows (dicts) with a location, so validation is one code path.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .._cache import looks_local
from ._records import DataError, Participant, participant_from_record

DATA_SUFFIXES = (".jsonl.zip", ".jsonl", ".parquet")
_HF_ID = re.compile(r"^(hf:)?[\w.-]+/[\w.-]+(@[\w.-]+)?$")


class InvalidRecord(BaseModel):
    """A rejected record and why, as written to invalid.jsonl."""

    model_config = ConfigDict(frozen=True)
    source: str
    line: int | None
    participant: str | None
    reason: str
    record: str


@dataclass
class Dataset:
    """Participants in file order, plus the records rejected under skip_invalid."""

    participants: list[Participant]
    invalid: list[InvalidRecord] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(p.study for p in self.participants))

    def __len__(self) -> int:
        return len(self.participants)

    def __iter__(self) -> Iterator[Participant]:
        return iter(self.participants)


@dataclass
class _Row:
    source: str
    line: int
    raw: str  # the line as written (for invalid.jsonl)
    record: Any = None
    error: str | None = None


def shared_psych201(beside: str | Path | None = None) -> Path:
    """Where the Psych-201 data is by convention: `$SURROGATE_SHARED/psych201`, else
    `shared/psych201` beside the project folder (`beside`, default the working folder)."""
    root = os.environ.get("SURROGATE_SHARED")
    return (Path(root) if root else Path(beside or Path.cwd()).resolve().parent / "shared") / "psych201"


def limits() -> tuple[int, int]:
    """(bytes per record, bytes per file, uncompressed): 64 MiB and 16 GiB unless
    SURROGATE_MAX_RECORD_BYTES / SURROGATE_MAX_FILE_BYTES say otherwise. The largest
    Psych-201 record is under 2 MiB; the limits stop a corrupt or hostile file (a one-line
    zip bomb) from taking the machine's memory before any check."""
    record = int(os.environ.get("SURROGATE_MAX_RECORD_BYTES", 64 * 2**20))
    file = int(os.environ.get("SURROGATE_MAX_FILE_BYTES", 16 * 2**30))
    return record, file


def _jsonl_rows(f: Any, source: str, used: list[int] | None = None) -> Iterator[_Row]:
    """JSON lines, each bounded, the bytes read counted against the file limit (`used`: a
    counter shared by the members of one archive)."""
    max_record, max_file = limits()
    used = [0] if used is None else used
    i = 0

    def count(n: int) -> None:
        used[0] += n
        if used[0] > max_file:
            raise DataError(source, i, None, f"more than {max_file} bytes uncompressed (SURROGATE_MAX_FILE_BYTES "
                                             "raises the limit)")

    while True:
        line = f.readline(max_record + 1)
        if not line:
            return
        i += 1
        count(len(line))
        if len(line) > max_record and not line.endswith(b"\n"):
            while True:  # skip the rest of the over-long line without holding it
                more = f.readline(max_record)
                count(len(more))
                if not more or more.endswith(b"\n"):
                    break
            yield _Row(source, i, line[:200].decode("utf-8", errors="replace") + "...",
                       error=f"record longer than {max_record} bytes (SURROGATE_MAX_RECORD_BYTES raises the limit)")
            continue
        if not line.strip():
            continue
        raw = line.decode("utf-8", errors="replace").rstrip("\n")
        try:
            yield _Row(source, i, raw, record=json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            yield _Row(source, i, raw, error=f"invalid JSON: {e}")


def _zip_rows(path: Path) -> Iterator[_Row]:
    """The .jsonl members of an archive, bounded together: the archive's total uncompressed
    size (as declared, and as read, whatever its headers say) against the file limit."""
    import zlib

    _, max_file = limits()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist()
                     if i.filename.endswith(".jsonl") and not i.filename.startswith("__MACOSX/")
                     and "/._" not in i.filename and not Path(i.filename).name.startswith("._")]
            if not infos:
                raise DataError(str(path), None, None, "the archive holds no .jsonl file")
            declared = sum(i.file_size for i in infos)
            if declared > max_file:
                raise DataError(str(path), None, None, f"{declared} bytes uncompressed, more than the limit of "
                                                       f"{max_file} (SURROGATE_MAX_FILE_BYTES raises it)")
            used = [0]
            for info in infos:
                with zf.open(info) as f:
                    yield from _jsonl_rows(io.BufferedReader(f), f"{path}!{info.filename}", used)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DataError(str(path), None, None, f"not a readable zip archive ({e})") from None


def _table_rows(records: Iterable[dict], source: str, start: int = 1) -> Iterator[_Row]:
    for i, rec in enumerate(records, start=start):
        yield _Row(source, i, json.dumps(rec, default=str), record=_drop_nulls(rec))


def _drop_nulls(rec: dict) -> dict:
    # Columnar formats give every row every column; a null there means "absent".
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in rec.items() if v is not None}


def _parquet_rows(path: Path) -> Iterator[_Row]:
    """Rows of a parquet file, bounded before anything is decoded (its declared uncompressed
    size against the file limit, each row group's against the record limit times its rows),
    and read a batch at a time, so --max-participants stops early."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    max_record, max_file = limits()
    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        size = sum(meta.row_group(k).total_byte_size for k in range(meta.num_row_groups))
        if size > max_file:
            raise DataError(str(path), None, None, f"{size} bytes uncompressed, more than the limit of {max_file} "
                                                   "(SURROGATE_MAX_FILE_BYTES raises it)")
        line = decoded = 0
        for batch in pf.iter_batches(batch_size=64):
            # Decoded sizes, which dictionary-encoded repeats can make far larger than declared.
            decoded += batch.nbytes
            if decoded > max_file:
                raise DataError(str(path), line + 1, None, f"more than {max_file} bytes uncompressed "
                                                           "(SURROGATE_MAX_FILE_BYTES raises the limit)")
            if batch.nbytes > max_record * max(batch.num_rows, 1):
                raise DataError(str(path), line + 1, None, f"rows larger than {max_record} bytes "
                                                           "(SURROGATE_MAX_RECORD_BYTES raises the limit)")
            rows = batch.to_pylist()
            yield from _table_rows(rows, str(path), start=line + 1)
            line += len(rows)
    except (OSError, pa.ArrowException) as e:
        raise DataError(str(path), None, None, f"not a readable parquet file ({e})") from None


def _file_rows(path: Path) -> Iterator[_Row]:
    name = path.name
    if name.endswith(".zip"):
        yield from _zip_rows(path)
    elif name.endswith(".parquet"):
        yield from _parquet_rows(path)
    else:
        with open(path, "rb") as f:
            yield from _jsonl_rows(f, str(path))


def source_records(path: Path) -> Iterator[tuple[str, int, str]]:
    """(source, line, the record as written) for every record of a data file, read by the
    loader's own reader (so `study/prompts.jsonl.zip!prompts.jsonl` sources match)."""
    for row in _file_rows(path):
        yield row.source, row.line, row.raw


def study_of(path: Path) -> str:
    """`<study>/prompts.jsonl[.zip]` names the study by its folder; other files by their stem."""
    stem = path.name
    for suffix in DATA_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return path.resolve().parent.name if stem == "prompts" else stem


def _data_file(folder: Path) -> Path | None:
    for suffix in DATA_SUFFIXES:
        candidate = folder / f"prompts{suffix}"
        if candidate.exists():
            return candidate
    return None


def discover(path: Path) -> list[tuple[str, Path]]:
    """(study, file) pairs for a file, a study folder, or a Psych-201-style tree."""
    if path.is_file():
        if not path.name.endswith(DATA_SUFFIXES):
            raise DataError(str(path), None, None,
                            f"unsupported file type; expected one of {', '.join(DATA_SUFFIXES)}")
        return [(study_of(path), path)]
    own = _data_file(path)
    if own is not None:
        return [(path.resolve().name, own)]
    found = [(d.name, f) for d in sorted(path.iterdir()) if d.is_dir() and (f := _data_file(d))]
    if not found:
        raise DataError(str(path), None, None,
                        "no prompts.jsonl, prompts.jsonl.zip or prompts.parquet here or in its "
                        "subfolders")
    return found


def _collect(
    groups: Iterable[tuple[str | None, Iterable[_Row]]],
    *,
    skip_invalid: bool,
    max_participants: int | None,
    studies: set[str] | None,
) -> Dataset:
    """Validate rows; `study=None` derives the study from each row's experiment."""
    participants: list[Participant] = []
    invalid: list[InvalidRecord] = []
    seen: dict[tuple[str, str, str], str] = {}
    per_study: dict[str, int] = {}
    for study, rows in groups:
        for row in rows:
            row_study = study or _study_from_experiment(row.record)
            if studies is not None and row_study not in studies:
                continue
            if max_participants is not None and per_study.get(row_study, 0) >= max_participants:
                if study is not None:
                    break  # file order: nothing more is needed from this file
                continue
            try:
                if row.error is not None:
                    raise DataError(row.source, row.line, None, row.error)
                p = participant_from_record(row.record, study=row_study, source=row.source,
                                            line=row.line)
                if p.key in seen:
                    raise DataError(row.source, row.line, p.participant,
                                    f"duplicate participant in experiment {p.experiment!r} "
                                    f"(first at {seen[p.key]})")
            except DataError as e:
                if not skip_invalid:
                    raise
                invalid.append(InvalidRecord(source=e.source, line=e.line, participant=e.participant,
                                             reason=e.reason, record=row.raw))
                continue
            seen[p.key] = f"{row.source}:{row.line}"
            participants.append(p)
            per_study[row_study] = per_study.get(row_study, 0) + 1
    return Dataset(participants=participants, invalid=invalid)


def _study_from_experiment(record: Any) -> str:
    """The row's `study` column where it has one (Hugging Face copies of Psych-201), else the
    first path segment of its experiment."""
    study = record.get("study") if isinstance(record, dict) else None
    if isinstance(study, str) and study.strip():
        return study.strip()
    exp = record.get("experiment") if isinstance(record, dict) else None
    if isinstance(exp, str) and exp.strip("/"):
        return exp.strip("/").split("/")[0]
    return "unknown"


def load(
    source: str | Path,
    *,
    skip_invalid: bool = False,
    max_participants: int | None = None,
    studies: Iterable[str] | None = None,
    split: str = "train",
) -> Dataset:
    """Load Psych-201 participants.

    `source`: a prompts.jsonl / .jsonl.zip / .parquet file; a study folder holding one; a
    folder of study folders (the Psych-201 repository layout); or a Hugging Face dataset id
    (`owner/name` or `hf:owner/name[@revision]`, needs the `hf` extra). `max_participants`
    applies per study, in file order. Bad records raise DataError unless `skip_invalid`, in
    which case they are returned in `Dataset.invalid`.
    """
    wanted = set(studies) if studies is not None else None
    path = Path(source)
    if not path.exists():
        text = str(source)
        if text.startswith("hf:") or (_HF_ID.match(text) and not looks_local(text)):
            return load_hf(text.removeprefix("hf:"), split=split, skip_invalid=skip_invalid,
                           max_participants=max_participants, studies=wanted)
        raise DataError(text, None, None, "no such file or folder")
    pairs = [(s, f) for s, f in discover(path) if wanted is None or s in wanted]
    ds = _collect(((s, _file_rows(f)) for s, f in pairs), skip_invalid=skip_invalid,
                  max_participants=max_participants, studies=wanted)
    ds.sources = [str(f) for _, f in pairs]
    return ds


def load_hf(
    name: str,
    *,
    split: str = "train",
    skip_invalid: bool = False,
    max_participants: int | None = None,
    studies: set[str] | None = None,
) -> Dataset:
    """A Hugging Face dataset id, `owner/name[@revision]`. Needs `pip install surrogate[hf]`."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("Loading a Hugging Face dataset needs the 'datasets' package: "
                          "pip install 'surrogate[hf]'") from None
    name, _, revision = name.partition("@")
    hf = datasets.load_dataset(name, split=split, revision=revision or None)
    return from_hf_dataset(hf, source=f"hf:{name}", skip_invalid=skip_invalid,
                           max_participants=max_participants, studies=studies)


def from_hf_dataset(hf: Any, *, source: str, skip_invalid: bool = False,
                    max_participants: int | None = None, studies: set[str] | None = None,
                    study: str | None = None) -> Dataset:
    """Participants from an in-memory `datasets.Dataset` (a hub id or a local parquet/jsonl).

    The study comes from `study` if given, else from each row's `study` column, else from its
    experiment (its first path segment, as Psych-201's experiment fields start with the study
    name). Bookkeeping columns (`study`, `participant_reindexed`) are never metadata.
    """
    ds = _collect([(study, _table_rows(iter(hf), source))], skip_invalid=skip_invalid,
                  max_participants=max_participants, studies=studies)
    ds.sources = [source]
    return ds
