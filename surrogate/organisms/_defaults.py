"""What `surrogate run` does with no options: the shipped organisms on the shipped sample."""

from __future__ import annotations

import json
from pathlib import Path

from ..analysis import ModelPair
from ..store import atomic_write_bytes
from ._names import ORGANISMS, organisms_dir, sample_dir

ORGANISM_NOTICE = (
    "Built-in default: the four shipped model organisms (small Qwen3-architecture models trained by surrogate on "
    "real Psych-201 transcripts and on synthetic participants: a base, two doses of post-training and a control; "
    "see their cards: surrogate/organisms/models/*/README.md) score a sample of participants they never trained "
    "on (real ones from trained and never-seen studies, synthetic positive and null persona controls), persona "
    "off, on and shuffled. These are miniature organisms, not real models. For real models and the whole of Psych-201: "
    "surrogate run --model base=Qwen/Qwen3-0.6B-Base --model post=Qwen/Qwen3-0.6B --data PATH/TO/psych201 "
    "--persona none,interview,shuffled"
)
DEFAULT_PERSONAS = ("none", "interview", "shuffled")
DEFAULT_MODELS = ORGANISMS


def default_data() -> Path:
    """The shipped sample of real Psych-201 participants (held out from the organisms)."""
    folder = sample_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the shipped Psych-201 sample is missing; rebuild it "
                                "with `surrogate organisms build`")
    return folder


BASE = "organism-base"
IN, OUT_CHOICE, OUT_TEXT, SYNTHETIC = ("in distribution", "never seen: choice", "never seen: free text",
                                       "synthetic")
OUT = (OUT_CHOICE, OUT_TEXT)  # studies never trained on, of either format
GROUPS = (IN, OUT_CHOICE, OUT_TEXT, SYNTHETIC)
# The default job's pairs: misalignment of each dose of post-training, and of the control.
DEFAULT_PAIRS = [ModelPair(base=BASE, post_trained="organism-post-light", post_training="post-training, light dose"),
                 ModelPair(base=BASE, post_trained="organism-post", post_training="post-training"),
                 ModelPair(base=BASE, post_trained="organism-control",
                           post_training="control: as many extra steps, the base's own predictions")]


def sample_groups() -> dict[str, str]:
    """Each sample study's group: in distribution (held-out participants of trained studies),
    never seen (studies never trained on: closed-set choice tasks, and free-text tasks),
    synthetic (the persona controls)."""
    recipe = json.loads((organisms_dir() / "build.json").read_text())["recipe"]
    return {folder.name: study_group(folder.name, recipe)
            for folder in sorted(p for p in sample_dir().iterdir() if p.is_dir())}


def study_group(study: str, recipe: dict) -> str:
    """A study's group under an organisms recipe (as build.json records it)."""
    if study.startswith("synthetic-"):
        return SYNTHETIC
    if study in recipe.get("heldout_choice_studies", ()):
        return OUT_CHOICE
    return OUT_TEXT if study in recipe["heldout_studies"] else IN


def write_categories(path: Path, groups: dict[str, str]) -> None:
    """A categories.csv (as Psych-201's) whose domains are the groups: in distribution, never
    seen (choice, free text), synthetic."""
    lines = ["experiment,dataset," + ",".join(GROUPS)]
    lines += [f"{s},organisms," + ",".join("1" if g == n else "0" for n in GROUPS) for s, g in sorted(groups.items())]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def write_pairs(path: Path, pairs: list[ModelPair]) -> None:
    """A pairs.toml of these pairs (what `analyze` and `report` read beside a run's tables)."""
    def value(v):
        return f'"{v}"' if isinstance(v, str) else str(v)

    lines = []
    for p in pairs:
        lines.append("[[pairs]]")
        lines += [f"{k} = {value(v)}" for k, v in p.model_dump().items() if v not in ("", None)]
        lines.append("")
    atomic_write_bytes(path, "\n".join(lines).encode())
