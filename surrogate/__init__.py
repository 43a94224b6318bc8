"""surrogate: test language models as stand-ins for human participants.

The Python API mirrors the command line, one function per command and the same argument
names: `run` (and `default_job`, `surrogate run` with no options), `compare_personas`, `analyze`, `plan`, `report`, `merge`, `simulate`,
`import_table` (`surrogate import`), `compare_agents`, `finetune`, `build_organisms`, `status`,
`read_grid` (`surrogate grid list`) and `grid_script`; plus
`load` (data) and `read_responses` / `read_choices` (result tables). They are imported on
first use, so `import surrogate` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._imports import lazy_exports

from ._version import __version__

_API = {
    "run": ".jobs.run", "default_job": ".jobs.default", "compare_personas": ".jobs.compare_personas", "analyze": ".jobs.analyze",
    "plan": ".jobs.plan", "report": ".jobs.report", "merge": ".jobs.merge", "simulate": ".jobs.simulate",
    "import_table": ".jobs.import_table", "compare_agents": ".jobs.compare_agents", "finetune": ".jobs.finetune",
    "build_organisms": ".jobs.organisms", "status": ".jobs.status", "read_grid": ".jobs.grid",
    "grid_script": ".jobs.grid", "load": ".data", "read_responses": ".store", "read_choices": ".store",
}

if TYPE_CHECKING:
    from .data import load
    from .jobs.analyze import analyze
    from .jobs.compare_agents import compare_agents
    from .jobs.compare_personas import compare_personas
    from .jobs.default import default_job
    from .jobs.finetune import finetune
    from .jobs.grid import grid_script, read_grid
    from .jobs.import_table import import_table
    from .jobs.merge import merge
    from .jobs.organisms import build_organisms
    from .jobs.plan import plan
    from .jobs.report import report
    from .jobs.run import run
    from .jobs.simulate import simulate
    from .jobs.status import status
    from .store import read_choices, read_responses

__all__ = ["__version__", *_API]
__getattr__, __dir__ = lazy_exports(__name__, _API)
