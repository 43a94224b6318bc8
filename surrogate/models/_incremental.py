"""Option log-probabilities for a batch of growing transcripts, reusing KV caches.

Closed-loop play asks, trial after trial, "given everything so far, how likely is each
option?". Re-running the whole history each time would cost one full pass per trial. Here
each row keeps the keys and values of the tokens it has seen; a step processes only the
tokens that are new since the last one, for all rows in one forward pass.

Tokens are always the canonical tokenization of the current history (the one a fresh
scoring of the finished transcript would use). When appending text changes how the tail of
the history tokenizes (a merge across the join), the row rolls back to the longest common
prefix: its stale cache slots are masked out rather than removed, so rows never need to
agree on a cache length. Pad slots of shorter rows are masked the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._continue import Continuation, option_continuations


class IncrementalChoices:
    def __init__(self, scorer: Any, batch_size: int):
        import torch
        from transformers import DynamicCache

        if scorer.recurrent or scorer.sliding_window is not None:
            kind = "linear-attention (recurrent)" if scorer.recurrent else "sliding-window attention"
            raise NotImplementedError(
                f"{scorer.name}: closed-loop play continues a shared cache under per-row masks, which "
                f"models with {kind} layers do not support yet; score recorded sessions with replay "
                "(surrogate run) instead")
        self.scorer, self.B, self.torch = scorer, batch_size, torch
        self.device = scorer.device
        self.cache = DynamicCache(config=scorer.model.config)
        self.visible = torch.zeros(batch_size, 0, dtype=torch.bool, device=self.device)
        self.tokens: list[list[int]] = [[] for _ in range(batch_size)]
        self.slots: list[list[int]] = [[] for _ in range(batch_size)]
        self.processed = 0  # tokens run through the model (for reporting the saving)

    def step(self, contexts: Sequence[Sequence[int] | None],
             options: Sequence[Sequence[Sequence[int]] | None]) -> list[np.ndarray | None]:
        """log p(option | context) for each active row (contexts[i] None: row idle)."""
        with self.scorer.masked_attention():
            return self._step(contexts, options)

    def _step(self, contexts, options) -> list[np.ndarray | None]:
        torch = self.torch
        new: list[list[int]] = []
        for i in range(self.B):
            ctx = contexts[i]
            if ctx is None:
                new.append([])
                continue
            ctx = list(ctx)
            keep = _common_prefix(self.tokens[i], ctx)
            keep = min(keep, len(ctx) - 1)  # the last context token must run: its output is needed
            if keep < len(self.tokens[i]):
                self.visible[i, self.slots[i][keep:]] = False
                del self.tokens[i][keep:], self.slots[i][keep:]
            new.append(ctx[keep:])
        L = max(len(n) for n in new)
        S = self.visible.shape[1]
        ids = torch.zeros(self.B, L, dtype=torch.long)
        pos = torch.zeros(self.B, L, dtype=torch.long)
        real = torch.zeros(self.B, L, dtype=torch.bool)
        for i, n in enumerate(new):
            ids[i, : len(n)] = torch.tensor(n)
            pos[i, : len(n)] = torch.arange(len(self.tokens[i]), len(self.tokens[i]) + len(n))
            real[i, : len(n)] = True
        real = real.to(self.device)
        mask = torch.cat([self.visible, real], dim=1)
        with torch.inference_mode():
            hidden = self.scorer._body(input_ids=ids.to(self.device), position_ids=pos.to(self.device),
                                       attention_mask=mask.long(), use_cache=True,
                                       **{self.scorer._cache_kw: self.cache})[0]
        self.processed += sum(len(n) for n in new)
        self.visible = mask
        for i, n in enumerate(new):
            self.tokens[i] += n
            self.slots[i] += list(range(S, S + len(n)))
        out: list[np.ndarray | None] = [None] * self.B
        rows = [i for i in range(self.B) if contexts[i] is not None]
        last = hidden[rows, [len(new[i]) - 1 for i in rows]]
        kmax = max(len(options[i]) for i in rows)
        targets = torch.full((len(rows), kmax), -1, dtype=torch.long)
        for j, i in enumerate(rows):
            targets[j, : len(options[i])] = torch.tensor([o[0] for o in options[i]])
        with torch.inference_mode():
            first = self.scorer._gather_logprobs(last, targets.to(self.device)).cpu().numpy()
        rest = self._continuations(rows, options)
        for j, i in enumerate(rows):
            out[i] = np.array([first[j, k] + rest.get((i, k), 0.0) for k in range(len(options[i]))])
        return out

    def _continuations(self, rows: list[int], options) -> dict[tuple[int, int], float]:
        """Tokens 2.. of multi-token options: each sees its row's visible cache slots and its
        own earlier tokens (the shared kernel)."""
        S = self.visible.shape[1]
        items = [Continuation(row=i, key=(i, k), tokens=list(o), start=len(self.tokens[i]), context=self.visible[i])
                 for i in rows for k, o in enumerate(options[i]) if len(o) > 1]
        return option_continuations(self.scorer, items, cache=self.cache, rows=self.B, slots=S)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    differ = np.nonzero(np.asarray(a[:n]) != np.asarray(b[:n]))[0]
    return int(differ[0]) if len(differ) else n
