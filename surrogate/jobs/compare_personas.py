"""`surrogate compare-personas`: score what the persona decomposition needs (resumable), then
decompose each model's matched strategies against their own shuffled controls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from typing_extensions import Unpack

from ..analysis import PersonaDecomposition, Sesoi, StrategyComparison
from ..options import AnalysisArgs, AnalysisOptions, OptionError, ScoringArgs, ScoringOptions, split_options
from ..personas import control_renders, matched_control
from ..store import atomic_write_bytes
from ._decompositions import (controls_of, decompose_all, default_strategies, derangement_spread, persona_effects_table,
                              primary, split_names, write_comparisons, write_csv)


@dataclass
class PersonaComparison:
    """What compare-personas produced: the run, one decomposition per model (and matched
    strategy and derangement), and the strategy comparisons where several were matched."""

    out: Path
    decompositions: dict[str, PersonaDecomposition]
    table: pd.DataFrame
    comparisons: dict[str, StrategyComparison] = field(default_factory=dict)

    def summary(self) -> str:
        return "\n\n".join([*(d.summary() for d in primary(self.decompositions).values()),
                             *derangement_spread(self.decompositions),
                             *(c.summary() for c in self.comparisons.values())])


class PersonaArgs(ScoringArgs, AnalysisArgs, total=False):
    """compare_personas' options: the scoring options and the analysis options."""


def compare_personas(
    models: Sequence[Any] = (),
    data: str | Path | None = None,
    out: str | Path = "runs/personas",
    *,
    persona: str | Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
    **options: Unpack[PersonaArgs],
) -> PersonaComparison:
    """Run what the decomposition needs (resumable), then write persona_effects.csv (and, with
    several matched strategies, strategy_ranking.csv and strategy_differences.csv). `persona`:
    the strategies to score (default: none, each matched strategy with its own shuffled
    control, and for interview population, placebo and shuffled-placebo). `options`: any of
    ScoringOptions' and AnalysisOptions' fields (surrogate.options)."""
    scoring, analysis = split_options(dict(options), ScoringOptions, AnalysisOptions)
    return compare_personas_with(scoring, analysis, models, data, out, persona=persona, progress=progress, log=log)


def compare_personas_with(scoring: ScoringOptions, analysis: AnalysisOptions, models: Sequence[Any] = (),
                          data: str | Path | None = None, out: str | Path = "runs/personas", *,
                          persona: str | Sequence[str] | None = None, progress=None,
                          log: Callable[[str], None] = lambda s: None) -> PersonaComparison:
    """`compare_personas` with its options already built."""
    from .run import run_with

    matched_list = split_names(analysis.matched or "interview")
    control, by, weight = analysis.control, analysis.by, analysis.weight
    sesoi = Sesoi.parse(analysis.sesoi)
    strategies = persona
    if control is not None and len(matched_list) > 1:
        raise OptionError("control", control, "names one control; with several matched strategies each gets its own "
                                              "(shuffled-X), so leave control out")
    if control is not None:
        renders = control_renders(control)
        if renders is not None and renders[1] != matched_list[0]:
            raise OptionError("control", control, f"renders {renders[1]!r} personas, so S - M would compare "
                                                  f"{matched_list[0]!r} with another format; its control is "
                                                  f"{matched_control(matched_list[0], renders[0])!r}")
    names = split_names(strategies) if strategies is not None else default_strategies(matched_list)
    if strategies is None and control is not None:
        names = list(dict.fromkeys([*names, control]))
    needed = {"none", *matched_list, *((control,) if control else (matched_control(m) for m in matched_list))}
    missing = needed - set(names)
    if missing:
        raise OptionError("persona", ",".join(names), f"must include {sorted(missing)} for the decomposition")
    if not models and data is None:  # as the options say: the organisms on the shipped sample
        from ..organisms import DEFAULT_MODELS, default_data

        models, data = list(DEFAULT_MODELS), default_data()
    result = run_with(scoring, models, data, names, out, progress=progress, log=log)
    scored = result.responses
    controls = {c for n in names for c in controls_of(set(scored["persona"].unique()), n)}
    responses = scored[scored["persona"].isin(set(names) | controls)]
    decompositions, comparisons, notes = decompose_all(responses, matched_list, control, by=by, sesoi=sesoi,
                                                        weight=weight)
    for n in notes:
        log(n)
    comparison = PersonaComparison(out=Path(out), decompositions=decompositions,
                                   table=persona_effects_table(decompositions), comparisons=comparisons)
    write_csv(comparison.out / "persona_effects.csv", comparison.table)
    write_comparisons(comparison.out, comparisons)
    atomic_write_bytes(comparison.out / "persona_summary.txt", (comparison.summary() + "\n").encode())
    return comparison
