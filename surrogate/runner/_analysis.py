"""`surrogate compare-personas` and `surrogate analyze`: estimates from run folders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..analysis import (
    DEFAULT_SESOI,
    ChoicePrediction,
    Misalignment,
    ModelPair,
    PersonaDecomposition,
    choice_prediction,
    decompose_personas,
    paper_accuracy,
    metadata_benefit,
    post_training_misalignment,
    read_categories,
    read_pairs,
)
from ._store import atomic_write_bytes, read_choices, read_responses

PERSONA_STRATEGIES = "none,interview,shuffled,population,placebo"


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


@dataclass
class PersonaComparison:
    """What compare-personas produced: the run, and one decomposition per model."""

    out: Path
    decompositions: dict[str, PersonaDecomposition]
    table: pd.DataFrame

    def summary(self) -> str:
        return "\n\n".join([*(d.summary() for d in self.decompositions.values()),
                             *derangement_spread(self.decompositions)])


def persona_effects_table(decompositions: dict[str, PersonaDecomposition]) -> pd.DataFrame:
    """One table over models (and over derangements: the `control` column)."""
    frames = [d.to_frame().assign(model=d.model, control=d.control) for d in decompositions.values()]
    table = pd.concat(frames, ignore_index=True)
    return table[["model", *[c for c in table.columns if c != "model"]]]


def _controls(have: set[str], control: str) -> list[str]:
    """The control and its extra derangements (`shuffled`, `shuffled.2`, ...), in order."""
    extra = sorted((c for c in have if c.startswith(control + ".") and c[len(control) + 1:].isdigit()),
                   key=lambda c: int(c[len(control) + 1:]))
    return ([control] if control in have else []) + extra


def decompose_over_derangements(responses: pd.DataFrame, model: str, controls: list[str], **kw
                                ) -> dict[str, PersonaDecomposition]:
    """One decomposition per control; keys `model` for the first, `model [control]` after."""
    out = {}
    for i, c in enumerate(controls):
        out[model if i == 0 else f"{model} [{c}]"] = decompose_personas(responses, model=model, control=c, **kw)
    return out


def derangement_spread(decompositions: dict[str, PersonaDecomposition]) -> list[str]:
    """A line per model with several derangements: the pooled individual component over them."""
    by_model: dict[str, list[PersonaDecomposition]] = {}
    for d in decompositions.values():
        by_model.setdefault(d.model, []).append(d)
    lines = []
    for model, ds in by_model.items():
        values = [d.pooled.individual_component.value for d in ds if d.pooled_rows]
        if len(values) > 1:
            lines.append(f"{model}: individual component over {len(values)} derangements: mean "
                         f"{sum(values) / len(values):+.4f}, range [{min(values):+.4f}, {max(values):+.4f}]")
    return lines


def compare_personas(
    models: Sequence[Any],
    data: str | Path | None,
    out: str | Path,
    *,
    strategies: str = PERSONA_STRATEGIES,
    matched: str = "interview",
    control: str = "shuffled",
    by: str = "study",
    sesoi: float = DEFAULT_SESOI,
    log=lambda s: None,
    **run_options: Any,
) -> PersonaComparison:
    """Run what the decomposition needs (resumable), then write persona_effects.csv."""
    from . import run

    names = [s.strip() for s in strategies.split(",") if s.strip()]
    missing = {"none", matched, control} - set(names)
    if missing:
        raise ValueError(f"--strategies must include {sorted(missing)} for the decomposition")
    result = run(models, data, names, out, log=log, **run_options)
    scored = result.responses
    responses = scored[scored["persona"].isin(names + _controls(set(scored["persona"]), control))]
    decompositions = {}
    for m in responses["model"].unique():
        have = set(responses.loc[responses["model"] == m, "persona"])
        decompositions |= decompose_over_derangements(responses, m, _controls(have, control), matched=matched,
                                                      by=by, sesoi=sesoi)
    comparison = PersonaComparison(out=Path(out), decompositions=decompositions,
                                   table=persona_effects_table(decompositions))
    _write_csv(comparison.out / "persona_effects.csv", comparison.table)
    atomic_write_bytes(comparison.out / "persona_summary.txt", (comparison.summary() + "\n").encode())
    return comparison


@dataclass
class Analysis:
    """Everything `analyze` could estimate from the tables it was given."""

    out: Path
    responses: pd.DataFrame = field(default_factory=pd.DataFrame)  # the runs' combined table
    decompositions: dict[str, PersonaDecomposition] = field(default_factory=dict)
    metadata_benefits: dict[str, Any] = field(default_factory=dict)
    misalignment: Misalignment | None = None
    choices: dict[tuple[str, str], ChoicePrediction] = field(default_factory=dict)
    choice_decompositions: dict[str, PersonaDecomposition] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [d.summary() for d in self.decompositions.values()]
        parts += derangement_spread(self.decompositions)
        parts += [f"{m}: {b.summary()}" for m, b in self.metadata_benefits.items()]
        if self.misalignment is not None:
            parts.append(self.misalignment.summary())
        parts += [c.summary() for c in self.choices.values()]
        parts += ["Choices: " + d.summary() for d in self.choice_decompositions.values()]
        parts += [f"note: {n}" for n in self.notes]
        return "\n\n".join(parts) if parts else "nothing to estimate from these tables"


def _combine(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).drop_duplicates(keys, keep="last")


def analyze(
    run_dirs: Sequence[str | Path],
    *,
    pairs: str | Path | Sequence[ModelPair] | None = None,
    categories: str | Path | None = None,
    out: str | Path | None = None,
    by: str = "study",
    control: str = "shuffled",
    sesoi: float = DEFAULT_SESOI,
    n_boot: int = 2000,
    seed: int = 0,
) -> Analysis:
    """Estimate what the run folders support; write CSVs and summary.txt to `out`
    (default: <first run folder>/analysis)."""
    if not run_dirs:
        raise ValueError("give at least one run folder")
    responses = _combine([read_responses(d) for d in run_dirs], ["unit_key", "response_index"])
    choices = _combine([read_choices(d) for d in run_dirs], ["unit_key", "response_index"])
    out = Path(out) if out is not None else Path(run_dirs[0]) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    result = Analysis(out=out, responses=responses)
    personas = set(responses["persona"]) if not responses.empty else set()

    for model in sorted(responses["model"].unique()) if not responses.empty else []:
        have = set(responses.loc[responses["model"] == model, "persona"])
        if {"none", "interview", control} <= have:
            result.decompositions |= decompose_over_derangements(
                responses, model, _controls(have, control), by=by, sesoi=sesoi)
        elif {"none", "interview"} <= have:
            # Never fall back to another control silently: they estimate different things.
            result.notes.append(f"{model}: no {control!r} rows, so no persona decomposition"
                                + (" (population rows exist: pass --control population, whose "
                                   "individual component includes persona completeness)"
                                   if "population" in have and control != "population" else ""))
        if {"none", "interview"} <= have:
            result.metadata_benefits[model] = metadata_benefit(responses, model=model, by=by)
    if result.decompositions:
        _write_csv(out / "persona_effects.csv", persona_effects_table(result.decompositions))
    elif personas and not result.notes:
        result.notes.append(f"persona decomposition needs none, interview and {control} rows for a "
                            f"model; found personas {sorted(personas)}")
    if result.metadata_benefits:
        _write_csv(out / "metadata_benefit.csv", pd.concat(
            [b.to_frame().assign(model=m) for m, b in result.metadata_benefits.items()], ignore_index=True))

    if pairs is not None:
        cats = read_categories(categories) if categories is not None else None
        wanted = list(pairs) if isinstance(pairs, (list, tuple)) else read_pairs(pairs)
        have = set(responses["model"]) if not responses.empty else set()
        if str(pairs) == "paper":  # the built-in grid: the pairs these runs scored
            wanted = [p for p in wanted if {p.base, p.post_trained} <= have]
            if not wanted:
                result.notes.append("--pairs paper: no pair of the paper's grid has both models in these "
                                    f"runs (models: {sorted(have)})")
        if wanted:
            result.misalignment = post_training_misalignment(responses, wanted, categories=cats, by=by)
        if result.misalignment is not None:
            _write_csv(out / "misalignment.csv", result.misalignment.to_frame())
            if result.misalignment.trends:
                _write_csv(out / "misalignment_trend.csv", result.misalignment.trend_frame())
        if cats is None:
            result.notes.append("no --categories given: misalignment is not broken down by domain")

    accuracy = paper_accuracy(responses, by=by) if not responses.empty else pd.DataFrame()
    if not accuracy.empty:
        _write_csv(out / "accuracy_paper.csv", accuracy)
    if not choices.empty:
        for (model, persona), _ in choices.groupby(["model", "persona"]):
            result.choices[(model, persona)] = choice_prediction(choices, model=model, persona=persona,
                                                                 by=by, n_boot=n_boot, seed=seed)
        for name in ("fit", "population", "individual", "participants"):
            frames = [c.frames()[name].assign(model=m, persona=p) for (m, p), c in result.choices.items()]
            _write_csv(out / f"choice_{name}.csv", pd.concat(frames, ignore_index=True))
        # Individual tracking of choices, labels randomised or not: the persona decomposition
        # on the choice NLL (matched vs shuffled persona), persona metadata from the responses.
        units = responses.drop_duplicates("unit_key").set_index("unit_key")[["persona_fields", "persona_donor"]]
        choice_nll = choices.drop(columns=[c for c in ("persona_fields", "persona_donor") if c in choices]) \
            .join(units, on="unit_key").assign(nll=lambda f: f["nll_choice"])
        for model in sorted(choice_nll["model"].unique()):
            have = set(choice_nll.loc[choice_nll["model"] == model, "persona"])
            if {"none", "interview", control} <= have:
                result.choice_decompositions |= decompose_over_derangements(
                    choice_nll, model, _controls(have, control), by=by, sesoi=sesoi)
        if result.choice_decompositions:
            _write_csv(out / "choice_persona_effects.csv", persona_effects_table(result.choice_decompositions))
    atomic_write_bytes(out / "summary.txt", (result.summary() + "\n").encode())
    return result
