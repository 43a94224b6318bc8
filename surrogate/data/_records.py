"""Participant records: one Psych-201 line, validated and typed."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from ._transcript import MarkerError, _fix_markers, parse_spans

RESERVED = ("text", "experiment", "participant")
# Columns of Hugging Face copies of Psych-201 that are bookkeeping, not a participant's
# metadata: never rendered into a persona.
BOOKKEEPING = frozenset({"study", "participant_reindexed", "__index_level_0__", "Unnamed: 0"})
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

Scalar = str | int | float | bool


class DataError(ValueError):
    """Bad input, with where it is: file, line (or row) and participant."""

    def __init__(self, source: str, line: int | None, participant: str | None, reason: str):
        self.source, self.line, self.participant, self.reason = source, line, participant, reason
        where = source if line is None else f"{source}:{line}"
        who = f" (participant {participant})" if participant is not None else ""
        super().__init__(f"{where}{who}: {reason}")


class SourceRef(BaseModel):
    """Where a record came from: a file (or dataset id) and its 1-based line or row."""

    model_config = ConfigDict(frozen=True)
    file: str
    line: int


class Participant(BaseModel):
    """One participant's session.

    `metadata` holds every field besides text/experiment/participant with missing values
    ("N/A", empty, null) removed and numeric strings parsed; `metadata_text` holds the same
    fields as written (str of the JSON value), which is what persona prompts show.
    """

    model_config = ConfigDict(frozen=True)

    study: str
    experiment: str
    participant: str
    text: str
    metadata: dict[str, Any]
    metadata_text: dict[str, str]
    source: SourceRef

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.study, self.experiment, self.participant)


def is_missing(value: Any) -> bool:
    """The paper's rule (None, "N/A", "") plus NaN, which JSON readers can produce."""
    if value is None or value in ("N/A", ""):
        return True
    return isinstance(value, float) and math.isnan(value)


def parse_value(value: Any) -> Any:
    """Numeric strings become numbers; lists are parsed element-wise."""
    if isinstance(value, list):
        return [parse_value(v) for v in value]
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        s = value.strip()
        if re.fullmatch(r"[+-]?\d+", s):
            return int(s)
        return float(s)
    return value


def _check_value(key: str, value: Any) -> None:
    ok = (str, int, float, bool)
    if isinstance(value, list):
        if not all(v is None or isinstance(v, ok) for v in value):
            raise TypeError(f"field {key!r}: a list may hold only numbers, strings or null")
    elif not isinstance(value, ok):
        raise TypeError(f"field {key!r} has type {type(value).__name__}; expected a number, "
                        "string, or list of them")


def participant_from_record(record: Any, *, study: str, source: str, line: int) -> Participant:
    """Validate one JSON record; raise DataError naming the file, line and participant."""
    if not isinstance(record, dict):
        raise DataError(source, line, None, f"expected a JSON object, got {type(record).__name__}")
    pid = record.get("participant")
    who = None if pid is None else str(pid)
    def fail(reason: str) -> DataError:
        return DataError(source, line, who, reason)

    if pid is None or (isinstance(pid, str) and not pid.strip()):
        raise fail("missing 'participant'")
    if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        raise fail(f"'participant' must be a string or integer, got {type(pid).__name__}")
    text = record.get("text")
    if text is None:
        raise fail("missing 'text'")
    if not isinstance(text, str):
        raise fail(f"'text' must be a string, got {type(text).__name__}")
    experiment = record.get("experiment", study)
    if not isinstance(experiment, str) or not experiment:
        raise fail(f"'experiment' must be a non-empty string, got {experiment!r}")
    for key, value in record.items():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError as e:
            raise fail(f"a field name holds a lone surrogate ({key[e.start]!r} at character {e.start}), which is not "
                       "Unicode text; the file was written by a broken encoder") from None
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise fail(f"field {key!r} holds a lone surrogate ({item[e.start]!r} at character {e.start}), "
                               "which is not Unicode text; the file was written by a broken encoder") from None
    try:
        parse_spans(_fix_markers(text))  # a transcript without responses is valid, if useless
    except MarkerError as e:
        raise fail(str(e)) from None

    metadata: dict[str, Any] = {}
    metadata_text: dict[str, str] = {}
    for key, value in record.items():
        if key in RESERVED or key in BOOKKEEPING or is_missing(value):
            continue
        try:
            _check_value(key, value)
        except TypeError as e:
            raise fail(str(e)) from None
        metadata[key] = parse_value(value)
        metadata_text[key] = str(value)
    return Participant(
        study=study,
        experiment=experiment,
        participant=str(pid),
        text=text,
        metadata=metadata,
        metadata_text=metadata_text,
        source=SourceRef(file=source, line=line),
    )
