"""`surrogate plan`: design questions answered from pilot runs (surrogate.analysis.design_plan
on the pilot folders' tables)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..analysis import DEFAULT_SESOI, Sesoi
from ..store import atomic_write_bytes
from ._decompositions import write_csv
from .analyze import read_runs


def plan(run_dirs: Sequence[str | Path], *, model: str | None = None, effect: str = "1%", d: float = 0.2,
         power: float = 0.8, sesoi: Sesoi | str | float = DEFAULT_SESOI, matched: str = "interview",
         pairs: Sequence[tuple[str, str]] = (), by: str = "study", out: str | Path | None = None,
         usable_share: float | None = None):
    """`surrogate plan`: design questions answered from pilot runs (see surrogate.analysis.plan)."""
    from ..analysis import design_plan

    responses, _ = read_runs(run_dirs, choices=False)
    if model is None and pairs == () and responses["model"].nunique() > 1:
        raise ValueError(f"the pilot holds several models ({sorted(responses['model'].unique())}); choose one with "
                         "--model")
    result = design_plan(responses, model=model, matched=matched, effect=effect, d=d, power=power, sesoi=sesoi,
                       pairs=pairs, by=by, usable_share=usable_share)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "plan.csv", result.table())
        atomic_write_bytes(out / "plan.txt", (result.summary() + "\n").encode())
    return result
