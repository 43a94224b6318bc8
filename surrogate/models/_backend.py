"""What a scorer backend is: requests in, per-response NLLs out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ..data import Transcript


class ScoreRequest(BaseModel):
    """One transcript to score, with its conditioning already rendered into it.

    `system` is a system message for chat-template scoring (the `system` persona strategy);
    a backend that cannot use one must refuse the request rather than drop it.
    """

    model_config = ConfigDict(frozen=True)
    transcript: Transcript
    system: str | None = None
    max_tokens: int | None = None  # token budget; the backend also caps at its context length


class ScoreResult(BaseModel):
    """Per scored response: summed NLL (nats) and token count, aligned with transcript.spans.

    A response the backend could not score (cut by the token budget) has nll NaN,
    n_tokens 0 and its index in `token_truncated`.
    """

    model_config = ConfigDict(frozen=True)
    nll: list[float]
    n_tokens: list[int]
    n_input_tokens: int
    token_truncated: list[int] = []
    # Per response: 1.0 if each of its tokens was the model's most probable next token (the
    # paper's accuracy where a response is one token), 0.0 if not, NaN where not scored or
    # where the backend does not compute it.
    top1: list[float] | None = None


class ChoiceRequest(ScoreRequest):
    """A transcript plus, for each scored response, the closed set of options to score at
    its position (the recorded response must be one of them)."""

    options: tuple[tuple[str, ...], ...]


class ChoiceResult(ScoreResult):
    """ScoreResult plus, per response, log p(option | everything before) for each option
    (exact, all of its tokens); NaN rows for responses cut by the token budget."""

    option_logprobs: list[list[float]]


@runtime_checkable
class ScorerBackend(Protocol):
    """Anything that scores transcripts: the HF backend, a deterministic test backend, an
    oracle built from a generative cognitive model."""

    @property
    def name(self) -> str: ...

    @property
    def chat(self) -> bool:
        """Whether transcripts go through a chat template (so a system-message persona can
        be given)."""
        ...

    def describe(self) -> dict[str, Any]:
        """How it runs, for run.json (device, dtype, which fast paths are on); not part of
        the result key."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What determines the scores (weights, tokenizer, template, dtype); keys resumes."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> Iterator[tuple[int, ScoreResult]]:
        """Yield (index into requests, result) as each is done, in any order."""
        ...


@runtime_checkable
class ChoiceBackend(ScorerBackend, Protocol):
    """A backend that can also score every option of a closed set at each response."""

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> Iterator[tuple[int, ChoiceResult]]: ...


class IncrementalSession(Protocol):
    """One batch of growing transcripts in closed-loop play (see `IncrementalScorer`)."""

    processed: int  # tokens run through the model so far

    def step(self, contexts: Sequence[Sequence[int] | None],
             options: Sequence[Sequence[Sequence[int]] | None]) -> list[Any]:
        """Per row: log p(option | context) for each option (None: the row is idle)."""
        ...


@runtime_checkable
class IncrementalScorer(ChoiceBackend, Protocol):
    """A backend that can play programmed experiments closed loop: it encodes a growing
    transcript a window at a time, tokenizes options, and scores every option of many
    growing transcripts per step, reusing each one's key/value cache. The HF backend is one;
    the vLLM backend computes prompt log-probabilities only and is not."""

    def growing_context(self, *, window: bool = True) -> Any:
        """A fresh GrowingContext over this backend's encoder (the tokens before the newest
        response, re-tokenizing only a window each trial when `window`)."""
        ...

    def option_ids(self, option: str) -> list[int]:
        """The token ids of an option's text on its own."""
        ...

    def incremental_choices(self, batch_size: int) -> IncrementalSession:
        """A session for `batch_size` growing transcripts; raises NotImplementedError for
        models whose cache cannot be branched (sliding-window or recurrent layers)."""
        ...


def score_all(backend: ScorerBackend, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
    """All results, in request order."""
    out: list[ScoreResult | None] = [None] * len(requests)
    for i, result in backend.score(requests):
        out[i] = result
    missing = [i for i, r in enumerate(out) if r is None]
    if missing:
        raise RuntimeError(f"{backend.name} returned no result for requests {missing[:10]}")
    return out  # type: ignore[return-value]
