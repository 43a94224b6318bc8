"""An optional vLLM backend: the same transcripts and response tokens as the HF scorer, with
the per-token log-probabilities of the prompt computed by vLLM (`prompt_logprobs`).

Encoding is surrogate's own (`TranscriptEncoder`, the checkpoint's tokenizer), so responses
are the same tokens as with the HF backend; vLLM only runs the model. Needs the `[vllm]`
extra and a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


from ._backend import ScoreRequest, ScoreResult
from ._continue import response_totals
from ._encode import TranscriptEncoder
from ._spec import ModelSpec


class VLLMScorer:
    """A ScorerBackend whose forward passes run in vLLM (prefix caching and continuous
    batching over all requests at once)."""

    def __init__(self, spec: ModelSpec):
        try:
            from vllm import LLM
        except ImportError:  # pragma: no cover - depends on the machine
            raise ImportError("backend vllm needs vLLM: pip install 'surrogate[vllm]' (GPU machines)") from None
        from transformers import AutoTokenizer

        self.spec = spec
        path = spec.where
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=spec.revision,
                                                       trust_remote_code=spec.trust_remote_code)
        self.chat = bool(self.tokenizer.chat_template) if spec.chat == "auto" else spec.chat == "on"
        self.encoder = TranscriptEncoder(self.tokenizer, chat=self.chat)
        dtype = "auto" if spec.dtype == "auto" else spec.dtype
        self.llm = LLM(model=path, revision=spec.revision, dtype=dtype, trust_remote_code=spec.trust_remote_code,
                       enable_prefix_caching=True, enable_lora=bool(spec.adapter))
        self.context_length = self.llm.llm_engine.model_config.max_model_len
        self.device = "cuda"
        self.dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")

    @property
    def name(self) -> str:
        return self.spec.label

    def fingerprint(self) -> dict[str, Any]:
        from ._loading import _dir_digest, tokenizer_digest, weights_digest

        return {"model": self.spec.path, "revision": self.spec.revision,
                "weights": weights_digest(Path(self.spec.where), self.spec.revision),
                "adapter": self.spec.adapter and _dir_digest(Path(self.spec.adapter)),
                "tokenizer": tokenizer_digest(self.tokenizer), "chat": self.chat, "dtype": self.dtype,
                "backend": "vllm"}

    def describe(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype, "backend": "vllm"}

    def encode(self, request: ScoreRequest):
        budget = min(x for x in (request.max_tokens, self.context_length) if x is not None)
        return self.encoder.encode(request.transcript, request.system, max_tokens=budget)

    def score(self, requests: Sequence[ScoreRequest]) -> Iterator[tuple[int, ScoreResult]]:
        from vllm import SamplingParams

        from ._prefetch import windows

        # prompt_logprobs=0: only the log-probability (and rank) of each actual prompt token.
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        lora = None
        if self.spec.adapter:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, str(self.spec.adapter))
        # Windows of about a million tokens bound host memory; the next is encoded while vLLM
        # runs the current one.
        for window in windows(requests, self.encode, size=len, window=2**20, ahead=True):
            outputs = self.llm.generate([{"prompt_token_ids": e.ids.tolist()} for _, e in window], params,
                                        use_tqdm=False, lora_request=lora)
            for (i, e), out in zip(window, outputs):
                yield i, self._result(e, out)

    @staticmethod
    def _result(e, out) -> ScoreResult:
        """Per-response sums of the prompt tokens' log-probabilities vLLM returned."""
        scored = [t for t in range(1, len(e.ids)) if e.response_of[t] >= 0]  # the first token has no prediction
        entries = [out.prompt_logprobs[t][int(e.ids[t])] for t in scored]
        nll, counts, top1 = response_totals(e.response_of[scored], [-x.logprob for x in entries], e.n_responses,
                                            [x.rank == 1 for x in entries])
        return ScoreResult(nll=nll.tolist(), n_tokens=counts.tolist(), n_input_tokens=len(e),
                           token_truncated=list(e.token_truncated), top1=top1.tolist())
