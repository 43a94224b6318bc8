"""The built-in default job: `surrogate run` with no models and no data (`surrogate.default_job()`).

The four shipped organisms score the shipped sample with no persona (misalignment, its dose
and its control, in and out of distribution); organism-base also scores it with and without
the persona and with a shuffled one, on the real participants with metadata and on the
synthetic positive (informative) and negative (null) controls. Then the analysis: the
misalignment per pair and group of studies, a persona decomposition per arm with a one-line
verdict, and the report. The result carries the findings, one line each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from typing_extensions import Unpack

from ..analysis import decompose_personas
from ..options import ScoringArgs, ScoringOptions, split_options
from ..organisms import (BASE, DEFAULT_MODELS, DEFAULT_PAIRS, DEFAULT_PERSONAS, GROUPS, IN, ORGANISM_NOTICE, OUT,
                         default_data, sample_groups, write_categories, write_pairs)
from ..store import atomic_write_bytes
from ._decompositions import persona_effects_table, write_csv
from .analyze import Analysis, analyze
from .report import headline, report
from .run import RunResult, run_with

PAIRS_FILE = "pairs.toml"
CATEGORIES_FILE = "categories.csv"
ARMS = {"real participants": "real", "positive control (synthetic, informative)": "synthetic-lotteries-informative",
        "negative control (synthetic, null)": "synthetic-lotteries-null"}


@dataclass
class DefaultJob:
    """What the default job made: the run, its analysis, the report, and the findings."""

    result: RunResult
    analysis: Analysis | None = None
    report: Path | None = None
    findings: list[str] = field(default_factory=list)


def default_job(out: str | Path = "runs/default", persona: str = "none", *,
                progress: Callable[[str, int, int], None] | None = None, log: Callable[[str], None] = lambda s: None,
                **options: Unpack[ScoringArgs]) -> DefaultJob:
    """The built-in default job into `out` (resumable); `persona` adds strategies to the
    three it always scores (none, interview, shuffled); `options` as `surrogate.run`'s."""
    (opts,) = split_options(dict(options), ScoringOptions)
    return run_default_job(persona, out, opts, progress=progress, log=log)


def run_default_job(persona: str | list[str], out: str | Path, opts: ScoringOptions, *, progress=None,
                    log: Callable[[str], None] = lambda s: None) -> DefaultJob:
    """Score the sample (two passes into one folder), then analyse and report (not for a
    single shard of it: the last shard's `surrogate run` with no options, or analyze and
    report on the merged folder, does that)."""
    from ..personas import ALIASES

    log(ORGANISM_NOTICE)
    personas = persona.split(",") if isinstance(persona, str) else list(persona)
    wanted = [n for p in personas for n in ALIASES.get(p.strip(), [p.strip()])]
    extra = [n for n in wanted if n not in DEFAULT_PERSONAS]
    if wanted != ["none"]:
        log(f"the built-in default job always scores {', '.join(DEFAULT_PERSONAS)} (the persona decomposition needs "
            "all three)" + (f"; your persona adds {', '.join(extra)}" if extra else "; your persona is among them"))
    strategies = list(dict.fromkeys([*DEFAULT_PERSONAS, *wanted]))
    data = default_data()
    kinds = sample_groups()
    with_persona = [s for s, g in kinds.items() if g not in OUT]
    first = run_with(opts, list(DEFAULT_MODELS), data, "none", out, progress=progress, log=log)
    result = run_with(opts.model_copy(update={"studies": with_persona}), [BASE], data, strategies, out,
                      progress=progress, log=log)
    result.info.models = {**first.info.models, **result.info.models}
    job = DefaultJob(result=result)
    if opts.shard is None:
        finish_default_job(job, kinds, log=log)
    return job


DOSES = (("organism-post-light", "light dose"), ("organism-post", "full dose"))
CONTROL = "organism-control"


def _d(pm, group: str) -> tuple[float, float, float]:
    lo, hi = pm.paper_domain_interval.get(group, (math.nan, math.nan))
    return pm.paper_by_domain.get(group, math.nan), lo, hi


def _misalignment_line(group: str, pairs: dict, n_studies: int) -> str:
    """One group's misalignment: each dose's paper's d with its bootstrap CI and what the CIs
    support (never more), and the control's."""
    parts, said, ds = [], [], []
    for name, what in DOSES:
        d, lo, hi = _d(pairs[name], group)
        parts.append(f"{what} d {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        said.append("worse" if lo > 0 else "better" if hi < 0 else "indistinguishable")
        ds.append(d)
    light, full = ds
    other = {"worse": "predicts them worse too", "better": "predicts them better",
             "indistinguishable": "is not distinguishable from the base"}
    if said == ["worse", "worse"]:
        verdict = "both doses predict people worse than the base" + (", more so at the full dose" if full > light
                                                                     else ", the light dose no less")
    elif said[1] == "worse":
        verdict = f"the full dose predicts people worse than the base; the light dose {other[said[0]]}"
    else:
        verdict = ("the post-trained organisms do not predict people worse here (the full dose "
                   + ("predicts them better" if said[1] == "better" else "is not distinguishable from the base") + ")")
    text = f"Misalignment, {group} ({n_studies} stud{'y' if n_studies == 1 else 'ies'}): " + ", ".join(parts) + \
        f": {verdict}."
    if CONTROL in pairs:
        c, lo, hi = _d(pairs[CONTROL], group)
        inside = -0.1 < lo and hi < 0.1
        text += (f" The control (as many extra steps, the base's own predictions as targets): d "
                 f"{c:+.3f} [{lo:+.3f}, {hi:+.3f}], " + ("within 0.1 of the base." if inside else
                                                           "not shown to be within 0.1 of the base."))
    return text


def findings(analysis: Analysis, groups: dict[str, str]) -> list[str]:
    """The default job's findings, one line each: misalignment per group of studies (`groups`:
    study -> group) with its dose and the control, then the persona decomposition per arm (real
    people, the positive and the null synthetic control) with its verdict. Worded from the
    intervals, never more."""
    lines = []
    mis = analysis.misalignment
    if mis is not None:
        pairs = {pm.pair.post_trained: pm for pm in mis.pairs}
        if all(name in pairs for name, _ in DOSES):
            for group in GROUPS:
                if all(group in pairs[name].paper_by_domain for name, _ in DOSES):
                    lines.append(_misalignment_line(group, pairs, sum(1 for g in groups.values() if g == group)))
    lines += [line for line in headline(analysis) if line.startswith("Personas")]
    return lines


def finish_default_job(job: DefaultJob, kinds: dict[str, str], *, log: Callable[[str], None] = lambda s: None
                       ) -> None:
    """Analyse the default run (misalignment per group, a decomposition per arm), write its
    pairs and categories, its report, and the findings."""
    result = job.result
    out = Path(result.out)
    write_categories(out / CATEGORIES_FILE, kinds)
    have = set(result.responses["model"].unique())
    pairs = [p for p in DEFAULT_PAIRS if {p.base, p.post_trained} <= have]
    write_pairs(out / PAIRS_FILE, pairs)
    analysis = analyze([out], pairs=pairs, categories=out / CATEGORIES_FILE)
    frame = result.responses[result.responses["model"] == BASE]
    arms = {}
    for label, which in ARMS.items():
        studies = [s for s, g in kinds.items() if g == IN] if which == "real" else [which]
        sub = frame[frame["study"].isin(studies)]
        if {"none", "interview", "shuffled"} <= set(sub["persona"].unique()):
            arms[f"{BASE}: {label}"] = decompose_personas(sub)
    if arms:  # the arms replace the decomposition over everything (real and synthetic mixed)
        analysis.decompositions = arms
        write_csv(analysis.out / "persona_effects.csv", persona_effects_table(arms))
        atomic_write_bytes(analysis.out / "summary.txt", (analysis.summary() + "\n").encode())
    job.analysis = analysis
    job.findings = findings(analysis, kinds)
    job.report = report([out], out / "report", analysis=analysis, title="surrogate default job: model organisms",
                        log=log, findings=job.findings).html
