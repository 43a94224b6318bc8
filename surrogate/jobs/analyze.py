"""`surrogate analyze`: what earlier runs support: the persona decomposition (and strategy
comparison), the meta-data benefit, post-training misalignment (with its trends), choice
prediction; from one or more run folders whose labels each name one model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import Unpack
import pandas as pd

from ..analysis import (
    ChoicePrediction,
    Misalignment,
    ModelPair,
    PersonaDecomposition,
    Sesoi,
    StrategyComparison,
    choice_prediction,
    metadata_benefit,
    paper_accuracy,
    post_training_misalignment,
    read_categories,
    read_pairs,
)
from ..options import AnalysisArgs, AnalysisOptions, OptionError, split_options
from ..personas import matched_control
from ..store import IDENTITY, atomic_write_bytes, check_labels, read_choices, read_responses
from ._decompositions import (controls_of, decompose_all, decompose_over_derangements, derangement_spread,
                              persona_effects_table, primary, split_names, write_comparisons, write_csv)


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
    comparisons: dict[str, StrategyComparison] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        # Labelled decompositions (the default job's arms) say which arm they are.
        parts = [(f"[{label}]\n" if ": " in label else "") + d.summary()
                 for label, d in primary(self.decompositions).items()]
        parts += derangement_spread(self.decompositions)
        parts += [c.summary() for c in self.comparisons.values()]
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


def read_runs(run_dirs: Sequence[str | Path], *, separate_labels: bool = False, choices: bool = True
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The responses (and choices) of several run folders as one table. A label that names
    different models in two folders is refused (or, with `separate_labels`, read as
    `label@folder` in every folder but the first); a unit computed two ways in the tables is
    refused."""
    mapping = check_labels(list(run_dirs), separate=separate_labels)

    def relabel(frame: pd.DataFrame, folder) -> pd.DataFrame:
        names = mapping[str(folder)]
        if frame.empty or all(names.get(m, m) == m for m in frame["model"].unique()):
            return frame
        return frame.assign(model=frame["model"].map(lambda m: names.get(m, m)))

    responses = _combine([relabel(read_responses(d), d) for d in run_dirs], ["unit_key", "response_index"])
    if not responses.empty:
        units = responses.drop_duplicates("unit_key")
        twice = units[units.duplicated(IDENTITY, keep=False)]
        if not twice.empty:
            m, pe, _, ex, pa = twice.iloc[0][IDENTITY]
            raise ValueError(f"model {m!r}, persona {pe!r}, participant {pa} ({ex}) was computed two ways in "
                             f"{', '.join(map(str, run_dirs))} (different weights, settings or code under one label): "
                             "these tables cannot be pooled; analyse the folders apart")
    chosen = _combine([relabel(read_choices(d), d) for d in run_dirs], ["unit_key", "response_index"]) \
        if choices else pd.DataFrame()
    return responses, chosen


def analyze(
    run_dirs: Sequence[str | Path],
    *,
    pairs: str | Path | Sequence[ModelPair] | None = None,
    categories: str | Path | None = None,
    out: str | Path | None = None,
    **options: Unpack[AnalysisArgs],
) -> Analysis:
    """Estimate what the run folders support; write CSVs and summary.txt to `out`
    (default: <first run folder>/analysis). `options`: any of AnalysisOptions' fields (`by`,
    `matched`, `control`, `sesoi`, `weight`, `n_boot`, `resample_seed`, `separate_labels`), as
    the command line's options."""
    (opts,) = split_options(dict(options), AnalysisOptions)
    return analyze_with(opts, run_dirs, pairs=pairs, categories=categories, out=out)


def analyze_with(opts: AnalysisOptions, run_dirs: Sequence[str | Path], *,
                 pairs: str | Path | Sequence[ModelPair] | None = None, categories: str | Path | None = None,
                 out: str | Path | None = None) -> Analysis:
    """`analyze` with its options already built."""
    if not run_dirs:
        raise ValueError("give at least one run folder")
    by, matched, control, weight = opts.by, opts.matched, opts.control, opts.weight
    n_boot, seed, separate_labels = opts.n_boot, opts.resample_seed, opts.separate_labels
    responses, choices = read_runs(run_dirs, separate_labels=separate_labels)
    if responses.empty or "persona" not in responses:
        raise ValueError(f"no scored responses in {', '.join(map(str, run_dirs))}; run `surrogate run` first")
    out = Path(out) if out is not None else Path(run_dirs[0]) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    result = Analysis(out=out, responses=responses)
    sesoi = Sesoi.parse(opts.sesoi)
    where = ", ".join(map(str, run_dirs))
    if matched is not None:  # named: each must have been scored (the default, interview, is used where it was)
        absent = [m for m in split_names(matched) if m not in set(responses["persona"])]
        if absent:
            raise OptionError("matched", matched, f"never scored in {where} (personas there: "
                                                  f"{', '.join(sorted(set(responses['persona'])))})")
    _persona_analyses(result, split_names(matched or "interview"), control, by=by, sesoi=sesoi, weight=weight,
                      where=where)
    if pairs is None:
        saved = next((Path(d) / "pairs.toml" for d in run_dirs if (Path(d) / "pairs.toml").is_file()), None)
        if saved is not None:
            pairs = saved
            result.notes.append(f"model pairs read from {saved} (the pairs this run was analysed with)")
    if categories is None:
        saved = next((Path(d) / "categories.csv" for d in run_dirs if (Path(d) / "categories.csv").is_file()), None)
        if saved is not None:
            categories = saved
            result.notes.append(f"study groups read from {saved}")
    if pairs is not None:
        _misalignment_analysis(result, pairs, categories, by=by, seed=seed)
    accuracy = paper_accuracy(responses, by=by)
    if not accuracy.empty:
        write_csv(out / "accuracy_paper.csv", accuracy)
    if not choices.empty:
        _choice_analyses(result, choices, control, by=by, sesoi=sesoi, weight=weight, n_boot=n_boot, seed=seed)
    atomic_write_bytes(out / "summary.txt", (result.summary() + "\n").encode())
    return result


def _persona_analyses(result: Analysis, matched: list[str], control: str | None, *, by: str, sesoi: Sesoi,
                      weight: str, where: str) -> None:
    """The decomposition (and strategy comparison) per model, and the meta-data benefit."""
    responses, out = result.responses, result.out
    personas = set(responses["persona"].unique())
    if control is not None and control not in personas:
        raise OptionError("control", control, f"no rows for this persona in {where} "
                                              f"(personas there: {', '.join(sorted(personas)) or 'none'})")
    result.decompositions, result.comparisons, notes = decompose_all(
        responses, matched, control, by=by, sesoi=sesoi, weight=weight)
    result.notes += notes
    for model in sorted(responses["model"].unique()):
        have = set(responses.loc[responses["model"] == model, "persona"].unique())
        if {"none", "interview"} <= have:
            result.metadata_benefits[model] = metadata_benefit(responses, model=model, by=by)
    if result.decompositions:
        write_csv(out / "persona_effects.csv", persona_effects_table(result.decompositions))
        write_comparisons(out, result.comparisons)
    elif len(personas) > 1 and not result.notes:
        result.notes.append(f"persona decomposition needs none, the matched persona and its control for a "
                            f"model; found personas {sorted(personas)}")
    if result.metadata_benefits:
        write_csv(out / "metadata_benefit.csv", pd.concat(
            [b.to_frame().assign(model=m) for m, b in result.metadata_benefits.items()], ignore_index=True))


def _misalignment_analysis(result: Analysis, pairs, categories, *, by: str, seed: int) -> None:
    responses, out = result.responses, result.out
    cats = read_categories(categories) if categories is not None else None
    wanted = list(pairs) if isinstance(pairs, (list, tuple)) else read_pairs(pairs)
    have = set(responses["model"].unique())
    if str(pairs) == "paper":  # the built-in grid: the pairs these runs scored
        wanted = [p for p in wanted if {p.base, p.post_trained} <= have]
        if not wanted:
            result.notes.append("pairs paper: no pair of the paper's grid has both models in these "
                                f"runs (models: {sorted(have)})")
    if wanted:
        result.misalignment = post_training_misalignment(responses, wanted, categories=cats, by=by, seed=seed)
        write_csv(out / "misalignment.csv", result.misalignment.to_frame())
        if result.misalignment.trends:
            write_csv(out / "misalignment_trend.csv", result.misalignment.trend_frame())
    if cats is None:
        result.notes.append("no categories given: misalignment is not broken down by domain")


def _choice_analyses(result: Analysis, choices: pd.DataFrame, control: str | None, *, by: str, sesoi: Sesoi,
                     weight: str, n_boot: int, seed: int) -> None:
    """Choice prediction per model and persona, and the decomposition on the choice NLL.
    Tables with no rows are not written; the summary says why."""
    responses, out = result.responses, result.out
    for (model, persona), _ in choices.groupby(["model", "persona"]):
        result.choices[(model, persona)] = choice_prediction(choices, model=model, persona=persona,
                                                             by=by, n_boot=n_boot, seed=seed)
    why = {"population": "no experiment's option labels are shared by every participant (labels randomised per "
                         "participant): choice_persona_effects.csv measures individual tracking instead",
           "individual": "no experiment has the same options for every participant and at least 3 of them"}
    for name in ("fit", "population", "individual", "participants"):
        frames = [c.frames()[name].assign(model=m, persona=p) for (m, p), c in result.choices.items()]
        table = pd.concat(frames, ignore_index=True)
        if table.empty:
            result.notes.append(f"choice_{name}.csv not written: {why.get(name, 'no rows')}")
            continue
        write_csv(out / f"choice_{name}.csv", table)
    for (model, persona), c in result.choices.items():
        worse = [f.experiment for f in c.fit if np.isfinite(f.pseudo_r2.value) and f.pseudo_r2.value < 0]
        if worse:
            result.notes.append(f"{model} ({persona}) predicts choices worse than a uniform guess over the options in "
                                f"{', '.join(worse)} (pseudo-R2 < 0: its probabilities are confidently wrong)")
    # Individual tracking of choices, labels randomised or not: the persona decomposition
    # on the choice NLL (matched vs shuffled persona), persona metadata from the responses.
    persona_columns = [c for c in ("persona_fields", "persona_donor", "persona_donor_experiment") if c in responses]
    units = responses.drop_duplicates("unit_key").set_index("unit_key")[persona_columns]
    choice_nll = choices.drop(columns=[c for c in persona_columns if c in choices]) \
        .join(units, on="unit_key").assign(nll=lambda f: f["nll_choice"])
    for model in sorted(choice_nll["model"].unique()):
        have = set(choice_nll.loc[choice_nll["model"] == model, "persona"].unique())
        ctrl = control or matched_control("interview")
        if {"none", "interview", ctrl} <= have:
            result.choice_decompositions |= decompose_over_derangements(
                choice_nll, model, controls_of(have, ctrl), by=by, sesoi=sesoi, weight=weight)
    if result.choice_decompositions:
        write_csv(out / "choice_persona_effects.csv", persona_effects_table(result.choice_decompositions))
