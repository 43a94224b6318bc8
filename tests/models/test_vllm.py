"""The vLLM backend equals the HF backend. Runs only where vLLM and a GPU exist."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
    pytest.skip("needs vLLM and a GPU", allow_module_level=True)


def test_vllm_equals_hf(qwen_dir, psych201):
    from surrogate.data import load, prepare_transcript
    from surrogate.models import ModelSpec, ScoreRequest, load_backend, score_all

    people = load(psych201 / "thoma2025problearn", max_participants=3).participants
    reqs = [ScoreRequest(transcript=prepare_transcript(p.text)) for p in people]
    spec = ModelSpec(path=str(qwen_dir), chat="off", dtype="float32", device="cuda")
    hf = score_all(load_backend(spec), reqs)
    vl = score_all(load_backend(spec.model_copy(update={"backend": "vllm"})), reqs)
    for a, b in zip(hf, vl):
        assert a.n_tokens == b.n_tokens
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-3, rtol=1e-4)
