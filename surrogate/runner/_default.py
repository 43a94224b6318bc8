"""The built-in default job's second half: what `surrogate run` with no options shows after
scoring (misalignment between the organisms, the persona decomposition, the report). The
same for the CLI and `surrogate.run()`."""

from __future__ import annotations

from collections.abc import Callable

from ..analysis import ModelPair
from ._job import RunResult

DEFAULT_PAIRS = [ModelPair(base="organism-base", post_trained="organism-post",
                           post_training="normative answers and self-distillation (stand-in)")]
PAIRS_FILE = "pairs.toml"


def write_pairs(folder, pairs: list[ModelPair]) -> None:
    """The pairs a run's analysis used, beside its tables, so `analyze` and `report` on the
    folder read them without --pairs."""
    from .._cache import atomic_write_bytes

    def value(v):
        return f'"{v}"' if isinstance(v, str) else str(v)

    lines = []
    for p in pairs:
        lines.append("[[pairs]]")
        lines += [f"{k} = {value(v)}" for k, v in p.model_dump().items() if v not in ("", None)]
        lines.append("")
    atomic_write_bytes(folder / PAIRS_FILE, "\n".join(lines).encode())


def finish_default_job(result: RunResult, *, log: Callable[[str], None] = lambda s: None) -> None:
    """Analyse the default run, write its pairs and its report (result.analysis, result.report)."""
    from ._analysis import analyze
    from ._report import report

    pairs = [p for p in DEFAULT_PAIRS if {p.base, p.post_trained} <= set(result.responses["model"].unique())]
    write_pairs(result.out, pairs)
    result.analysis = analyze([result.out], pairs=pairs)
    result.report = report([result.out], result.out / "report", analysis=result.analysis,
                           title="surrogate default job: model organisms", log=log).html
