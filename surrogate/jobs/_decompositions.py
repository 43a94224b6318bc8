"""Persona decompositions over run tables, shared by `compare-personas`, `analyze` and the
default job: which strategies a comparison scores, one decomposition per model, matched
strategy and pairing (the first the pre-specified one, the others a sensitivity range),
Holm over a model's matched strategies, and the tables they write."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..analysis import PersonaDecomposition, StrategyComparison, compare_strategies, decompose_personas, with_multiplicity
from ..personas import matched_control
from ..store import atomic_write_bytes


def default_strategies(matched: Sequence[str]) -> list[str]:
    """What compare-personas scores by default: none, each matched strategy with its own
    shuffled control, and for the paper's interview the population control, the placebo and
    the form-matched control (shuffled-placebo)."""
    out = ["none"]
    for m in matched:
        out += [m, matched_control(m)]
        if m == "interview":
            out += ["population", "placebo", "shuffled-placebo"]
    return list(dict.fromkeys(out))


PERSONA_STRATEGIES = ",".join(default_strategies(["interview"]))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


def split_names(text: str | Sequence[str]) -> list[str]:
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if not names:
        raise ValueError("no strategy named")
    return names


def is_sensitivity(control: str) -> bool:
    """`shuffled.2`, `shuffled-narrative.3`: an extra pairing (--derangements), a sensitivity check."""
    return re.search(r"\.\d+$", control) is not None


def primary(decompositions: dict[str, PersonaDecomposition]) -> dict[str, PersonaDecomposition]:
    """The pre-specified decompositions: each model's first pairing (not the sensitivity ones)."""
    return {k: d for k, d in decompositions.items() if not is_sensitivity(d.control)}


def persona_effects_table(decompositions: dict[str, PersonaDecomposition]) -> pd.DataFrame:
    """One table over models, matched strategies and derangements (`control`; `role` says
    which pairing is the pre-specified primary one and which are a sensitivity range)."""
    frames = []
    for label, d in decompositions.items():
        role = "sensitivity" if is_sensitivity(d.control) else "primary"
        frames.append(d.to_frame().assign(label=label.split(" [")[0], model=d.model, matched=d.matched,
                                          control=d.control, role=role))
    table = pd.concat(frames, ignore_index=True)
    first = ["label", "model", "matched", "control", "role"]
    return table[[*first, *[c for c in table.columns if c not in first]]]


def controls_of(have: set[str], control: str) -> list[str]:
    """The control and its extra derangements (`shuffled`, `shuffled.2`, ...), in order."""
    extra = sorted((c for c in have if c.startswith(control + ".") and c[len(control) + 1:].isdigit()),
                   key=lambda c: int(c[len(control) + 1:]))
    return ([control] if control in have else []) + extra


def decompose_over_derangements(responses: pd.DataFrame, model: str, controls: list[str], *, matched: str = "interview",
                                **kw) -> dict[str, PersonaDecomposition]:
    """One decomposition per control; keys `model` (for interview) or `model: matched` for the
    first pairing, `... [control]` for the sensitivity ones."""
    out = {}
    base = model if matched == "interview" else f"{model}: {matched}"
    for i, c in enumerate(controls):
        out[base if i == 0 else f"{base} [{c}]"] = decompose_personas(responses, model=model, matched=matched,
                                                                      control=c, **kw)
    return out


def derangement_spread(decompositions: dict[str, PersonaDecomposition]) -> list[str]:
    """A line per decomposition with several pairings: the primary pairing's estimate, and the
    range over the others as a sensitivity check (not alternatives to choose from)."""
    groups: dict[str, list[PersonaDecomposition]] = {}
    for key, d in decompositions.items():
        groups.setdefault(key.split(" [")[0], []).append(d)
    lines = []
    for label, ds in groups.items():
        values = [d.pooled.individual_component.value for d in ds if d.pooled_rows]
        if len(values) > 1:
            lines.append(f"{label}: individual component {values[0]:+.4f} with the pre-specified pairing "
                         f"({ds[0].control}: the one to report and test); over {len(values) - 1} more pairings, as "
                         f"a sensitivity range only: [{min(values[1:]):+.4f}, {max(values[1:]):+.4f}]")
    return lines


def decompose_all(responses: pd.DataFrame, matched: list[str], control: str | None, **kw
                   ) -> tuple[dict[str, PersonaDecomposition], dict[str, StrategyComparison], list[str]]:
    decompositions: dict[str, PersonaDecomposition] = {}
    comparisons: dict[str, StrategyComparison] = {}
    notes: list[str] = []
    for model in sorted(responses["model"].unique()) if not responses.empty else []:
        have = set(responses.loc[responses["model"] == model, "persona"].unique())
        usable = []
        for m in matched:
            ctrl = control or matched_control(m)
            if {"none", m} <= have and ctrl in have:
                decompositions |= decompose_over_derangements(responses, model, controls_of(have, ctrl), matched=m, **kw)
                usable.append(m)
            elif {"none", m} <= have:
                # Never fall back to another control silently: they estimate different things.
                notes.append(f"{model}: no {ctrl!r} rows, so no persona decomposition for {m!r}"
                             + (" (population rows exist: pass --control population, whose individual component "
                                "includes persona completeness)" if m == "interview" and "population" in have
                                and ctrl != "population" else ""))
        if len(usable) > 1:
            comparisons[model] = compare_strategies(responses, usable, model=model,
                                                    **{k: v for k, v in kw.items() if k in ("by", "sesoi", "weight")})
    # Several matched strategies for one model are a family of tests: their verdicts are
    # Holm-adjusted over it.
    return with_multiplicity(decompositions), comparisons, notes


def write_comparisons(out: Path, comparisons: dict[str, StrategyComparison]) -> None:
    if comparisons:
        write_csv(out / "strategy_ranking.csv", pd.concat([c.ranking() for c in comparisons.values()],
                                                           ignore_index=True))
        write_csv(out / "strategy_differences.csv", pd.concat([c.differences_frame() for c in comparisons.values()],
                                                               ignore_index=True))
