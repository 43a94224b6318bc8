"""Load-time probes: each fast path is checked against the plain computation on a random
probe before it is used, and left off (with a log line) when it does not reproduce it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ._encode import Encoded

log = logging.getLogger(__name__)


def agrees(scorer: Any, ours: Callable[[], Any], theirs: Callable[[], Any], what: str) -> bool:
    """Whether `ours()` reproduces `theirs()` (float32: 1e-4; lower precision: 2e-2). A fast
    path that raises is simply not available."""
    import torch

    with torch.inference_mode():
        try:
            a = ours().float()
        except Exception as e:  # noqa: BLE001 - an unusual model: use the plain path
            log.info("%s unavailable: %s", what, e)
            return False
        b = theirs().float()
    tol = 1e-4 if scorer.dtype == torch.float32 else 2e-2
    return bool(torch.allclose(a, b, atol=tol, rtol=tol))


def _tokens(scorer: Any, shape: tuple[int, ...], seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, scorer._head.weight.shape[0], shape, generator=gen)


def fast_path(scorer: Any) -> bool:
    """Does body + head at gathered rows reproduce the model's own logits?"""
    import torch

    if scorer._body is None or scorer._head is None:
        return False
    T = 12
    probe = _tokens(scorer, (2, T), 0).to(scorer.device)
    rows = [np.array([2, 5, 11]), np.array([0, 7])]
    flat = torch.from_numpy(np.concatenate([b * T + r for b, r in enumerate(rows)])).to(scorer.device)
    return agrees(
        scorer,
        lambda: scorer._logits(scorer._hidden(probe, flat, rows).reshape(2 * T, -1).index_select(0, flat)),
        lambda: scorer.model(input_ids=probe, use_cache=False).logits.reshape(2 * T, -1).index_select(0, flat),
        "fast path")


def prefix_reuse(scorer: Any) -> bool:
    """Does running a shared prefix once and repeating its cache reproduce a plain pass?
    (Some caches, e.g. of linear-attention layers, cannot be repeated over a batch.)"""
    import torch

    if scorer._body is None:
        return False
    prefix = _tokens(scorer, (1, 8), 1)
    probe = torch.cat([prefix.repeat(2, 1), _tokens(scorer, (2, 6), 11)], 1).to(scorer.device)
    return agrees(scorer, lambda: scorer._hidden_after_prefix(probe, 8),
                  lambda: scorer._body(input_ids=probe, use_cache=False)[0][:, 8:], "prefix reuse")


def packing(scorer: Any) -> bool:
    """Does a packed pass reproduce separate passes? (Linear-attention layers, for one, may
    not honour the boundaries.)"""
    import torch

    items = [Encoded(ids=_tokens(scorer, (n,), 2 + n).numpy(), response_of=np.zeros(n, dtype=np.int32),
                     n_responses=1) for n in (9, 5)]
    targets = [np.arange(1, len(e.ids)) for e in items]
    return agrees(scorer, lambda: scorer._packed_hidden(items, targets),
                  lambda: torch.cat([scorer._body(input_ids=torch.from_numpy(e.ids)[None].to(scorer.device),
                                                  use_cache=False)[0][0, :-1] for e in items]), "packed batches")
