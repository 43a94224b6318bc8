"""Scorer backends: the HF causal-LM scorer, its encoding rules, and the backend Protocol."""

from ._backend import (
    ChoiceBackend,
    ChoiceRequest,
    ChoiceResult,
    IncrementalScorer,
    IncrementalSession,
    ScoreRequest,
    ScoreResult,
    ScorerBackend,
    score_all,
)
from ._fake import HashBackend
from ._encode import Encoded, EncodingError, TranscriptEncoder, chat_messages, render_chat
from ._loading import (LoadError, quiet_transformers, check_adapter, check_device, load_pretrained,
                       weights_digest)
from ._spec import ChatMode, DType, ModelSpec


def load_backend(spec: ModelSpec) -> ScorerBackend:
    """The scorer for a spec: HF (default) or vLLM (`backend="vllm"`); heavy imports on first use."""
    if spec.backend == "vllm":
        from ._vllm import VLLMScorer

        return VLLMScorer(spec)
    from ._loading import load_hf

    return load_hf(spec)


__all__ = [
    "LoadError", "check_adapter", "check_device", "load_pretrained", "weights_digest", "quiet_transformers", "IncrementalScorer", "IncrementalSession", "ChoiceBackend", "ChoiceRequest", "ChoiceResult", "ChatMode", "DType", "Encoded", "EncodingError", "HashBackend", "ModelSpec", "ScoreRequest", "ScoreResult",
    "ScorerBackend", "TranscriptEncoder", "chat_messages", "load_backend", "render_chat",
    "score_all",
]
