"""`surrogate plan`: design questions answered from pilot runs (surrogate.analysis.design_plan
on the pilot folders' tables)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from typing_extensions import Unpack

from ..analysis import Plan
from ..options import AnalysisArgs, AnalysisOptions, OptionError, split_options
from ..store import atomic_write_bytes
from ._decompositions import write_csv
from .analyze import read_runs


def plan(run_dirs: Sequence[str | Path], *, model: str | None = None, effect: str = "1%", d: float = 0.2,
         power: float = 0.8, pairs: Sequence[tuple[str, str]] = (), out: str | Path | None = None,
         usable_share: float | None = None, **options: Unpack[AnalysisArgs]) -> Plan:
    """`surrogate plan`: design questions answered from pilot runs (see
    surrogate.analysis.design_plan); `options`: `by`, `matched`, `sesoi` (as `analyze`'s)."""
    from ..analysis import design_plan

    (opts,) = split_options(dict(options), AnalysisOptions)
    responses, _ = read_runs(run_dirs, choices=False, separate_labels=opts.separate_labels)
    if model is None and pairs == () and responses["model"].nunique() > 1:
        raise OptionError("model", None, f"the pilot holds several models ({sorted(responses['model'].unique())}); "
                                         "choose one")
    result = design_plan(responses, model=model, matched=opts.matched or "interview", effect=effect, d=d, power=power,
                         sesoi=opts.sesoi, pairs=pairs, by=opts.by, usable_share=usable_share)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "plan.csv", result.table())
        atomic_write_bytes(out / "plan.txt", (result.summary() + "\n").encode())
    return result
