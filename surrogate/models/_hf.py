"""The Hugging Face scorer: exact per-response NLLs, computed only where they are needed.

One teacher-forced pass per transcript, with three savings over the naive procedure:
the LM head runs only at positions whose next token is a response token (gathered hidden
states), log-softmax runs in float32 on chunks of those positions only, and per-response
sums are one scatter-add. Transcripts are batched by length under a token budget, longest
first so an out-of-memory shows in the first batch. Peak memory is bounded by the batch's
hidden states and a fixed-size logits chunk, never by sequence length x vocabulary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from . import _probes, _rows
from ._backend import ChoiceRequest, ChoiceResult, ScoreRequest, ScoreResult
from ._continue import Continuation, option_continuations, response_totals
from ._encode import Encoded, TranscriptEncoder
from ._loading import _dir_digest, load_hf, resolve_attention, resolve_device, weights_fingerprint, tokenizer_digest  # noqa: F401
from ._spec import ModelSpec

log = logging.getLogger(__name__)

# Bytes of float32 logits materialised at once (per chunk of scored positions). On CPU a
# chunk that stays in cache makes the softmax compute-bound instead of memory-bound.
LOGITS_CHUNK_BYTES = {"cpu": 8 * 2**20, "cuda": 256 * 2**20}
# Requests are encoded and batched in windows of this many batches' tokens: enough for
# length-bucketing to pack batches well, few enough to bound host memory on huge runs.
WINDOW_BATCHES = 8
MIN_WINDOW_TOKENS = 2**16


class HFScorer:
    """A ScorerBackend over a loaded transformers causal LM."""

    def __init__(self, model: Any, tokenizer: Any, *, spec: ModelSpec, device: str):
        import torch

        self.model, self.tokenizer, self.spec, self.device = model, tokenizer, spec, device
        if spec.chat == "auto":
            self.chat = bool(tokenizer.chat_template)
        else:
            self.chat = spec.chat == "on"
        self.encoder = TranscriptEncoder(tokenizer, chat=self.chat)
        self.dtype = next(model.parameters()).dtype
        # On CPU one transcript per pass is fastest (activations stay in cache); on GPU the
        # budget is sized once from the memory left after loading the weights.
        if spec.batch_tokens:
            self.batch_tokens = spec.batch_tokens
        elif device.startswith("cuda"):
            from ._budget import cuda_token_budget

            self.batch_tokens = cuda_token_budget(model, device)
        else:
            self.batch_tokens = 2048
        text_config = model.config.get_text_config()
        self.context_length = getattr(text_config, "max_position_embeddings", None)
        layer_types = set(getattr(text_config, "layer_types", None) or [])
        self.sliding_window = getattr(text_config, "sliding_window", None) if "sliding_attention" in layer_types else None
        # Recurrent layers (Qwen3.5's gated delta net) keep one state for the whole prefix, so
        # a cache cannot be continued from an earlier position under a mask.
        self.recurrent = bool(layer_types - {"full_attention", "sliding_attention"})
        self.pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)
        self._torch = torch
        self._body = getattr(model, model.base_model_prefix, None)
        # transformers 5 names the key/value cache argument `cache` (`past_key_values` before,
        # now deprecated with a warning on every call): use whichever this model takes.
        self._cache_kw = _cache_argument(self._body) if self._body is not None else "past_key_values"
        self._model_cache_kw = _cache_argument(model)
        self._head = model.get_output_embeddings()
        self._rows = None
        self.prefix_tokens_saved = 0  # tokens not recomputed thanks to shared-prefix reuse
        self.fast_path = self._check_fast_path()
        if not self.fast_path:
            log.warning("%s: gathered-head scoring does not reproduce the model's own logits; "
                        "using full logits (slower, more memory)", spec.label)
        else:
            self._rows = _rows.install(self._body)
            if self._rows is not None and not self._check_fast_path():
                log.info("%s: row-restricted last layer does not match; not using it", spec.label)
                _rows.uninstall(self._rows)
                self._rows = None

        # Reusing a shared prefix saves FLOPs (on GPU, where large batches hold many transcripts
        # of one study); on CPU, one transcript per pass is faster and a tiny model measured
        # slower with reuse, so it is on for CUDA only (exact either way).
        self.prefix_reuse_supported = self.fast_path and self._check_prefix_reuse()
        self.prefix_reuse = self.prefix_reuse_supported and device.startswith("cuda")
        # FlashAttention runs a batch as one packed row (no padding: varlen attention over the
        # transcripts' boundaries, taken from position ids and cu_seqlens); checked at load.
        self.attention = str(getattr(model.config, "_attn_implementation", "sdpa"))
        self.packing = self.fast_path and self.attention.startswith("flash") and self._check_packing()
        # Encode the next window on a thread while the GPU computes; on CPU the two would
        # compete for the same cores.
        self.encode_ahead = device.startswith("cuda")

    # --- ScorerBackend ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.label

    def fingerprint(self) -> dict[str, Any]:
        return {
            "model": self.spec.path,
            "revision": self.spec.revision,
            "weights": weights_fingerprint(self.model),
            "adapter": self.spec.adapter and _dir_digest(Path(self.spec.adapter)),
            "tokenizer": tokenizer_digest(self.tokenizer),
            "chat": self.chat,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": str(self.dtype).removeprefix("torch."),
                "fast_path": self.fast_path, "prefix_reuse": self.prefix_reuse, "batch_tokens": self.batch_tokens,
                "encode_ahead": self.encode_ahead, "attention": self.attention, "packing": self.packing}

    def score(self, requests: Sequence[ScoreRequest]) -> Iterator[tuple[int, ScoreResult]]:
        for window in self._encoded_windows(requests, self.encode):
            idx, encoded = [i for i, _ in window], [e for _, e in window]
            for j, result in self._in_batches(encoded, lambda batch: self._score_batch([encoded[k] for k in batch])):
                yield idx[j], result

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> Iterator[tuple[int, ChoiceResult]]:
        """Score the recorded responses and every option of each response's closed set.

        Transcripts are batched like `score` (length-bucketed padded passes under the token
        budget). One pass gives each option's first token (the logits at the position before
        the response). Options of several tokens continue from the batch's key/value cache:
        all continuations of all transcripts go through the model together, each seeing its
        transcript up to its response and its own earlier tokens (a tree mask).
        """
        def prepare(req: ChoiceRequest) -> Encoded:
            enc = self.encode(req)
            self._check_options(req, enc)
            return enc

        for window in self._encoded_windows(requests, prepare):
            idx, encoded = [i for i, _ in window], [e for _, e in window]
            for j, result in self._in_batches(encoded, lambda batch: self._choices_batch(
                    [requests[idx[k]] for k in batch], [encoded[k] for k in batch])):
                yield idx[j], result

    # --- IncrementalScorer (closed-loop play) ------------------------------------------------

    def growing_context(self, *, window: bool = True):
        from ._encode import GrowingContext

        return GrowingContext(self.encoder, window=window)

    def option_ids(self, option: str) -> list[int]:
        return self.encoder.piece_ids(option)

    def incremental_choices(self, batch_size: int):
        from ._incremental import IncrementalChoices

        return IncrementalChoices(self, batch_size)

    @contextmanager
    def masked_attention(self):
        """Passes with a 4D mask (tree-masked continuations, closed-loop play) run on SDPA:
        FlashAttention takes no such mask. The weights and cache are the same either way."""
        if not self.attention.startswith("flash"):
            yield
            return
        self.model.set_attn_implementation("sdpa")
        try:
            yield
        finally:
            self.model.set_attn_implementation(self.attention)

    # --- internals -------------------------------------------------------------------

    def _encoded_windows(self, requests, prepare) -> Iterator[list[tuple[int, Encoded]]]:
        """Encoded requests in windows of several batches' worth of tokens, longest-first
        batching within each; with `encode_ahead` the next windows are encoded on a thread
        while the device runs the current one."""
        from ._prefetch import windows

        return windows(requests, prepare, size=len, window=max(WINDOW_BATCHES * self.batch_tokens, MIN_WINDOW_TOKENS),
                       ahead=self.encode_ahead)

    def _in_batches(self, encoded: list[Encoded], run: Callable[[list[int]], list[Any]]):
        """(index, result) over length-bucketed batches. A batch that runs out of device
        memory is split in two and retried, and the budget of later batches halved; a
        single transcript that does not fit is an error that says what to change."""
        torch = self._torch
        queue = self.batches([len(e) for e in encoded])
        while queue:
            batch = queue.pop(0)
            try:
                results = run(batch)
            except torch.OutOfMemoryError:
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                if len(batch) == 1:
                    raise torch.OutOfMemoryError(
                        f"{self.name}: one transcript of {len(encoded[batch[0]])} tokens does not fit in "
                        "device memory; cap it with --max-tokens, or spread the model with --device map") from None
                self.batch_tokens = max(1, self.batch_tokens // 2)
                log.warning("%s: out of memory on %d transcripts; splitting, budget now %d tokens",
                            self.name, len(batch), self.batch_tokens)
                queue[:0] = [batch[: len(batch) // 2], batch[len(batch) // 2 :]]
                continue
            yield from zip(batch, results)

    def _choice_targets(self, req: ChoiceRequest, enc: Encoded, pos: np.ndarray, K: int,
                        first_ids: dict[str, int]) -> tuple[np.ndarray, dict[int, int]]:
        """Per scored row: the recorded token, then at each response's first row the first
        token of each of its options (-1 pads); and each response's first row."""
        targets = np.full((len(pos), 1 + K), -1, dtype=np.int64)
        targets[:, 0] = enc.ids[pos]
        first_row: dict[int, int] = {}
        for j, p in enumerate(pos):
            r = int(enc.response_of[p])
            if r not in first_row:
                first_row[r] = j
                targets[j, 1 : 1 + len(req.options[r])] = [first_ids[o] for o in req.options[r]]
        return targets, first_row

    @staticmethod
    def _check_options(req: ChoiceRequest, enc: Encoded) -> None:
        if len(req.options) != enc.n_responses:
            raise ValueError(f"{len(req.options)} option sets for {enc.n_responses} responses")
        for r, (opts, said) in enumerate(zip(req.options, req.transcript.responses)):
            if said not in opts:
                raise ValueError(f"response {r} ({said!r}) is not among its options {opts}")

    @staticmethod
    def _choice_result(req: ChoiceRequest, enc: Encoded, pos: np.ndarray, lp: np.ndarray, hit: np.ndarray,
                       first_row: dict[int, int], cont: dict[tuple[int, int], float]) -> ChoiceResult:
        """Sums per response of the recorded tokens' log-probabilities, and each option's
        log-probability (first token + continuation)."""
        R = enc.n_responses
        nll, counts, top1 = response_totals(enc.response_of[pos], -lp[:, 0], R, hit)
        logprobs = np.full((R, max((len(o) for o in req.options), default=0)), np.nan)
        for r, j in first_row.items():
            for k in range(len(req.options[r])):
                logprobs[r, k] = lp[j, 1 + k] + cont.get((r, k), 0.0)
        return ChoiceResult(nll=nll.tolist(), n_tokens=counts.astype(int).tolist(), n_input_tokens=len(enc),
                            token_truncated=list(enc.token_truncated), option_logprobs=logprobs.tolist(),
                            top1=top1.tolist())

    def _choices_batch(self, reqs: list[ChoiceRequest], items: list[Encoded]) -> list[ChoiceResult]:
        """Several transcripts in one padded pass: at each response's first position the
        targets are the recorded token and every option's first token; tokens 2.. of
        multi-token options follow from the pass's cache (`option_continuations`)."""
        torch = self._torch
        K = max((len(o) for r in reqs for o in r.options), default=0)
        positions = [np.nonzero(e.response_of[1:] >= 0)[0] + 1 for e in items]
        ids, src, rows = self._padded(items, positions)
        plans, option_ids = [], []
        for req, e, pos in zip(reqs, items, positions):  # options were checked when encoded
            option_ids.append({o: self.encoder.piece_ids(o) for opts in req.options for o in opts})
            plans.append(self._choice_targets(req, e, pos, K, {o: i[0] for o, i in option_ids[-1].items()}))
        # Continuations: every scored multi-token option, seeing its transcript up to its response.
        continuations = [Continuation(row=b, key=(b, r, k), tokens=ids_[o], start=int(pos[first_row[r]]),
                              context=(e.ids[: int(pos[first_row[r]])] if self.recurrent
                                       else np.arange(ids.shape[1]) < int(pos[first_row[r]])))
                 for b, (req, ids_, e, pos, (_, first_row)) in enumerate(zip(reqs, option_ids, items,
                                                                             positions, plans))
                 for r in sorted(first_row) for k, o in enumerate(req.options[r]) if len(ids_[o]) > 1]
        need_cache = bool(continuations)
        dev = self.device
        B, L = ids.shape
        src_t = torch.from_numpy(np.concatenate(src)).to(dev)
        targets = torch.from_numpy(np.concatenate([t for t, _ in plans])).to(dev)
        input_ids = torch.from_numpy(ids).to(dev)
        with torch.inference_mode():
            top1_t = torch.zeros(len(src_t), dtype=torch.bool, device=dev)
            if self.fast_path:
                out = self._forward(input_ids, src_t, rows, use_cache=need_cache and not self.recurrent)
                picked = out[0].reshape(B * L, -1).index_select(0, src_t)
            else:
                out = self.model(input_ids=input_ids, use_cache=need_cache and not self.recurrent)
                picked = out.logits.reshape(B * L, -1).index_select(0, src_t)
            lp = self._gather_logprobs(picked, targets, top1_t, are_logits=not self.fast_path).cpu().numpy()
            found = option_continuations(self, continuations, cache=None if self.recurrent else cache_of(out), rows=B,
                                         slots=L) if need_cache else {}
        cont: list[dict[tuple[int, int], float]] = [{} for _ in range(B)]
        for (b, r, k), v in found.items():
            cont[b][(r, k)] = v
        top1_all = top1_t.cpu().numpy()
        results, a = [], 0
        for b, (req, e, pos, (_, first_row)) in enumerate(zip(reqs, items, positions, plans)):
            n = len(pos)
            results.append(self._choice_result(req, e, pos, lp[a : a + n], top1_all[a : a + n], first_row, cont[b]))
            a += n
        return results

    def _device_masks(self, masks):
        if isinstance(masks, dict):
            return {k: v.to(self.device) for k, v in masks.items()}
        return masks.to(self.device)

    def _gather_logprobs(self, hidden, targets, top1=None, *, are_logits: bool = False):
        """log p(target) for a [N, K] matrix of token ids (-1: padding, gives NaN), with the
        float32 log-softmax on chunks of rows that fit LOGITS_CHUNK_BYTES. With `top1` (a bool
        [N] tensor), also marks the rows whose first target is the argmax over the vocabulary.
        `hidden` are final hidden states, or logits already (`are_logits`)."""
        torch = self._torch
        vocab = hidden.shape[-1] if are_logits else self._head.weight.shape[0]
        budget = LOGITS_CHUNK_BYTES["cuda" if self.device.startswith("cuda") else "cpu"]
        rows = max(16, budget // (4 * vocab))
        out = torch.full(targets.shape, float("nan"), dtype=torch.float32, device=hidden.device)
        for a in range(0, hidden.shape[0], rows):
            x = hidden[a : a + rows]
            logp = torch.log_softmax((x if are_logits else self._logits(x)).float(), -1)
            t = targets[a : a + rows]
            got = logp.gather(1, t.clamp(min=0))
            out[a : a + rows] = torch.where(t >= 0, got, out[a : a + rows])
            if top1 is not None:
                top1[a : a + rows] = logp.argmax(-1) == t[:, 0]
        return out

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped longest-first so that the tokens of a pass stay within the budget:
        batch size x longest length when padded, the sum of lengths when packed."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        out: list[list[int]] = []
        total = 0
        for i in order:
            if out:
                cost = total + lengths[i] if self.packing else (len(out[-1]) + 1) * lengths[out[-1][0]]
                if cost <= self.batch_tokens:
                    out[-1].append(i)
                    total += lengths[i]
                    continue
            out.append([i])
            total = lengths[i]
        return out

    def encode(self, request: ScoreRequest) -> Encoded:
        limits = [x for x in (request.max_tokens, self.context_length) if x is not None]
        return self.encoder.encode(request.transcript, request.system, min(limits, default=None))

    def _padded(self, items: list[Encoded], positions: list[np.ndarray]):
        """Right-padded ids of a batch, cut after each item's last scored token (later tokens
        cannot change any score); per item the rows whose hidden states are read (pos - 1),
        and the same rows as flat indices into the [B * L] batch."""
        ends = _scored_ends(positions)
        B, L = len(items), max(ends)
        ids = np.full((B, L), self.pad_id, dtype=np.int64)
        for b, (e, end) in enumerate(zip(items, ends)):
            ids[b, :end] = e.ids[:end]
        rows = [pos - 1 for pos in positions]
        return ids, [b * L + r for b, r in enumerate(rows)], rows

    def _score_batch(self, items: list[Encoded]) -> list[ScoreResult]:
        torch = self._torch
        targets = [np.nonzero(e.response_of[1:] >= 0)[0] + 1 for e in items]  # position 0 has no context
        B = len(items)
        tgt, seg = [], []
        seg_base = 0
        for e, pos in zip(items, targets):
            tgt.append(e.ids[pos])
            seg.append(seg_base + e.response_of[pos])
            seg_base += e.n_responses
        dev = self.device
        tgt_t = torch.from_numpy(np.concatenate(tgt)).to(dev)
        shared = self._shared_prefix(items, targets) if self.prefix_reuse and B > 1 else 0
        long_pass = B == 1 and _scored_ends(targets)[0] > self.batch_tokens
        if long_pass:
            with torch.inference_mode():
                top1 = torch.zeros(len(tgt_t), dtype=torch.bool, device=dev)
                picked, _ = self._chunked_pass(items[0].ids, targets[0] - 1)
                tok_nll = -self._gather_logprobs(picked, tgt_t[:, None], top1, are_logits=not self.fast_path)[:, 0]
        elif shared or not self.packing:  # a packed batch never builds the padded one
            # Right padding needs no attention mask: causal attention never looks ahead.
            ids, src, rows = self._padded(items, targets)
            L = ids.shape[1]
            src_t = torch.from_numpy(np.concatenate(src)).to(dev)
            input_ids = torch.from_numpy(ids).to(dev)
        with torch.inference_mode():
            if long_pass:
                pass
            elif shared:
                top1 = torch.zeros(len(tgt_t), dtype=torch.bool, device=dev)
                # The instruction prefix every transcript of the batch shares runs once; its
                # keys and values serve all of them (exact: same tokens, same positions).
                hidden = self._hidden_after_prefix(input_ids, shared)
                src_rest = torch.from_numpy(np.concatenate(
                    [b * (L - shared) + r - shared for b, r in enumerate(rows)])).to(dev)
                hidden = hidden.reshape(B * (L - shared), -1).index_select(0, src_rest)
                tok_nll = -self._gather_logprobs(hidden, tgt_t[:, None], top1)[:, 0]
                self.prefix_tokens_saved += shared * (B - 1)
            elif self.packing:
                top1 = torch.zeros(len(tgt_t), dtype=torch.bool, device=dev)
                hidden = self._packed_hidden(items, targets)
                tok_nll = -self._gather_logprobs(hidden, tgt_t[:, None], top1)[:, 0]
            elif self.fast_path:
                top1 = torch.zeros(len(tgt_t), dtype=torch.bool, device=dev)
                hidden = self._hidden(input_ids, src_t, rows)
                hidden = hidden.reshape(B * L, -1).index_select(0, src_t)
                tok_nll = -self._gather_logprobs(hidden, tgt_t[:, None], top1)[:, 0]
            else:
                logits = self.model(input_ids=input_ids, use_cache=False).logits
                logits = logits.reshape(B * L, -1).index_select(0, src_t).float()
                tok_nll = torch.nn.functional.cross_entropy(logits, tgt_t, reduction="none")
                top1 = logits.argmax(-1) == tgt_t
            token_nll, token_hit = tok_nll.double().cpu().numpy(), top1.cpu().numpy()
        seg_all = np.concatenate(seg).astype(np.int64)
        out, a, base = [], 0, 0
        for e, pos in zip(items, targets):
            n = len(pos)
            nll, counts, top = response_totals(seg_all[a : a + n] - base, token_nll[a : a + n], e.n_responses,
                                               token_hit[a : a + n])
            out.append(ScoreResult(nll=nll.tolist(), n_tokens=counts.astype(int).tolist(), n_input_tokens=len(e),
                                   token_truncated=list(e.token_truncated), top1=top.tolist()))
            a += n
            base += e.n_responses
        return out

    def _chunked_pass(self, ids: np.ndarray, rows: np.ndarray):
        """Outputs at `rows` (final hidden states on the fast path, else logits) of one
        transcript longer than the token budget, and the key/value cache of the whole pass. The
        pass runs in chunks of `batch_tokens`, each continuing from the cache of the ones before
        (exact, as generation continues), so activations never exceed one chunk's and a
        transcript of millions of characters does not take the machine's memory."""
        torch = self._torch
        end = int(rows.max()) + 1 if len(rows) else 1
        step = max(1, self.batch_tokens)
        cache, pieces = None, []
        for a in range(0, end, step):
            b = min(end, a + step)
            chunk = torch.from_numpy(ids[a:b])[None].to(self.device)
            if self.fast_path:
                out = self._body(input_ids=chunk, use_cache=True, **{self._cache_kw: cache})
                values = out[0][0]
            else:
                out = self.model(input_ids=chunk, use_cache=True, **{self._model_cache_kw: cache})
                values = out.logits[0]
            cache = cache_of(out)
            sel = rows[(rows >= a) & (rows < b)] - a
            pieces.append(values.index_select(0, torch.from_numpy(sel).to(self.device)))
        return torch.cat(pieces), cache

    def _packed_hidden(self, items: list[Encoded], targets: list[np.ndarray]):
        """Final hidden states at the scored rows, the batch run as ONE row: the transcripts
        (each cut after its last scored token) back to back, positions restarting at 0 for
        each, and the boundaries given as cu_seqlens, so FlashAttention's varlen kernel keeps
        them apart and no padding is computed."""
        torch = self._torch
        ends = _scored_ends(targets)
        starts = np.cumsum([0, *ends])
        ids = np.concatenate([e.ids[:end] for e, end in zip(items, ends)])
        position_ids = np.concatenate([np.arange(end) for end in ends])
        src = np.concatenate([start + pos - 1 for start, pos in zip(starts, targets)])
        cu = torch.from_numpy(starts.astype(np.int32)).to(self.device)
        hidden = self._body(input_ids=torch.from_numpy(ids)[None].to(self.device),
                            position_ids=torch.from_numpy(position_ids)[None].to(self.device),
                            cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(ends), max_length_k=max(ends),
                            use_cache=False)[0]
        return hidden[0].index_select(0, torch.from_numpy(src).to(self.device))

    MIN_SHARED_PREFIX = 64  # tokens; below this a second pass costs more than it saves

    @staticmethod
    def _shared_prefix(items: list[Encoded], targets: list[np.ndarray]) -> int:
        """Length of the token prefix all items share, ending before any scored row (so
        every hidden state that is read comes from the second pass); 0 if too short."""
        first_row = min((int(t[0]) - 1 for t in targets if len(t)), default=0)
        limit = min([first_row, *(len(e.ids) for e in items)])
        if limit < HFScorer.MIN_SHARED_PREFIX:
            return 0
        stack = np.stack([e.ids[:limit] for e in items])
        same = np.all(stack == stack[0], axis=0)
        n = int(np.argmin(same)) if not same.all() else limit
        return n if n >= HFScorer.MIN_SHARED_PREFIX else 0

    def _hidden_after_prefix(self, input_ids, shared: int):
        """Final hidden states of positions shared.. for every row, the first `shared`
        tokens run once and their cache repeated over the batch."""
        out = self._body(input_ids=input_ids[:1, :shared], use_cache=True)
        cache = cache_of(out)
        cache.batch_repeat_interleave(input_ids.shape[0])
        return self._body(input_ids=input_ids[:, shared:], use_cache=True, **{self._cache_kw: cache})[0]

    def _check_fast_path(self) -> bool:
        return _probes.fast_path(self)

    def _check_prefix_reuse(self) -> bool:
        return _probes.prefix_reuse(self)

    def _check_packing(self) -> bool:
        return _probes.packing(self)

    def _hidden(self, input_ids, flat_rows, rows_per_item):
        """Final hidden states; with row restriction only `flat_rows` hold real values."""
        return self._forward(input_ids, flat_rows, rows_per_item)[0]

    def _forward(self, input_ids, flat_rows, rows_per_item, use_cache: bool = False):
        """The body's output, its last layer restricted to the given rows when installed
        (`rows_per_item`: numpy positions per batch item)."""
        kw = {self._cache_kw: self.full_cache()} if use_cache and self.sliding_window is not None else {}
        if self._rows is None:
            return self._body(input_ids=input_ids, use_cache=use_cache, **kw)
        dev = input_ids.device
        self._rows.set(flat_rows, [self._torch.from_numpy(r).to(dev) for r in rows_per_item])
        try:
            return self._body(input_ids=input_ids, use_cache=use_cache, **kw)
        finally:
            self._rows.clear()

    def full_cache(self):
        """For models with sliding-window layers: a key/value cache that keeps every position
        in every layer. (The model's default cache drops what those layers no longer see;
        passes that continue from the cache under explicit masks need all positions, and
        apply the window in the mask: `layer_masks`.)"""
        from transformers import DynamicCache

        return DynamicCache()

    def layer_masks(self, mask, q_pos, k_pos):
        """The attention mask(s) for a pass under an explicit boolean [B, 1, Q, K] mask: as is
        for full-attention models; for models with sliding-window layers, a mask per layer
        type, the sliding one also hiding keys `sliding_window` or more positions back.
        `q_pos` [B, Q] and `k_pos` [B, K] are the positions of queries and keys."""
        if self.sliding_window is None:
            return mask
        near = (q_pos[:, None, :, None] - k_pos[:, None, None, :]) < self.sliding_window
        return {"full_attention": mask, "sliding_attention": mask & near}

    def _logits(self, hidden):
        """LM head plus the output transforms some architectures apply after it."""
        logits = self._head(hidden)
        cfg = self.model.config.get_text_config()
        if getattr(cfg, "logit_scale", None) is not None:  # Cohere
            logits = logits * cfg.logit_scale
        if getattr(cfg, "logits_scaling", None) is not None:  # Granite
            logits = logits / cfg.logits_scaling
        cap = getattr(cfg, "final_logit_softcapping", None)  # Gemma 2/3
        if cap is not None:
            logits = self._torch.tanh(logits / cap) * cap
        return logits


def _cache_argument(module: Any) -> str:
    """The name a model's forward takes its key/value cache under (`cache` in transformers 5,
    `past_key_values` in 4)."""
    import inspect

    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_of(output: Any) -> Any:
    """The key/value cache in a model output, under either name."""
    for key in ("cache", "past_key_values"):
        if key in output and output[key] is not None:
            return output[key]
    return None


def _scored_ends(positions: list[np.ndarray]) -> list[int]:
    """Per transcript, where its pass can stop: after its last scored token (later tokens
    cannot change any score)."""
    return [int(pos[-1]) + 1 if len(pos) else 1 for pos in positions]


