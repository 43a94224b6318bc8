"""The random-weight demo models and the synthetic demo study, built locally on first use.

Nothing here is downloaded. The demo study holds synthetic participants (known cognitive
models, not people); the demo models have random weights. Together they exercise the whole
pipeline on any machine (tests, dry runs) and say nothing about how well language models
predict people.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .._cache import cache_dir
from ..store import atomic_write_bytes

DEMO_MODELS_VERSION = 1
DEMO_DATA_VERSION = 1
NOTICE = (
    "Demo models: random-weight models built locally (demo-base: Qwen3 architecture, 2 layers, no chat "
    "template; demo-chat: the same architecture with a chat template and perturbed weights, standing in for "
    "a post-trained model). Their NLLs carry no scientific meaning."
)


def demo_experiments():
    from ..experiments import IntertemporalChoice, MixedLotteries, RestlessBandit

    return [RestlessBandit(n_trials=40), MixedLotteries(n_trials=30), IntertemporalChoice(n_trials=30)]


def write_demo_data(folder: Path, n_participants: int = 12, seed: int = 0) -> Path:
    """Write <folder>/<paradigm>/prompts.jsonl for each built-in paradigm (idempotent)."""
    from ..experiments import SyntheticSpec, records_to_jsonl, simulate_synthetic

    for exp in demo_experiments():
        target = folder / exp.name / "prompts.jsonl"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        spec = SyntheticSpec(links=tuple(exp.default_links))
        records = simulate_synthetic(exp, n_participants, seed=seed, spec=spec)
        atomic_write_bytes(target, records_to_jsonl(records).encode())
    return folder


def demo_data() -> Path:
    """The synthetic demo study (three paradigms), written once to the cache."""
    return write_demo_data(cache_dir() / f"demo-data-v{DEMO_DATA_VERSION}")


def demo_model_folder(name: str) -> Path:
    """The folder of demo-base or demo-chat, built once (then cached)."""
    folder = cache_dir() / f"demo-models-v{DEMO_MODELS_VERSION}"
    base, chat = folder / "demo-base", folder / "demo-chat"
    if not (base / "config.json").exists() or not (chat / "config.json").exists():
        _build(base, chat)
    return {"demo-base": base, "demo-chat": chat}[name]


def _build(base: Path, chat: Path) -> None:
    import torch

    from ..data import load
    from ..models import quiet_transformers
    from .tiny import QWEN_CHAT_TEMPLATE, build_model, train_tokenizer

    quiet_transformers()
    texts = [p.text for p in load(demo_data())]
    tok = train_tokenizer(texts, vocab_size=2000, style="qwen", chat_template=False)
    for target, template, seed in ((base, False, 0), (chat, True, 0)):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model = build_model(tok, arch="qwen3", hidden_size=64, num_layers=2, seed=seed)
        if template:  # a "post-trained" variant: same start, perturbed weights, chat template
            torch.manual_seed(1)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.02 * torch.randn_like(p))
        tok.chat_template = QWEN_CHAT_TEMPLATE if template else None
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_bytes(tmp / "README.md", f"# {target.name}\n\n{NOTICE}\n".encode())
        # Another process may be building the same (deterministic) folder: the first complete
        # one stays, and a reader never sees it disappear.
        if target.exists() and not (target / "config.json").exists():
            shutil.rmtree(target, ignore_errors=True)  # a broken earlier build
        try:
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
