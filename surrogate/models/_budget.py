"""How many tokens one forward pass may hold, sized once from the device's free memory.

Scoring runs without a key/value cache (except under option continuations), reads the LM
head only at scored rows (in chunks of bounded size), and lets SDPA pick a memory-efficient
kernel, so a pass's peak memory grows linearly with its tokens. The estimate below counts,
per token, the activations alive inside one decoder layer (residual, normed input, q/k/v
and attention output, the MLP's gate/up/activation), the float32 upcasts in the norms, and
the cache when one is kept. A pass that still runs out of memory is split and retried
(HFScorer), so the estimate only has to be close, not safe.
"""

from __future__ import annotations

from typing import Any

MIN_TOKENS = 1024
MAX_TOKENS = 1 << 20


def bytes_per_token(config: Any, dtype_bytes: int, *, cache: bool) -> int:
    """Peak activation bytes per token of one forward pass of a model with this config."""
    text = config.get_text_config()
    hidden = text.hidden_size
    inter = getattr(text, "intermediate_size", None) or 4 * hidden
    if isinstance(inter, list):  # per-layer sizes (some hybrid models)
        inter = max(inter)
    per = dtype_bytes * (6 * hidden + 3 * inter) + 2 * 4 * hidden
    if cache:
        heads = text.num_attention_heads
        kv = getattr(text, "num_key_value_heads", None) or heads
        head_dim = getattr(text, "head_dim", None) or hidden // heads
        per += 2 * text.num_hidden_layers * kv * head_dim * dtype_bytes
    return per


def token_budget(config: Any, dtype_bytes: int, free_bytes: int, *, fraction: float = 0.7) -> int:
    """Tokens per forward pass that fit in `fraction` of the free memory (with the
    continuation cache counted), rounded down to a multiple of 1024 and clamped to
    [1024, 2**20]."""
    tokens = int(fraction * free_bytes) // bytes_per_token(config, dtype_bytes, cache=True)
    return max(MIN_TOKENS, min(MAX_TOKENS, tokens // 1024 * 1024))


def cuda_token_budget(model: Any, device: str) -> int:
    """token_budget from the CUDA device's free memory, the weights already loaded."""
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    dtype_bytes = next(model.parameters()).element_size()
    return token_budget(model.config, dtype_bytes, free)
