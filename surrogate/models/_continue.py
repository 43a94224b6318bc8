"""Two pieces every scoring path shares.

`response_totals`: per-token log-probabilities to per-response results (NLL sums, token
counts, NaN where a response has no scored token, top-1 hits) — the torch batch path, the
choice path and the vLLM backend all end here.

`option_continuations`: log p(tokens 2.. of a multi-token option | its context and its own
earlier tokens), for many options of many rows in one pass per round, continuing a
key/value cache under a tree mask: each continuation token sees the cache slots its context
covers and the option's earlier tokens, nothing else, and is dropped from the cache again.
Batch scoring (context = a transcript up to its response) and closed-loop play (context =
a row's visible slots) both call it. Models with recurrent layers keep one state for the
whole prefix, which cannot be branched under a mask: there every option gets a plain pass
over its context (exact, slower).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def response_totals(response_of: np.ndarray, token_nll: np.ndarray, n_responses: int,
                    hits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(NLL per response, tokens per response, top-1 per response) from the scored tokens'
    response indices and NLLs: the NLL is NaN and top-1 NaN for a response without a scored
    token (cut by the token budget); top-1 is 1 when every token was the most probable one,
    NaN everywhere when `hits` is None (not computed)."""
    seg = np.asarray(response_of, dtype=np.int64)
    # astype: numpy returns integers for an empty input even with float weights (a transcript
    # whose every response falls past the token budget).
    nll = np.bincount(seg, weights=np.asarray(token_nll, dtype=np.float64), minlength=n_responses).astype(np.float64)
    counts = np.bincount(seg, minlength=n_responses)
    nll[counts == 0] = np.nan
    if hits is None:
        top1 = np.full(n_responses, np.nan)
    else:
        h = np.bincount(seg, weights=np.asarray(hits, dtype=np.float64), minlength=n_responses).astype(np.float64)
        top1 = np.where(counts > 0, (h == counts).astype(float), np.nan)
    return nll, counts, top1


@dataclass(frozen=True)
class Continuation:
    """One multi-token option to continue: its cache row, a key to report it under, its
    tokens (two or more), the position of its first token, and which cache slots its context
    covers (a bool array over the slots; or, for plain passes, the context's token ids)."""

    row: int
    key: Hashable
    tokens: Sequence[int]
    start: int
    context: Any


def option_continuations(scorer: Any, items: Sequence[Continuation], *, cache: Any = None, rows: int = 0,
                         slots: int = 0, slot_positions: Any = None) -> dict[Hashable, float]:
    """Sum of log p over tokens 2.. of each item's option. With a cache (`rows` x `slots`
    slots, their positions `slot_positions` [rows, slots] for sliding-window masks), items
    run in rounds of up to `per_row` tokens per row; without one (recurrent models), each
    item's context (its token ids) and option run as plain passes, grouped by context."""
    if not items:
        return {}
    if cache is None:
        return _by_passes(scorer, items)
    with scorer.masked_attention():
        return _from_cache(scorer, items, cache, rows, slots, slot_positions)


def _from_cache(scorer, items, cache, B: int, S: int, slot_positions) -> dict[Hashable, float]:
    import torch

    per_row = max(64, min(2048, scorer.batch_tokens // max(1, B)))
    queues: list[list[Continuation]] = [[] for _ in range(B)]
    for item in items:
        queues[item.row].append(item)
    out: dict[Hashable, float] = {}
    while any(queues):
        chunks = []
        for q in queues:
            chunk, size = [], 0
            while q and (not chunk or size + len(q[0].tokens) - 1 <= per_row):
                size += len(q[0].tokens) - 1
                chunk.append(q.pop(0))
            chunks.append(chunk)
        C = max(sum(len(it.tokens) - 1 for it in ch) for ch in chunks)
        ids = torch.full((B, C), scorer.pad_id, dtype=torch.long)
        pos = torch.zeros(B, C, dtype=torch.long)
        nxt = torch.full((B, C), -1, dtype=torch.long)
        mask = torch.zeros(B, 1, C, S + C, dtype=torch.bool)
        mask[:, 0, torch.arange(C), S + torch.arange(C)] = True  # pad queries see themselves
        spans: list[tuple[Hashable, int, int, int]] = []
        for b, ch in enumerate(chunks):
            c = 0
            for it in ch:
                n = len(it.tokens) - 1
                ids[b, c : c + n] = torch.tensor(list(it.tokens[:-1]))
                nxt[b, c : c + n] = torch.tensor(list(it.tokens[1:]))
                pos[b, c : c + n] = it.start + torch.arange(n)
                context = torch.as_tensor(np.asarray(it.context.cpu() if hasattr(it.context, "cpu") else it.context),
                                          dtype=torch.bool)
                mask[b, 0, c : c + n, :S] = context[None, :]
                mask[b, 0, c : c + n, S + c : S + c + n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
                spans.append((it.key, b, c, c + n))
                c += n
        if slot_positions is None:
            slot_positions = torch.arange(S).expand(B, S)
        k_pos = torch.cat([torch.as_tensor(slot_positions), pos], 1)
        kw = dict(input_ids=ids.to(scorer.device), position_ids=pos.to(scorer.device),
                  attention_mask=scorer._device_masks(scorer.layer_masks(mask, pos, k_pos)), use_cache=True)
        with torch.inference_mode():
            if scorer.fast_path:
                flat = scorer._body(**kw, **{scorer._cache_kw: cache})[0].reshape(B * C, -1)
            else:
                flat = scorer.model(**kw, **{scorer._model_cache_kw: cache}).logits.reshape(B * C, -1)
            cache.crop(-C)  # drop the continuations again (negative: remove that many)
            lp = scorer._gather_logprobs(flat, nxt.reshape(B * C, 1).to(scorer.device),
                                         are_logits=not scorer.fast_path)[:, 0].reshape(B, C).cpu().numpy()
        for key, b, c0, c1 in spans:
            out[key] = float(lp[b, c0:c1].sum())
    return out


def _by_passes(scorer, items) -> dict[Hashable, float]:
    """Per context (items sharing their context ids), one padded pass over context + each
    option. Right padding: causal attention never sees it."""
    import torch

    groups: dict[tuple[int, ...], list[Continuation]] = {}
    for it in items:
        groups.setdefault(tuple(int(t) for t in it.context), []).append(it)
    out: dict[Hashable, float] = {}
    for context, opts in groups.items():
        first = len(context)
        width = first + max(len(it.tokens) for it in opts) - 1
        batch = torch.full((len(opts), width), scorer.pad_id, dtype=torch.long)
        rows, targets = [], []
        for j, it in enumerate(opts):
            seq = [*context, *it.tokens[:-1]]
            batch[j, : len(seq)] = torch.tensor(seq)
            rows += [j * width + first + m - 1 for m in range(1, len(it.tokens))]
            targets += list(it.tokens[1:])
        with torch.inference_mode():
            if scorer.fast_path:
                hidden = scorer._body(input_ids=batch.to(scorer.device), use_cache=False)[0]
            else:
                hidden = scorer.model(input_ids=batch.to(scorer.device), use_cache=False).logits
            picked = hidden.reshape(len(opts) * width, -1).index_select(0, torch.tensor(rows, device=scorer.device))
            lp = scorer._gather_logprobs(picked, torch.tensor(targets, device=scorer.device)[:, None],
                                         are_logits=not scorer.fast_path)[:, 0].cpu().numpy()
        a = 0
        for it in opts:
            out[it.key] = float(lp[a : a + len(it.tokens) - 1].sum())
            a += len(it.tokens) - 1
    return out
