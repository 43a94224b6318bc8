"""Models that ship inside the package: the organisms, trained by surrogate on real people.

`organism-base` and `organism-post` work anywhere a model path goes (unless a folder of that
name exists). Their card (README.md beside the weights) says what they were trained on, how,
and what they measure on held-out people and experiments.
"""

from __future__ import annotations

from pathlib import Path

ORGANISMS = ("organism-base", "organism-post")


def organisms_dir() -> Path:
    return Path(__file__).parent / "organisms"


def resolve_named(path: str) -> str:
    """The shipped folder for an organism name; any other path unchanged."""
    if path in ORGANISMS and not Path(path).exists():
        folder = organisms_dir() / path
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{path}: the shipped organism is missing from {folder}; "
                                    "rebuild it with `surrogate organisms build`")
        return str(folder)
    return path
