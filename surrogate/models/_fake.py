"""A deterministic, torch-free backend for tests and dry runs of a pipeline.

Scores are a fixed function of the model name, the response, and the 64 characters before
it (which includes any persona text right before the first responses), so they are
reproducible, differ between models and conditions, and cost nothing to compute.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from ._backend import ScoreRequest, ScoreResult


class HashBackend:
    """Per-response NLL in [0.5, 4.5) nats derived from a hash; one 'token' per character."""

    def __init__(self, name: str = "hash", *, chat: bool = False, fail_after: int | None = None):
        self._name, self.chat, self.fail_after = name, chat, fail_after
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def fingerprint(self) -> dict[str, Any]:
        return {"model": f"hash:{self._name}", "chat": self.chat}

    def describe(self) -> dict[str, Any]:
        return {"device": None, "dtype": None}

    def score(self, requests: Sequence[ScoreRequest]) -> Iterator[tuple[int, ScoreResult]]:
        for i, req in enumerate(requests):
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise RuntimeError(f"{self._name}: simulated crash after {self.calls} results")
            self.calls += 1
            t = req.transcript
            nll = []
            for s, e in t.spans:
                context = (req.system or "") + t.text[max(0, s - 64) : s]
                h = hashlib.sha256(f"{self._name}|{context}|{t.text[s:e]}".encode()).digest()
                nll.append(0.5 + 4.0 * int.from_bytes(h[:4], "little") / 2**32)
            yield i, ScoreResult(nll=nll, n_tokens=[e - s for s, e in t.spans],
                                 n_input_tokens=len(t.text))
