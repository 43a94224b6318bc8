"""Chat templates with the quirks of the paper's families (default system messages, trimmed
contents, `<think>` handling, a BOS written by the template) never move a response boundary:
every response's scored tokens spell exactly that response, and the scorer's NLLs equal the
model's own log-probabilities on the rendered text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from surrogate.data import load, prepare_transcript
from surrogate.models._encode import CHAT_DATE
from surrogate.models import ModelSpec, ScoreRequest, load_backend, score_all

TEMPLATES = Path(__file__).parent / "templates"
STUDIES = ("thoma2025problearn", "guenther2022relational", "busch2024_stroop")

pytestmark = pytest.mark.slow  # every architecture and template: CI runs it, the fast loop not


@pytest.fixture(scope="module")
def transcripts(psych201):
    return [prepare_transcript(p.text)
            for s in STUDIES for p in load(psych201 / s, max_participants=2).participants]


# (template file, tokenizer fixture, whether the template trims every content)
TEMPLATE_CASES = [
    ("Qwen-Qwen2.5-7B-Instruct", "qwen_dir", False),
    ("Qwen-Qwen3-0.6B", "qwen_dir", False),
    ("Qwen3.5-4B", "qwen_dir", True),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "qwen_dir", False),
    ("olmo3", "qwen_dir", False),
    ("meta-llama-Llama-3.1-8B-Instruct", "llama_dir", True),
    ("meta-llama-Llama-3.2-3B-Instruct", "llama_dir", True),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "llama_dir", False),
]


@pytest.fixture(scope="module")
def backends():
    """One loaded backend per checkpoint for the whole module (the tests only read it; each
    sets the template it checks)."""
    return {}


@pytest.mark.parametrize("template, fixture, trims", TEMPLATE_CASES)
@pytest.mark.parametrize("system", [None, "You are a 25-year-old participant."])
def test_template_quirks_never_move_a_response(request, backends, transcripts, template, fixture, trims, system):
    folder = request.getfixturevalue(fixture)
    if fixture not in backends:
        backends[fixture] = load_backend(ModelSpec(path=str(folder), chat="on", device="cpu", dtype="float32"))
    backend = backends[fixture]
    backend.tokenizer.chat_template = (TEMPLATES / f"{template}.jinja").read_text()
    requests = [ScoreRequest(transcript=t, system=system) for t in transcripts]
    results = score_all(backend, requests)
    tok = backend.tokenizer
    for req, result in zip(requests, results):
        enc = backend.encode(req)
        text, _, _ = backend.encoder.text_and_spans(req.transcript, system)
        assert (text.count(tok.bos_token) if tok.bos_token else 0) <= 1
        if system is not None:
            assert system in text and "You are Qwen" not in text  # the default gives way
        assert "<think>" not in text  # the conversation ends on a user turn: no reasoning block
        if "Today Date" in text:  # Llama-3.x: a fixed date, not the day the test runs
            assert f"Today Date: {CHAT_DATE}" in text
        for r, response in enumerate(req.transcript.responses):
            ids = enc.ids[enc.response_of == r]
            spelled = tok.decode(ids.tolist())
            assert spelled == (response.strip() if trims else response), (template, r, spelled, response)
        # The scorer's sums equal the model's own log-probabilities of those tokens.
        with torch.no_grad():
            logits = backend.model(input_ids=torch.from_numpy(enc.ids)[None]).logits[0].float()
        logp = torch.log_softmax(logits[:-1], -1).gather(1, torch.from_numpy(enc.ids[1:])[:, None])[:, 0].numpy()
        resp = enc.response_of[1:]
        want = [-logp[resp == r].sum() for r in range(enc.n_responses)]
        np.testing.assert_allclose(result.nll, want, atol=1e-3, rtol=1e-5)
