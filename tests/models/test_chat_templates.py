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
from surrogate.models import ModelSpec, ScoreRequest, load_backend, score_all

TEMPLATES = Path(__file__).parent / "templates"
STUDIES = ("thoma2025problearn", "guenther2022relational", "busch2024_stroop")


@pytest.fixture(scope="module")
def transcripts(psych201):
    return [prepare_transcript(p.text)
            for s in STUDIES for p in load(psych201 / s, max_participants=2).participants]


@pytest.mark.parametrize("template, fixture", [
    ("qwen2_5", "qwen_dir"), ("qwen3", "qwen_dir"), ("olmo3", "qwen_dir"),
    ("llama3_1", "llama_dir"), ("deepseek_r1_distill", "llama_dir")])
@pytest.mark.parametrize("system", [None, "You are a 25-year-old participant."])
def test_template_quirks_never_move_a_response(request, transcripts, template, fixture, system):
    folder = request.getfixturevalue(fixture)
    backend = load_backend(ModelSpec(path=str(folder), chat="on", device="cpu", dtype="float32"))
    backend.tokenizer.chat_template = (TEMPLATES / f"{template}.jinja").read_text()
    trims = template == "llama3_1"
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
