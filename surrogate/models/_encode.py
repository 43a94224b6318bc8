"""From a transcript with character spans to token ids with response labels.

The boundary rule
-----------------
Every response edge (the first and one-past-last character of a response's content) is a
token boundary, whatever the tokenizer would merge:

1. The text is tokenized once, normally (same ids as ``tokenizer(text)``), with exact
   character offsets.
2. If no token straddles an edge, that tokenization is used unchanged. This is the common
   case and is bit-identical to naive tokenization, hence to the paper's procedure.
3. A token that straddles an edge (``"R>>"``, ``"<<R"``, ``"x>>."``) is replaced by the
   tokens of its pieces on either side of the edge, each piece tokenized on its own. The
   replacement is checked to decode to the same string as the token it replaces; if it does
   not (a tokenizer that adds a prefix space to every piece), the pieces are tokenized with
   the tokenizer's model directly, and if that fails too, encoding stops with an error.

A token belongs to response r when its characters lie inside r's span. Context tokens are
never scored, and a response's NLL is the sum over exactly the tokens that spell it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import Transcript

_SENTINEL = re.compile("\ue000(\\d+)\ue001")


class EncodingError(ValueError):
    """A transcript that cannot be tokenized with exact response boundaries."""


@dataclass(frozen=True)
class Encoded:
    """Token ids and, per token, the response it belongs to (-1: context)."""

    ids: np.ndarray  # int64 [T]
    response_of: np.ndarray  # int32 [T]
    n_responses: int
    token_truncated: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)


def _untrimmed(backend: Any) -> Any:
    """A copy of a Rust tokenizer whose offsets are not trimmed of white space.

    Trimmed offsets (GPT-2 style ByteLevel post-processors) hide which characters a token
    really covers; untrimming changes offsets only, never ids.
    """
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())

    def untrim(node: Any) -> None:
        if isinstance(node, dict):
            if "trim_offsets" in node:
                node["trim_offsets"] = False
            for v in node.values():
                untrim(v)
        elif isinstance(node, list):
            for v in node:
                untrim(v)

    untrim(spec.get("post_processor"))
    return Tokenizer.from_str(json.dumps(spec))


def _chat_kwargs(tokenizer: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"tokenize": False, "add_generation_prompt": False}
    if "enable_thinking" in (tokenizer.chat_template or ""):
        kw["enable_thinking"] = False  # score the answer, not a reasoning trace
    return kw


def chat_messages(transcript: Transcript, system: str | None = None) -> list[dict[str, str]]:
    """Human responses become assistant turns, everything between them user turns.

    As in the paper, a "." is appended to the text so the conversation ends on a user turn.
    """
    text, msgs = transcript.text, []
    if system:
        msgs.append({"role": "system", "content": system})
    cursor = 0
    for start, end in transcript.spans:
        user = text[cursor : start - 2]
        if user:
            msgs.append({"role": "user", "content": user})
        msgs.append({"role": "assistant", "content": text[start:end]})
        cursor = end + 2
    msgs.append({"role": "user", "content": text[cursor:] + "."})
    return msgs


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The chat-template string and the character span of each assistant content in it.

    Spans come from rendering the same conversation with numbered sentinels in place of the
    assistant contents, so a response is never located by searching for its text.
    """
    kw = _chat_kwargs(tokenizer)
    contents = [m["content"] for m in messages if m["role"] == "assistant"]
    skeleton_msgs, k = [], 0
    for m in messages:
        if m["role"] == "assistant":
            m = {"role": "assistant", "content": f"\ue000{k}\ue001"}
            k += 1
        skeleton_msgs.append(m)
    skeleton = tokenizer.apply_chat_template(skeleton_msgs, **kw)
    actual = tokenizer.apply_chat_template(messages, **kw)
    parts = _SENTINEL.split(skeleton)
    order = [int(x) for x in parts[1::2]]
    if order != list(range(len(contents))):
        raise EncodingError("the chat template dropped or reordered assistant turns; "
                            "cannot score through it")
    for transform in (lambda c: c, str.strip):
        pieces, spans, pos = [], [], 0
        for i, between in enumerate(parts[0::2]):
            pieces.append(between)
            pos += len(between)
            if i < len(contents):
                c = transform(contents[i])
                spans.append((pos, pos + len(c)))
                pieces.append(c)
                pos += len(c)
        if "".join(pieces) == actual:
            return actual, spans
    raise EncodingError("the chat template rewrites assistant contents beyond stripping white "
                        "space; cannot locate responses in it")


class TranscriptEncoder:
    """Tokenizes transcripts (plainly or through the chat template) with exact boundaries."""

    def __init__(self, tokenizer: Any, *, chat: bool):
        if not getattr(tokenizer, "is_fast", False):
            raise EncodingError(f"{type(tokenizer).__name__} is not a fast tokenizer; exact "
                                "response boundaries need character offsets")
        if chat and not tokenizer.chat_template:
            raise EncodingError("chat scoring was requested but the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.chat = chat
        self._backend = _untrimmed(tokenizer.backend_tokenizer)
        self._model_alphabet = _model_alphabet(tokenizer.backend_tokenizer)

    def text_and_spans(self, transcript: Transcript, system: str | None = None) -> tuple[str, list[tuple[int, int]], bool]:
        """The string that is tokenized, the response spans in it, and add_special_tokens."""
        if not self.chat:
            if system:
                raise EncodingError("a system-message persona needs chat-template scoring "
                                    "(--chat on, or auto with a chat model)")
            return transcript.text, list(transcript.spans), True
        text, spans = render_chat(self.tokenizer, chat_messages(transcript, system))
        bos = self.tokenizer.bos_token
        # A template that writes the BOS itself must not get a second one from the tokenizer.
        return text, spans, not (bos and text.startswith(bos))

    def encode(self, transcript: Transcript, system: str | None = None,
               max_tokens: int | None = None) -> Encoded:
        text, spans, add_special = self.text_and_spans(transcript, system)
        enc = self._backend.encode(text, add_special_tokens=add_special)
        ids = list(enc.ids)
        offsets = list(enc.offsets)
        special = list(enc.special_tokens_mask)
        edges = sorted({p for span in spans for p in span})
        ids, offsets, special = self._force_boundaries(text, ids, offsets, special, edges)
        response_of = _assign(offsets, special, spans)
        counts = np.bincount(response_of[response_of >= 0], minlength=len(spans))
        if len(spans) and counts.min() == 0:
            r = int(np.argmin(counts))
            raise EncodingError(f"response {r} ({text[spans[r][0]:spans[r][1]]!r}) has no tokens")
        arr = np.asarray(ids, dtype=np.int64)
        truncated: tuple[int, ...] = ()
        if max_tokens is not None and len(arr) > max_tokens:
            arr, response_of, truncated = _cut(arr, response_of, max_tokens)
        return Encoded(ids=arr, response_of=response_of, n_responses=len(spans),
                       token_truncated=truncated)

    def _force_boundaries(self, text, ids, offsets, special, edges):
        if not edges:
            return ids, offsets, special
        edge_arr = np.asarray(edges)
        out_ids, out_off, out_sp = [], [], []
        for tid, (s, e), sp in zip(ids, offsets, special):
            inner = [] if sp else edge_arr[(edge_arr > s) & (edge_arr < e)].tolist()
            if not inner:
                out_ids.append(tid)
                out_off.append((s, e))
                out_sp.append(sp)
                continue
            cuts = [s, *inner, e]
            for a, b, piece_ids in self._split(text, tid, cuts):
                out_ids.extend(piece_ids)
                out_off.extend([(a, b)] * len(piece_ids))
                out_sp.extend([0] * len(piece_ids))
        return out_ids, out_off, out_sp

    def _split(self, text: str, tid: int, cuts: list[int]) -> list[tuple[int, int, list[int]]]:
        """Tokens of each piece of a straddling token, checked to spell the same string."""
        bounds = list(zip(cuts[:-1], cuts[1:]))
        want = self._backend.decode([tid], skip_special_tokens=False)
        for tokenize in self._piece_tokenizers(prefer_model=False):
            pieces = [(a, b, list(tokenize(text[a:b]))) for a, b in bounds]
            flat = [i for _, _, p in pieces for i in p]
            if None not in flat and self._backend.decode(flat, skip_special_tokens=False) == want:
                return pieces
        s, e = cuts[0], cuts[-1]
        raise EncodingError(f"cannot split the token {self._backend.id_to_token(tid)!r} at a "
                            f"response edge near {text[max(0, s - 20):e + 20]!r}")

    def piece_ids(self, piece: str) -> list[int]:
        """Token ids of a response text on its own (an option of a closed set)."""
        for tokenize in self._piece_tokenizers(prefer_model=True):
            ids = list(tokenize(piece))
            if ids and None not in ids and self._backend.decode(ids, skip_special_tokens=False) == piece:
                return ids
        raise EncodingError(f"cannot tokenize {piece!r} on its own without changing it")

    def _piece_tokenizers(self, *, prefer_model: bool):
        """Ways to tokenize a piece alone. A Metaspace pipeline prefixes every piece with '▁';
        when the check cannot see that (a lone piece, whose decoder strips the prefix), the
        BPE model is asked first."""
        def pipeline(piece: str) -> list[int]:
            return self._backend.encode(piece, add_special_tokens=False).ids

        if self._model_alphabet is None:
            return [pipeline]
        return [self._model_tokenize, pipeline] if prefer_model else [pipeline, self._model_tokenize]

    def _model_tokenize(self, piece: str) -> list[int | None]:
        """The BPE model alone on the piece's words, without the prefix the pipeline adds."""
        ids: list[int | None] = []
        for word in self._model_alphabet(piece):
            ids += [self._backend.token_to_id(t.value) for t in self._backend.model.tokenize(word)]
        return ids


def _model_alphabet(backend: Any):
    """For Metaspace tokenizers: the words a piece becomes for the BPE model (spaces as '▁',
    split before each '▁' when the pre-tokenizer splits), else None."""
    pre = json.loads(backend.to_str()).get("pre_tokenizer") or {}
    for node in pre.get("pretokenizers", [pre]):
        if node.get("type") == "Metaspace":
            repl, split = node.get("replacement", "\u2581"), node.get("split", True)

            def words(piece: str) -> list[str]:
                s = piece.replace(" ", repl)
                return [w for w in re.split(f"(?={re.escape(repl)})", s) if w] if split else [s]

            return words
    return None


def _assign(offsets, special, spans) -> np.ndarray:
    """Response index of each token (-1 for context and special tokens)."""
    starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
    ends = np.fromiter((o[1] for o in offsets), dtype=np.int64, count=len(offsets))
    out = np.full(len(offsets), -1, dtype=np.int32)
    if not spans:
        return out
    span_starts = np.asarray([s for s, _ in spans])
    span_ends = np.asarray([e for _, e in spans])
    r = np.searchsorted(span_starts, starts, side="right") - 1
    ok = (r >= 0) & ~np.asarray(special, dtype=bool)
    rr = np.clip(r, 0, None)
    ok &= (starts >= span_starts[rr]) & (ends <= span_ends[rr]) & (starts < span_ends[rr])
    out[ok] = r[ok]
    return out


def _cut(ids: np.ndarray, response_of: np.ndarray, max_tokens: int):
    """Keep the first max_tokens tokens; a response not wholly inside is dropped."""
    kept_ids, kept_resp = ids[:max_tokens], response_of[:max_tokens].copy()
    cut_responses = set(response_of[max_tokens:][response_of[max_tokens:] >= 0].tolist())
    if cut_responses:
        kept_resp[np.isin(kept_resp, list(cut_responses))] = -1
    all_r = set(response_of[response_of >= 0].tolist())
    present = set(kept_resp[kept_resp >= 0].tolist())
    return kept_ids, kept_resp, tuple(sorted(all_r - present))
