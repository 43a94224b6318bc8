"""Loading a Hugging Face checkpoint for scoring: device, dtype and attention choices, the
digests that key results to weights, and load errors a user can act on.

Everything that can go wrong before the first forward pass says what is wrong and with
which file: a device that is not there, a folder that is not a checkpoint, a truncated
weight file, a hub id on a machine that cannot reach the hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._cache import looks_local
from .._errors import OptionError
from ._spec import ModelSpec

if TYPE_CHECKING:
    from ._hf import HFScorer

log = logging.getLogger(__name__)

_BLOCK = 16 * 2**20  # read size for weight-file digests
_CACHE_FROM = 64 * 2**20  # files at least this large keep their digest in the cache
_DEVICE = re.compile(r"^(auto|cpu|map|mps|cuda(:\d+)?)$")


class LoadError(ValueError):
    """A model that cannot be loaded, with what to do about it."""


def resolve_device(device: str) -> str:
    import torch

    check_device(device)
    if device == "map":  # spread over every GPU (device_map="auto"); computing device below
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def resolve_attention(attention: str, device: str) -> str:
    """auto: FlashAttention-2 where it can run (CUDA, flash-attn installed), else SDPA."""
    if attention != "auto":
        return attention
    import importlib.util

    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _file_digest(path: Path) -> str:
    """sha256 of the whole file, so that any change to any weight changes the result key.
    Large checkpoints are read once: the digest is cached in `$SURROGATE_CACHE/digests.json`
    under the file's path, size, device, inode and its modification *and change* times (an
    in-place write can restore the modification time, never the change time), beside a
    digest of its first and last blocks that is checked on every use. The cache is replaced
    atomically, never through a link; a stale or unreadable one is simply recomputed."""
    from .._cache import cache_dir
    from ..store import atomic_write_bytes

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_dev}|{stat.st_ino}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"
    store = cache_dir() / "digests.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("ends") == _ends_digest(path, stat.st_size):
        return entry["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    digest = h.hexdigest()[:16]
    if stat.st_size >= _CACHE_FROM:
        known[key] = {"sha256": digest, "ends": _ends_digest(path, stat.st_size)}
        store.parent.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write_bytes(store, json.dumps(known).encode())
        except OSError:
            pass  # a cache we cannot write only costs a re-read next time
    return digest


def _ends_digest(path: Path, size: int) -> str:
    """sha256 of a file's first and last blocks: a cheap check that a cached digest still
    belongs to these bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_BLOCK))
        if size > _BLOCK:
            f.seek(max(size - _BLOCK, _BLOCK))
            h.update(f.read(_BLOCK))
    return h.hexdigest()[:16]


def weights_digest(folder: Path, commit: str | None = None) -> str:
    """A digest of a checkpoint folder's config and weight files; the commit hash (or
    "unknown") for a hub checkpoint that is not a local folder."""
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json")
                       and not p.name.startswith("tokenizer"))
        return hashlib.sha256(json.dumps({p.name: _file_digest(p) for p in files}).encode()).hexdigest()[:16]
    return commit or "unknown"


def weights_fingerprint(model: Any) -> str:
    """Commit hash for hub checkpoints; a digest of config and weight files for folders."""
    return weights_digest(Path(getattr(model.config, "_name_or_path", "") or "."),
                          getattr(model.config, "_commit_hash", None))


def tokenizer_digest(tok: Any) -> str:
    """What of a tokenizer sets the tokens: its pipeline, chat template and BOS."""
    return hashlib.sha256((tok.backend_tokenizer.to_str() + str(tok.chat_template)
                           + str(tok.bos_token)).encode()).hexdigest()[:16]


def load_pretrained(spec: ModelSpec, *, training: bool = False) -> tuple[Any, Any, str]:
    """(model, tokenizer, device) for a spec, through one path for scoring and training:
    built-in names resolved, the checkpoint checked, revision, attention and device map
    honoured, load errors turned into messages that name the file. With `training`, the
    weights are bfloat16 on CUDA and float32 elsewhere, and the model is left in train mode."""
    from transformers import AutoTokenizer

    quiet_transformers()
    check_device(spec.device)
    if training and spec.device == "map":
        raise OptionError("device", "map", "spreads a model over devices for scoring; training needs one device")
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    kw = dict(revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    # A name the job resolved (a shipped organism) is loaded from its location and keyed by
    # the name, not by where the package is installed.
    path = spec.where
    check_checkpoint(path, spec.revision)
    if spec.adapter:
        check_adapter(Path(spec.adapter))
    mapped = {"device_map": "auto"} if spec.device == "map" else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        # device "map": layers spread over all GPUs (then CPU memory) by accelerate, as the paper's
        # code loads models larger than one GPU; inputs go where the embeddings are.
        attention = resolve_attention(spec.attention, device)
        model = _model_class(path, kw).from_pretrained(path, dtype=dtype, attn_implementation=attention,
                                                       **mapped, **kw)
    except (OSError, ValueError, RuntimeError) as e:
        if isinstance(e, LoadError):
            raise
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LoadError(f"{path}: cannot load this checkpoint: {first}") from None
    if spec.adapter:
        try:
            from peft import PeftModel
        except ImportError:  # pragma: no cover
            raise ImportError("applying an adapter needs peft: pip install -e '.[finetune]'") from None
        import warnings

        with warnings.catch_warnings():  # peft asks transformers a deprecated question
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(model, spec.adapter).merge_and_unload()
    if mapped:
        device = str(model.get_input_embeddings().weight.device)
    else:
        model = model.to(device)
    return (model.train() if training else model.eval()), tokenizer, device


def load_hf(spec: ModelSpec) -> "HFScorer":
    """Load tokenizer and model per the spec (lazy heavy imports), with clear errors."""
    from ._hf import HFScorer

    model, tokenizer, device = load_pretrained(spec)
    return HFScorer(model, tokenizer, spec=spec, device=device)


def is_vision_language(config: Any) -> bool:
    """A composite checkpoint with a vision tower (Qwen2.5-VL, Qwen3-VL, Llama-3.2-Vision)."""
    return getattr(config, "vision_config", None) is not None


def _model_class(path: str, kw: dict[str, Any]) -> Any:
    """Causal LMs load as such; vision-language checkpoints load whole (as the paper's VL
    evaluation does) and are scored on text alone. (The causal-LM auto class either refuses
    their configs or, for mllama, builds a text-only model from a composite config.)"""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(path, **kw)
    return AutoModelForImageTextToText if is_vision_language(config) else AutoModelForCausalLM


def check_adapter(folder: Path) -> None:
    """An adapter folder surrogate will load: its config and safetensors weights. Pickled
    weights (adapter_model.bin) are refused, since unpickling can run code; a planted one is
    not loaded in its stead."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such adapter folder")
    if not (folder / "adapter_config.json").is_file():
        raise LoadError(f"{folder}: no adapter_config.json; is this a LoRA adapter folder?")
    if not (folder / "adapter_model.safetensors").is_file():
        extra = " (only adapter_model.bin, pickled weights, which surrogate does not load: they can run code; " \
                "save the adapter with safetensors)" if (folder / "adapter_model.bin").exists() else ""
        raise LoadError(f"{folder}: no adapter_model.safetensors{extra}")
    if (folder / "adapter_model.bin").exists():
        raise LoadError(f"{folder}: holds adapter_model.bin (pickled weights) beside adapter_model.safetensors; "
                        "surrogate does not load pickles, and will not guess which file is the adapter: remove it")


def _dir_digest(folder: Path) -> str:
    """An adapter's identity: its config and weights (not the reports or checkpoints beside)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such adapter folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith("adapter_"))
    if not files:
        raise FileNotFoundError(f"{folder}: no adapter_config.json / adapter_model.* in it")
    return hashlib.sha256(json.dumps({str(p.relative_to(folder)): _file_digest(p)
                                      for p in files}).encode()).hexdigest()[:16]


def check_device(device: str) -> None:
    """`--device` names a device this machine has."""
    if not _DEVICE.match(device):
        raise OptionError("device", device, "expected auto, cpu, cuda, cuda:N, mps or map")
    if device.startswith("cuda") or device == "map":
        import torch

        if not torch.cuda.is_available():
            if device == "map":
                return  # spreads over whatever there is (CPU memory)
            raise OptionError("device", device, "no CUDA GPU is visible to torch here (a CPU-only build, or no "
                                                "driver); use the device cpu or auto")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise OptionError("device", device, f"this machine has {torch.cuda.device_count()} GPU(s), "
                                                "numbered from 0")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers (False when HF_HUB_OFFLINE is set)."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_checkpoint(path: str, revision: str | None = None) -> None:
    """A local folder must be a checkpoint; a hub id must be reachable or already cached."""
    folder = Path(path)
    if folder.exists():
        if not folder.is_dir():
            raise LoadError(f"{path}: a file, not a checkpoint folder (config.json, weights and tokenizer)")
        if not (folder / "config.json").is_file():
            raise LoadError(f"{path}: no config.json in this folder; a checkpoint folder holds config.json, the "
                            "weights (*.safetensors) and the tokenizer files")
        if not any(folder.glob("tokenizer*")) and not (folder / "vocab.json").exists():
            raise LoadError(f"{path}: no tokenizer files (tokenizer.json, tokenizer_config.json) in this folder")
        for weights in folder.glob("*.safetensors"):
            _check_safetensors(weights)
        return
    if looks_local(path):
        raise FileNotFoundError(f"{path}: no such file or folder (a hub id is owner/name)")
    if hub_reachable():
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - an unusual id: treat as not cached
        cached = None
    if isinstance(cached, str):
        os.environ["HF_HUB_OFFLINE"] = "1"  # load from the cache without minutes of retries
        return
    raise LoadError(f"{path}: not a local folder, not in the Hugging Face cache, and the hub cannot be reached "
                    "from here (offline); download it where there is network (huggingface-cli download "
                    f"{path}) and pass the folder, or copy the cache")


def _check_safetensors(path: Path) -> None:
    """The header of a safetensors file is readable and its data is all there."""
    import struct

    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if n <= 0 or 8 + n > size:
                raise ValueError("incomplete header")
            header = json.loads(f.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            raise ValueError(f"the data ends at byte {8 + n + end} but the file has {size}")
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise LoadError(f"{path}: not a complete safetensors file ({e}); the download or copy may be truncated") \
            from None


def quiet_transformers() -> None:
    """Library progress bars would interleave with ours."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
