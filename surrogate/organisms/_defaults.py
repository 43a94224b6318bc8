"""What `surrogate run` does with no options: the shipped organisms on the shipped sample."""

from __future__ import annotations

from pathlib import Path

from ._names import ORGANISMS, sample_dir

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
