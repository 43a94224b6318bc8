"""Built-in model names: the shipped organisms and the random-weight demo models.

`organism-*` name the models shipped in `surrogate/organisms/models` (trained by surrogate on
real people; each has a card, README.md beside its weights); `demo-base` / `demo-chat` name
random-weight models built locally on first use (tests, dry runs). Every command resolves
them through `resolve_model`, so a name works wherever a model path goes, unless a folder of
that name exists. Results are keyed by the name, not by where the package is installed.

A model map does the same for any name: `SURROGATE_MODEL_MAP` names a TOML file of
`"hub/id" = "/folder"` lines (weights downloaded once to a cluster's shared disk, or the tests'
stand-in grid), and a hub id in it loads from its folder while results keep the hub id.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._toml import read_toml

ORGANISMS = ("organism-base", "organism-post-light", "organism-post", "organism-control")
DEMO_MODELS = ("demo-base", "demo-chat")


def organisms_dir() -> Path:
    """Where the shipped organisms live (inside the package)."""
    return Path(__file__).parent / "models"


def sample_dir() -> Path:
    """The shipped sample of real Psych-201 transcripts (participants the organisms never saw)."""
    return Path(__file__).parent / "sample"


def is_builtin(name: str) -> bool:
    return name in ORGANISMS or name in DEMO_MODELS


MODEL_MAP = "SURROGATE_MODEL_MAP"


def model_map() -> dict[str, str]:
    """Hub id -> folder, from the TOML file SURROGATE_MODEL_MAP names (none: empty)."""
    where = os.environ.get(MODEL_MAP)
    if not where:
        return {}
    path = Path(where)
    data = read_toml(path, missing=f"{MODEL_MAP}={where}: no such file")
    entries = data.get("models", data)
    bad = [k for k, v in entries.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"{path}: expected \"hub/id\" = \"folder\" lines; {bad[0]!r} has no folder")
    # relative folders are relative to the map file, so a map travels with its folders
    return {k: str((path.parent / v).resolve()) if not Path(v).is_absolute() else v for k, v in entries.items()}


def resolve_model(path: str) -> str:
    """The folder of a built-in name (a demo model is built on first use) or of a hub id in the
    model map; any other path or hub id unchanged. A folder that exists under the name wins."""
    if Path(path).exists():
        return path
    mapped = model_map().get(path)
    if mapped is not None:
        return mapped
    if not is_builtin(path):
        return path
    if path in ORGANISMS:
        folder = organisms_dir() / path
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{path}: the shipped organism is missing from {folder}; rebuild it with "
                                    "`surrogate organisms build`")
        return str(folder)
    from ..testing.demo import demo_model_folder

    return str(demo_model_folder(path))


def resolved(spec):
    """A ModelSpec whose path is a built-in name, with the folder to load it from
    (`location`); others unchanged. Jobs do this before a model is loaded."""
    where = resolve_model(spec.path)
    return spec if where == spec.path else spec.model_copy(update={"location": where})


def trained_participants(path: str, adapter: str | None = None) -> set[tuple[str, str, str]]:
    """(study, experiment, participant) of everyone a model was trained on, where that is
    known: a built-in organism (its split.json.gz) or an adapter folder with a split.json."""
    import gzip
    import json

    keys: set[tuple[str, str, str]] = set()
    if path in ORGANISMS and not Path(path).exists():
        split = organisms_dir() / "split.json.gz"
        if split.exists():
            data = json.loads(gzip.decompress(split.read_bytes()))
            keys |= {tuple(k) for k in data.get("train", [])}
    if adapter and (Path(adapter) / "split.json").exists():
        data = json.loads((Path(adapter) / "split.json").read_text())
        keys |= {tuple(k) for k in data.get("train", [])}
    return keys
