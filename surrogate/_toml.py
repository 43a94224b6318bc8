"""Reading a TOML file the user gave: a missing file or bad TOML is one line naming the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path, *, missing: str | None = None) -> dict[str, Any]:
    """The parsed file. Bad TOML: a ValueError naming the file and where; a missing file: a
    FileNotFoundError with `missing` as its text (by default, the system's own)."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        if missing is None:
            raise
        raise FileNotFoundError(missing) from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
