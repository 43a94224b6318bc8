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


CHAT_DATE = "26 Jul 2024"  # the Llama-3.x templates' own fallback date


def _chat_kwargs(tokenizer: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"tokenize": False, "add_generation_prompt": False}
    template = tokenizer.chat_template or ""
    if "enable_thinking" in template:
        kw["enable_thinking"] = False  # score the answer, not a reasoning trace
    if "date_string" in template:
        # Llama-3.x templates write today's date into the system header; a fixed date keeps the
        # scored text (and so a resumed run's results) independent of the day it runs.
        kw["date_string"] = CHAT_DATE
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
        edges = sorted({p for span in spans for p in span})
        ids, offsets, special = self.forced_tokens(text, 0, edges, add_special)
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

    def forced_tokens(self, text: str, start: int, edges: list[int], add_special: bool):
        """Token ids, character offsets (in `text`) and special flags of text[start:],
        tokenized normally, then split at the response edges it straddles."""
        # The batch entry point releases the GIL (plain encode holds it), so encoding on a
        # prefetch thread overlaps with the model computing on the main one.
        enc = self._backend.encode_batch([text[start:]], add_special_tokens=add_special)[0]
        offsets = list(enc.offsets) if start == 0 else [(s + start, e + start) for s, e in enc.offsets]
        return self._force_boundaries(text, list(enc.ids), offsets, list(enc.special_tokens_mask),
                                      [e for e in edges if e > start])

    def _force_boundaries(self, text, ids, offsets, special, edges):
        if not edges or not ids:
            return ids, offsets, special
        edge_arr = np.asarray(edges)
        off = np.asarray(offsets, dtype=np.int64)
        # Tokens with an edge strictly inside them; found in one vectorised pass, so the
        # common case (no straddling token) costs no Python loop over the transcript.
        lo = np.searchsorted(edge_arr, off[:, 0], side="right")
        hi = np.searchsorted(edge_arr, off[:, 1], side="left")
        straddling = np.nonzero((hi > lo) & ~np.asarray(special, dtype=bool))[0]
        if not len(straddling):
            return ids, offsets, special
        out_ids, out_off, out_sp, done = [], [], [], 0
        for t in straddling.tolist():
            out_ids += ids[done:t]
            out_off += offsets[done:t]
            out_sp += special[done:t]
            s, e = offsets[t]
            cuts = [s, *edge_arr[lo[t]:hi[t]].tolist(), e]
            for a, b, piece_ids in self._split(text, ids[t], cuts):
                out_ids.extend(piece_ids)
                out_off.extend([(a, b)] * len(piece_ids))
                out_sp.extend([0] * len(piece_ids))
            done = t + 1
        return out_ids + ids[done:], out_off + offsets[done:], out_sp + special[done:]

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


class GrowingContext:
    """The context tokens of one transcript that grows at its end, trial after trial.

    Closed-loop play needs, at every trial, the tokens before the newest response: exactly
    what scoring the finished transcript will condition that response on. Encoding the
    whole history each trial is O(T^2) tokenizer work. Here each trial re-tokenizes only a
    window: from a token start at least `margin` characters before the previous context's
    end (a line start when there is one) to the end of the text; the tokens before it are
    kept. The window is accepted only if it reproduces the previous context's tokens it
    overlaps, so every context extends the one before with its last response starting a
    token. Otherwise that trial is encoded in full. `agrees_with` then checks the chain
    against one full encoding of the finished transcript, which makes every trial's context
    equal to the finished transcript's (what teacher-forced scoring would use).
    """

    def __init__(self, encoder: TranscriptEncoder, *, window: bool = True, margin: int = 64):
        self.encoder, self.window, self.margin = encoder, window, margin
        self.text = ""
        self.ids = np.empty(0, dtype=np.int64)
        self.starts = np.empty(0, dtype=np.int64)
        self.special = np.empty(0, dtype=bool)
        self.lengths: list[int] = []  # context length at each trial
        self.consistent = True  # every context extended the previous one
        self.encoded_chars = 0
        self.full_encodings = 0

    def context(self, transcript: Transcript, system: str | None = None) -> np.ndarray:
        """Token ids before the transcript's last response."""
        text, spans, add_special = self.encoder.text_and_spans(transcript, system)
        edges = sorted({p for span in spans for p in span})
        got = self._windowed(text, edges) if self.window and self.lengths else None
        if got is None:
            got = self._encode(text, 0, edges, add_special)
            self.full_encodings += 1
        ids, starts, special = got
        start = spans[-1][0]
        k = int(np.argmax((starts >= start) & ~special)) if len(starts) else 0
        if not len(starts) or starts[k] != start or special[k]:
            raise EncodingError(f"the last response ({text[start:spans[-1][1]]!r}) does not start a token")
        if self.lengths:
            n = self.lengths[-1]
            self.consistent &= bool(k > n and np.array_equal(ids[:n], self.ids[:n]) and starts[n] == self._end)
        self.text, self.ids, self.starts, self.special, self._end = text, ids, starts, special, start
        self.lengths.append(k)
        return ids[:k]

    def agrees_with(self, finished: Transcript, system: str | None = None) -> bool:
        """Whether every context so far equals the finished transcript's context of the
        same response (one full encoding of the finished transcript)."""
        if not self.consistent:
            return False
        full = self.encoder.encode(finished, system)
        firsts = [int(np.argmax(full.response_of == r)) for r in range(full.n_responses)]
        offset = full.n_responses - len(self.lengths)  # responses before play began (none today)
        n = self.lengths[-1] if self.lengths else 0
        return (firsts[offset:] == self.lengths
                and np.array_equal(full.ids[:n], self.ids[:n]))

    def _windowed(self, text: str, edges: list[int]):
        end, n = self._end, self.lengths[-1]
        if text[:end] != self.text[:end]:
            return None  # an earlier part of the text changed: not a growing transcript
        candidates = np.nonzero((self.starts[:n] <= end - self.margin) & ~self.special[:n])[0]
        candidates = candidates[candidates > 0]
        candidates = candidates[self.starts[candidates] != self.starts[candidates - 1]]  # not mid-split
        if not len(candidates):
            return None
        # Restart points tried in turn: a line start, a token that opens with a space (where
        # a Metaspace pipeline adds no prefix), any token start.
        recent = candidates[-64:]
        before = np.fromiter((text[self.starts[j] - 1] for j in recent), "<U1", len(recent))
        opens = np.fromiter((text[self.starts[j]] for j in recent), "<U1", len(recent))
        tried: set[int] = set()
        for pick in (recent[before == "\n"], recent[opens == " "], candidates):
            if not len(pick) or int(pick[-1]) in tried:
                continue
            j = int(pick[-1])
            tried.add(j)
            got = self._window_from(j, text, edges)
            if got is not None:
                return got
        return None

    def _window_from(self, j: int, text: str, edges: list[int]):
        end, n = self._end, self.lengths[-1]
        a = int(self.starts[j])
        ids, starts, special = self._encode(text, a, edges, False)
        m = n - j  # previous context tokens the window must reproduce
        if (len(ids) <= m or starts[m] != end or not np.array_equal(ids[:m], self.ids[j:n])
                or not np.array_equal(starts[:m], self.starts[j:n])):
            return None
        return (np.concatenate([self.ids[:j], ids]), np.concatenate([self.starts[:j], starts]),
                np.concatenate([self.special[:j], special]))

    def _encode(self, text: str, a: int, edges: list[int], add_special: bool):
        ids, offsets, special = self.encoder.forced_tokens(text, a, edges, add_special)
        self.encoded_chars += len(text) - a
        return (np.asarray(ids, dtype=np.int64), np.asarray([s for s, _ in offsets], dtype=np.int64),
                np.asarray(special, dtype=bool))
