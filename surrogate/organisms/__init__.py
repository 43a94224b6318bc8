"""Model organisms: small models surrogate trains on real people (and the random-weight demo
models), shipped with the package, with cards; their build; the names that find them.

`organism-base`, `organism-post`, `demo-base`, `demo-chat` work anywhere a model path goes
(`resolve_model`). `surrogate organisms build` rebuilds the organisms reproducibly. The build
is imported on first use, so `import surrogate.organisms` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._defaults import DEFAULT_MODELS, DEFAULT_PERSONAS, ORGANISM_NOTICE, default_data
from ._names import DEMO_MODELS, ORGANISMS, is_builtin, organisms_dir, resolve_model, sample_dir, trained_participants

_LAZY = {
    "OrganismBuild": "._build", "OrganismRecipe": "._build", "build_organisms": "._build",
    "evaluate_organisms": "._build", "read_json_gz": "._build", "write_sample_data": "._build",
    "demo_data": "._demo", "demo_model_folder": "._demo", "write_demo_data": "._demo", "NOTICE": "._demo",
}

__all__ = ["DEFAULT_MODELS", "DEFAULT_PERSONAS", "DEMO_MODELS", "ORGANISMS", "ORGANISM_NOTICE", "default_data",
           "is_builtin", "organisms_dir", "resolve_model", "sample_dir", "trained_participants", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'surrogate.organisms' has no attribute {name!r}")
