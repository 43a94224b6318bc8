"""Shared fixtures: the real Psych-201 data beside the project, the paper's reference
scorer, and small random-weight models of real architectures, built once per machine in a
locked on-disk cache that every worker and every run shares (keyed by what builds them and
the library versions). Each xdist worker runs torch on one thread: two workers on two cores
never fight over them."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # before torch is imported anywhere
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"

import pytest

from surrogate.data import shared_psych201

ROOT = Path(__file__).resolve().parents[1]
PSYCH201 = shared_psych201(ROOT)
SHARED = PSYCH201.parent
REFERENCE = SHARED / "reference" / "psych201_reference.py"

# Studies with different response formats, marker neighbours and metadata.
EQUIVALENCE_STUDIES = ("busch2024_stroop", "thoma2025problearn", "guenther2022relational",
                       "sandbrink2024metacontrol", "guenther2020LDT")


def require_shared() -> None:
    if not PSYCH201.is_dir():
        pytest.fail(f"the Psych-201 data is expected at {PSYCH201} (set SURROGATE_SHARED)")


@pytest.fixture(scope="session")
def psych201() -> Path:
    require_shared()
    return PSYCH201


@pytest.fixture(scope="session")
def reference():
    """The paper's reference scorer, imported as a module."""
    require_shared()
    spec = importlib.util.spec_from_file_location("psych201_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_records(study: str, n: int) -> list[dict]:
    """The first n JSON records of a shared study, as written."""
    require_shared()
    out = []
    with zipfile.ZipFile(PSYCH201 / study / "prompts.jsonl.zip") as zf, zf.open("prompts.jsonl") as f:
        for line in f:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    """Transcripts to train test tokenizers on (a few per shared study)."""
    require_shared()
    texts = []
    for study in sorted(p.name for p in PSYCH201.iterdir() if p.is_dir()):
        texts += [r["text"] for r in raw_records(study, 6)]
    return texts


TEST_CACHE = Path(os.environ.get("SURROGATE_TEST_CACHE") or ROOT / ".cache" / "tests")


def _versions() -> str:
    return ",".join(f"{m}={importlib.metadata.version(m)}" for m in ("torch", "transformers", "tokenizers"))


def cached_model(name: str, build: Callable[[Path], None], **key) -> Path:
    """A model folder built once per machine: keyed by its name and settings, the source of
    the code that builds it, the corpus and the library versions; built under a lock into a
    temporary folder and renamed into place, so concurrent workers build it once and never
    see half of it."""
    import surrogate.testing.tiny as tiny

    digest = hashlib.sha256(json.dumps({"name": name, **key, "versions": _versions(),
                                        "source": inspect.getsource(tiny), "build": inspect.getsource(build)},
                                       sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = TEST_CACHE / f"{name}-{digest}"
    if (folder / "config.json").is_file():
        return folder
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with open(TEST_CACHE / f".{name}-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "config.json").is_file():
            tmp = TEST_CACHE / f".{name}-{digest}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            build(tmp)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
    return folder


def _corpus_key(corpus: list[str]) -> str:
    return hashlib.sha256("\x00".join(corpus).encode()).hexdigest()[:16]


def _tiny(tmp_path_factory, corpus, name, **kw) -> Path:
    from surrogate.testing.tiny import save_tiny

    def build(out: Path) -> None:
        save_tiny(out, corpus, vocab_size=3000, hidden_size=64, num_layers=2, **kw)

    return cached_model(name, build, corpus=_corpus_key(corpus), **kw)


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory, corpus) -> Path:
    """Qwen3 architecture, byte-level BPE that merges '>>' with what follows, chat template."""
    return _tiny(tmp_path_factory, corpus, "qwen", arch="qwen3", style="qwen", chat_template=True)


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory, corpus) -> Path:
    """Llama architecture, byte-level BPE with BOS, '>>' isolated, Llama-3-like template."""
    return _tiny(tmp_path_factory, corpus, "llama", arch="llama", style="llama", chat_template=True,
                 seed=1)


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory, corpus) -> Path:
    """Qwen2 architecture (Qwen1.5/2/2.5, their coder and math models, R1-Distill-Qwen)."""
    return _tiny(tmp_path_factory, corpus, "qwen2", arch="qwen2", style="qwen", chat_template=True, seed=3,
                 isolate_close_marker=True)


@pytest.fixture(scope="session")
def olmo3_dir(tmp_path_factory, corpus) -> Path:
    """OLMo-3 architecture: sliding-window and full attention layers interleaved."""
    return _tiny(tmp_path_factory, corpus, "olmo3", arch="olmo3", style="qwen", chat_template=True, seed=4,
                 isolate_close_marker=True)


def _tiny_vision_language(tmp_path_factory, corpus, family: str, style: str) -> Path:
    def build(out: Path) -> None:
        from surrogate.models import quiet_transformers
        from surrogate.testing.tiny import build_vision_language_model, train_tokenizer

        quiet_transformers()
        tok = train_tokenizer(corpus, vocab_size=3000, style=style, chat_template=True,
                              isolate_close_marker=True)
        build_vision_language_model(tok, family, seed=2).save_pretrained(out)
        tok.save_pretrained(out)

    return cached_model(family, build, corpus=_corpus_key(corpus), style=style)


@pytest.fixture(scope="session")
def qwen2_5_vl_dir(tmp_path_factory, corpus) -> Path:
    """Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration), scored on text."""
    return _tiny_vision_language(tmp_path_factory, corpus, "qwen2_5_vl", "qwen")


@pytest.fixture(scope="session")
def qwen3_vl_dir(tmp_path_factory, corpus) -> Path:
    """Qwen3-VL (Qwen3VLForConditionalGeneration, interleaved M-RoPE, deepstack)."""
    return _tiny_vision_language(tmp_path_factory, corpus, "qwen3_vl", "qwen")


@pytest.fixture(scope="session")
def qwen3_5_dir(tmp_path_factory, corpus) -> Path:
    """Qwen3.5 (Qwen3_5ForConditionalGeneration: gated-delta-net linear attention + full attention)."""
    return _tiny_vision_language(tmp_path_factory, corpus, "qwen3_5", "qwen")


@pytest.fixture(scope="session")
def mllama_dir(tmp_path_factory, corpus) -> Path:
    """Llama-3.2-Vision (MllamaForConditionalGeneration, cross-attention layers)."""
    return _tiny_vision_language(tmp_path_factory, corpus, "mllama", "llama")


@pytest.fixture(scope="session")
def qwen_backend(qwen_dir):
    from surrogate.models import ModelSpec, load_backend

    return load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32", device="cpu"))


@pytest.fixture(autouse=True)
def _test_cache(monkeypatch):
    """Demo models and data come from the machine's test cache (keyed by library versions),
    not the user's cache; a test that needs an empty one sets its own."""
    monkeypatch.setenv("SURROGATE_CACHE", str(TEST_CACHE / f"surrogate-{hashlib.sha256(_versions().encode()).hexdigest()[:12]}"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker():
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
