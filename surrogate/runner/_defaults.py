"""The offline default of `surrogate run`: a demo study and a demo model pair, built locally.

Nothing here is downloaded. The demo study holds synthetic participants (known cognitive
models, not people); the demo models have random weights. Together they exercise the whole
pipeline on any machine, and say nothing about how well language models predict people.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._cache import cache_dir

from ..models import ModelSpec

DEMO_MODELS_VERSION = 1
ORGANISM_NOTICE = (
    "Built-in default: the shipped model organisms (organism-base: a 2.6M-parameter Qwen3-architecture "
    "model trained by surrogate on real Psych-201 transcripts, a miniature Centaur; organism-post: "
    "the same model post-trained through a chat template toward the population's modal answers) "
    "score a sample of real Psych-201 participants they never trained on "
    "(surrogate/runner/data/psych201-sample), persona off, on and shuffled. These are miniature "
    "organisms, not real models. For real models and the whole of Psych-201: surrogate run "
    "--model base=Qwen/Qwen3-0.6B-Base --model post=Qwen/Qwen3-0.6B --data PATH/TO/psych201 "
    "--persona none,interview,shuffled"
)
DEFAULT_PERSONAS = ("none", "interview", "shuffled")
DEFAULT_MODELS = ("organism-base", "organism-post")
NOTICE = (
    "Built-in default: the demo study (synthetic participants from surrogate's own "
    "paradigms, not human data) scored by a random-weight demo model pair "
    "(demo-base: Qwen3 architecture, 2 layers, no chat template; demo-chat: the same "
    "architecture with a chat template and perturbed weights, standing in for a "
    "post-trained model). Their NLLs carry no scientific meaning. Pass --model and --data "
    "to score real models on real transcripts."
)


def default_data() -> Path:
    """The shipped sample of real Psych-201 participants (held out from the organisms)."""
    from .organisms import sample_dir

    folder = sample_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the shipped Psych-201 sample is missing; rebuild it "
                                "with `surrogate organisms build`")
    return folder


def demo_data() -> Path:
    from ..experiments._demo import DEMO_VERSION, write_demo_data

    return write_demo_data(cache_dir() / f"demo-data-v{DEMO_VERSION}")


def demo_models() -> list[ModelSpec]:
    """Build (once, then cached) the demo-base / demo-chat pair."""
    folder = cache_dir() / f"demo-models-v{DEMO_MODELS_VERSION}"
    base, chat = folder / "demo-base", folder / "demo-chat"
    if not (base / "config.json").exists() or not (chat / "config.json").exists():
        _build(base, chat)
    return [ModelSpec(path=str(base), name="demo-base"), ModelSpec(path=str(chat), name="demo-chat")]


DEMO_NAMES = ("demo-base", "demo-chat")


def resolve_model_path(path: str) -> str:
    """`demo-base` / `demo-chat` name the built-in demo models (unless such a folder exists);
    organism names resolve at load (they are keyed by name, wherever the package lives)."""
    if path in DEMO_NAMES and not Path(path).exists():
        return next(spec.path for spec in demo_models() if spec.name == path)
    return path


def _build(base: Path, chat: Path) -> None:
    import shutil

    import torch

    from ..data import load
    from .. models.tiny import build_model, train_tokenizer
    from ._store import atomic_write_bytes

    from ..models.tiny import _quiet_transformers

    _quiet_transformers()
    texts = [p.text for p in load(demo_data())]
    tok = train_tokenizer(texts, vocab_size=2000, style="qwen", chat_template=False)
    for target, template, seed in ((base, False, 0), (chat, True, 0)):
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model = build_model(tok, arch="qwen3", hidden_size=64, num_layers=2, seed=seed)
        if template:  # a "post-trained" variant: same start, perturbed weights, chat template
            torch.manual_seed(1)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.02 * torch.randn_like(p))
            from .. models.tiny import QWEN_CHAT_TEMPLATE

            tok.chat_template = QWEN_CHAT_TEMPLATE
        else:
            tok.chat_template = None
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_bytes(tmp / "README.md", f"# {target.name}\n\n{NOTICE}\n".encode())
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
