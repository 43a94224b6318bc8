"""The built-in default job: `surrogate run` with no options (and `surrogate.run()`).

The four shipped organisms score the shipped sample with no persona (misalignment, its dose
and its control, in and out of distribution); organism-base also scores it with and without
the persona and with a shuffled one, on the real participants with metadata and on the
synthetic positive (informative) and negative (null) controls. Then the analysis: the
misalignment per pair and group of studies, a persona decomposition per arm with a one-line
verdict, and the report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..analysis import ModelPair
from .run import RunResult

BASE = "organism-base"
PAIRS = [ModelPair(base=BASE, post_trained="organism-post-light", post_training="post-training, light dose"),
         ModelPair(base=BASE, post_trained="organism-post", post_training="post-training"),
         ModelPair(base=BASE, post_trained="organism-control", post_training="control: extra steps, human answers")]
PAIRS_FILE = "pairs.toml"
CATEGORIES_FILE = "categories.csv"
ARMS = {"real participants": "real", "positive control (synthetic, informative)": "synthetic-lotteries-informative",
        "negative control (synthetic, null)": "synthetic-lotteries-null"}


def write_pairs(folder: Path, pairs: list[ModelPair]) -> None:
    """The pairs a run's analysis used, beside its tables, so `analyze` and `report` on the
    folder read them without --pairs."""
    from ..store import atomic_write_bytes

    def value(v):
        return f'"{v}"' if isinstance(v, str) else str(v)

    lines = []
    for p in pairs:
        lines.append("[[pairs]]")
        lines += [f"{k} = {value(v)}" for k, v in p.model_dump().items() if v not in ("", None)]
        lines.append("")
    atomic_write_bytes(Path(folder) / PAIRS_FILE, "\n".join(lines).encode())


def groups() -> dict[str, str]:
    """Each sample study's group: in distribution (held-out participants of trained studies),
    out of distribution (studies never trained on), synthetic (the persona controls)."""
    import json

    from ..organisms import organisms_dir, sample_dir

    recipe = json.loads((organisms_dir() / "build.json").read_text())["recipe"]
    out = {}
    for folder in sorted(p for p in sample_dir().iterdir() if p.is_dir()):
        study = folder.name
        out[study] = ("synthetic" if study.startswith("synthetic-") else
                      "out of distribution" if study in recipe["heldout_studies"] else "in distribution")
    return out


def run_default_job(persona: list[str], out: str | Path, *, run_options: dict[str, Any],
                    progress=None, log: Callable[[str], None] = lambda s: None) -> RunResult:
    """Score the sample (two passes into one folder), then analyse and report."""
    from ..organisms import DEFAULT_MODELS, default_data
    from .run import run

    data = default_data()
    kinds = groups()
    with_persona = [s for s, g in kinds.items() if g != "out of distribution"]
    models = [m for m in DEFAULT_MODELS]
    first = run(models, data, "none", out, progress=progress, log=log, **run_options)
    result = run([BASE], data, persona, out, studies=with_persona, progress=progress, log=log, **run_options)
    result.info.models = {**first.info.models, **result.info.models}
    if run_options.get("shard") is None:
        finish_default_job(result, kinds, log=log)
    return result


def finish_default_job(result: RunResult, kinds: dict[str, str], *, log: Callable[[str], None] = lambda s: None
                       ) -> None:
    """Analyse the default run (misalignment per group, a decomposition per arm), write its
    pairs and categories, and its report (result.analysis, result.report)."""
    from ..store import atomic_write_bytes
    from ..analysis import decompose_personas
    from ._decompositions import persona_effects_table, write_csv
    from .analyze import analyze
    from .report import report

    out = Path(result.out)
    names = ("in distribution", "out of distribution", "synthetic")
    atomic_write_bytes(out / CATEGORIES_FILE, ("\n".join(
        ["experiment,dataset," + ",".join(names)]
        + [f"{s},organisms," + ",".join("1" if g == n else "0" for n in names) for s, g in sorted(kinds.items())])
        + "\n").encode())
    have = set(result.responses["model"].unique())
    pairs = [p for p in PAIRS if {p.base, p.post_trained} <= have]
    write_pairs(out, pairs)
    analysis = analyze([out], pairs=pairs, categories=out / CATEGORIES_FILE)
    frame = result.responses[result.responses["model"] == BASE]
    arms = {}
    for label, which in ARMS.items():
        studies = [s for s, g in kinds.items() if g == "in distribution"] if which == "real" else [which]
        sub = frame[frame["study"].isin(studies)]
        if {"none", "interview", "shuffled"} <= set(sub["persona"].unique()):
            arms[f"{BASE}: {label}"] = decompose_personas(sub)
    if arms:  # the arms replace the decomposition over everything (real and synthetic mixed)
        analysis.decompositions = arms
        write_csv(analysis.out / "persona_effects.csv", persona_effects_table(arms))
        atomic_write_bytes(analysis.out / "summary.txt", (analysis.summary() + "\n").encode())
    result.analysis = analysis
    result.report = report([out], out / "report", analysis=analysis, title="surrogate default job: model organisms",
                           log=log).html
