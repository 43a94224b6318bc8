"""surrogate: test language models as stand-ins for human participants.

The Python API mirrors the CLI: `surrogate.run`, `surrogate.compare_personas`,
`surrogate.analyze`, `surrogate.plan`, `surrogate.simulate`, `surrogate.compare_agents`, `surrogate.import_table` (`surrogate import`), `surrogate.report`, `surrogate.merge`,
`surrogate.finetune`, `surrogate.build_organisms`, plus `surrogate.load` for data. Submodules are
imported on first use, so `import surrogate` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_API = {
    "run": ("surrogate.runner", "run"),
    "compare_personas": ("surrogate.runner", "compare_personas"),
    "analyze": ("surrogate.runner", "analyze"),
    "plan": ("surrogate.runner", "plan"),
    "simulate": ("surrogate.runner", "simulate"),
    "compare_agents": ("surrogate.runner", "compare_agents"),
    "import_table": ("surrogate.runner", "import_table"),
    "load": ("surrogate.data", "load"),
    "read_responses": ("surrogate.runner", "read_responses"),
    "report": ("surrogate.runner", "report"),
    "merge": ("surrogate.runner", "merge"),
    "finetune": ("surrogate.finetune", "finetune"),
    "build_organisms": ("surrogate.organisms", "build_organisms"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'surrogate' has no attribute {name!r}")
