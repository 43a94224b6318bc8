"""Machine-local helpers: where surrogate keeps what it computes once (demo models, file
digests), and whether a name that does not exist was meant as a local path."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("SURROGATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "surrogate")
    return Path(root)


_LOCAL_SUFFIXES = (".jsonl", ".zip", ".parquet", ".json", ".csv", ".safetensors", ".bin", ".pt", ".toml")


def looks_local(text: str) -> bool:
    """Whether a path-or-hub-id that does not exist was meant as a local path: it starts like
    one (`.`, `/`, `~`), has a file suffix, more than one `/`, or its first segment is a
    folder here (`runs/qwen3` when `runs/` exists). Such a name gets "no such file or folder"
    instead of a hub lookup."""
    text = text.split("@", 1)[0]
    if text.startswith((".", "/", "~")) or text.endswith(_LOCAL_SUFFIXES) or text.count("/") > 1:
        return True
    first = text.split("/", 1)[0]
    return "/" in text and Path(first).is_dir()
