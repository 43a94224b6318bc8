"""Tokenizer-free transcripts: the text plus the character span of every `<< >>` response.

The Psych-201 paper cleans each transcript before scoring (cut to 32,768 characters, a few
marker fixes, an unclosed trailing response dropped, white space before `>>` removed). We
reproduce that exactly, but parse strictly: anything the paper would silently mis-score
(nested or unbalanced markers, empty responses) is an error here, and whatever the cut
removes is counted, never silently lost.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

OPEN, CLOSE = "<<", ">>"

# The paper's marker fixes, applied in this order after the character cut.
PAPER_FIXES: tuple[tuple[str, str], ...] = (
    ("<<skip>>", "<<skip>>."),
    ("<<-", "<< -"),
    ("<<think>>", "<< think>>"),
    ("More Details >>", "More Details ->"),
)
_SPACE_BEFORE_CLOSE = re.compile(r"\s+(?=>>)")
_MARKER = re.compile(r"<<|>>")


class MarkerError(ValueError):
    """A transcript whose `<< >>` markers cannot be read as a sequence of responses."""


class TruncationConfig(BaseModel):
    """How a transcript is cut before scoring. The defaults are the paper's."""

    model_config = ConfigDict(frozen=True)

    max_chars: int | None = Field(
        32768, ge=1, description="Keep the first N characters (None: no character cut)."
    )
    count_prefix: bool = Field(
        True,
        description="The persona prefix counts towards max_chars, as in the paper. "
        "False cuts the transcript alone, so every persona scores the same responses.",
    )
    paper_fixes: bool = Field(
        True, description="Apply the paper's marker fixes and drop white space before '>>'."
    )
    max_tokens: int | None = Field(
        None,
        ge=2,
        description="Token budget per sequence (None: the model's context length). "
        "Responses past it are recorded as truncated.",
    )


class Transcript(BaseModel):
    """A cleaned transcript ready to score.

    `spans` are the character spans (start, end) of the scored responses' contents in
    `text` (without the markers). `all_responses` are the contents of every response of the
    uncut transcript; the first `len(spans)` of them are scored, the rest were cut.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    spans: tuple[tuple[int, int], ...]
    all_responses: tuple[str, ...]
    prefix_chars: int = 0
    chars_cut: int = 0

    @property
    def responses(self) -> tuple[str, ...]:
        return tuple(self.text[s:e] for s, e in self.spans)

    @property
    def n_truncated(self) -> int:
        return len(self.all_responses) - len(self.spans)


def paper_clean(text: str, max_chars: int | None, fixes: bool = True) -> str:
    """The paper's cleaning step: cut, fix markers, drop an unclosed trailing response."""
    t = text if max_chars is None else text[:max_chars]
    if fixes:
        for old, new in PAPER_FIXES:
            t = t.replace(old, new)
    if t.count(OPEN) > t.count(CLOSE):
        t = t[: t.rfind(OPEN)]
    return _SPACE_BEFORE_CLOSE.sub("", t) if fixes else t


def _fix_markers(text: str) -> str:
    for old, new in PAPER_FIXES:
        text = text.replace(old, new)
    return _SPACE_BEFORE_CLOSE.sub("", text)


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    snippet = text[max(0, pos - 30) : pos + 30].replace("\n", "\\n")
    return f"character {pos} (transcript line {line}, near '{snippet}')"


def parse_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the `<< >>` response contents; strict about marker structure."""
    spans: list[tuple[int, int]] = []
    open_at: int | None = None
    for m in _MARKER.finditer(text):
        if m.group() == OPEN:
            if open_at is not None:
                raise MarkerError(f"nested '<<' at {_where(text, m.start())}")
            open_at = m.end()
        else:
            if open_at is None:
                raise MarkerError(f"'>>' without an opening '<<' at {_where(text, m.start())}")
            if not text[open_at : m.start()].strip():
                raise MarkerError(f"empty response at {_where(text, open_at - 2)}")
            spans.append((open_at, m.start()))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"unclosed '<<' at {_where(text, open_at - 2)}")
    return spans


def check_no_markers(text: str, what: str) -> None:
    """Conditioning text must not contain markers: they would be read as responses."""
    m = _MARKER.search(text)
    if m:
        raise MarkerError(f"{what} contains the marker '{m.group()}' at {_where(text, m.start())}")


def prepare_transcript(raw: str, prefix: str = "", config: TruncationConfig | None = None) -> Transcript:
    """Clean and cut `prefix + raw` as the paper does, and locate every response.

    The uncut transcript is parsed strictly first, so malformed input is an error even
    when the malformed part would have been cut away.
    """
    config = config or TruncationConfig()
    check_no_markers(prefix, "the persona prefix")
    full = _fix_markers(prefix + raw) if config.paper_fixes else prefix + raw
    all_spans = parse_spans(full)
    all_responses = tuple(full[s:e] for s, e in all_spans)

    if config.max_chars is None:
        text = full
    elif config.count_prefix:
        text = paper_clean(prefix + raw, config.max_chars, config.paper_fixes)
    else:
        text = prefix + paper_clean(raw, config.max_chars, config.paper_fixes)
    spans = parse_spans(text) if text is not full else all_spans
    kept = tuple(text[s:e] for s, e in spans)
    if kept != all_responses[: len(kept)]:
        # Cutting only removes a tail, so this means the fixes interacted with the cut.
        i = next(i for i, (a, b) in enumerate(zip(kept, all_responses)) if a != b)
        raise MarkerError(
            f"response {i} reads {kept[i]!r} after the character cut but {all_responses[i]!r} "
            "without it; the cut falls inside a marker fix"
        )
    return Transcript(
        text=text,
        spans=tuple(spans),
        all_responses=all_responses,
        prefix_chars=len(prefix),
        chars_cut=max(0, len(full) - len(text)),
    )
