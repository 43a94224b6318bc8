"""Training windows from transcripts, labelled by the scorer's own response-token rule.

The encoder is the scorer's `TranscriptEncoder`: the tokens that carry the loss are exactly
the tokens the scorer would sum into a response's NLL (same boundaries, same chat template),
so training and evaluation cannot disagree about what a response is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data import Transcript
from ..models import TranscriptEncoder
from ._train import Example


def response_windows(encoder: TranscriptEncoder, transcript: Transcript, window_tokens: int,
                     *, system: str | None = None, all_tokens: bool = False) -> list[Example]:
    """Consecutive windows of at most window_tokens tokens. Labels: the tokens of responses that
    lie wholly inside the window (as the scorer's token budget keeps only whole responses),
    or every token with all_tokens=True (language modelling on the whole transcript)."""
    enc = encoder.encode(transcript, system=system)
    out = []
    for a in range(0, len(enc.ids), window_tokens):
        ids = enc.ids[a : a + window_tokens]
        resp = enc.response_of[a : a + window_tokens]
        if all_tokens:
            labels = ids.copy()
        else:
            cut = set(enc.response_of[:a][enc.response_of[:a] >= 0].tolist())
            cut |= set(enc.response_of[a + window_tokens:][enc.response_of[a + window_tokens:] >= 0].tolist())
            keep = (resp >= 0) & ~np.isin(resp, list(cut))
            if not keep.any():
                continue
            labels = np.where(keep, ids, -100)
        if len(ids) > 1:
            out.append(Example(ids=ids.astype(np.int64), labels=labels.astype(np.int64)))
    return out


def with_responses(transcript: Transcript, answers: Sequence[str]) -> Transcript:
    """The same transcript with each scored response's content replaced by `answers[i]`."""
    if len(answers) != len(transcript.spans):
        raise ValueError(f"{len(answers)} answers for {len(transcript.spans)} responses")
    text, spans, pieces, cursor, pos = transcript.text, [], [], 0, 0
    for (s, e), answer in zip(transcript.spans, answers):
        pieces.append(text[cursor:s])
        pos += s - cursor
        pieces.append(answer)
        spans.append((pos, pos + len(answer)))
        pos += len(answer)
        cursor = e
    pieces.append(text[cursor:])
    return transcript.model_copy(update={"text": "".join(pieces), "spans": tuple(spans),
                                         "all_responses": tuple(answers)})
