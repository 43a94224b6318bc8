"""Names are data, never paths: what a name from a file or an option may become on disk.

An experiment's name names the study folder `simulate` and `import` write, so it must be a
plain name (checked where it is parsed). Model labels and study names are free text (hub ids
carry a slash) and become file names only through `slug`: a bounded, safe and distinct
spelling of each.
"""

from __future__ import annotations

import hashlib
import re

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def check_name(name: str, what: str) -> str:
    """A name that will be a folder's: letters, digits, `.`, `_`, `-`, at most 80, not
    starting with `.` or `-` (so never `..`, an absolute path or a hidden file)."""
    if not isinstance(name, str) or not _PLAIN.fullmatch(name):
        raise ValueError(f"{what} {name!r}: a name that becomes a folder may hold only letters, digits, '.', '_' and "
                         "'-' (at most 80, starting with a letter or digit)")
    return name


def slug(text: str, limit: int = 60) -> str:
    """A file-name spelling of any text: unchanged when it is already plain and short;
    otherwise its safe characters (cut to `limit`) and a digest of the whole text, so that
    two texts never share a slug and none is longer than limit + 9."""
    text = str(text)
    if _PLAIN.fullmatch(text) and len(text) <= limit:
        return text
    safe = _UNSAFE.sub("_", text).strip("._-")[:limit] or "x"
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
