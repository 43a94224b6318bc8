"""The training loop and its examples: the loss mask is the scorer's, a killed run resumes
to exactly the weights of an uninterrupted one, and a foreign checkpoint is refused."""

from __future__ import annotations

import numpy as np
import pytest

from surrogate.data import prepare_transcript
from surrogate.training import Example, TrainConfig, plan_batches, response_windows, train, with_responses
from surrogate.models import ModelSpec, ScoreRequest, TranscriptEncoder, load_backend

from ..conftest import raw_records


def _transcripts(study: str, n: int):
    return [prepare_transcript(r["text"]) for r in raw_records(study, n)]


@pytest.mark.parametrize("chat", [False, True])
def test_loss_tokens_are_the_tokens_the_scorer_sums(qwen_dir, chat):
    """One code path: per response, the labelled tokens are exactly the n_tokens the scorer
    sums into that response's NLL (plainly and through the chat template)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_dir)
    encoder = TranscriptEncoder(tok, chat=chat)
    backend = load_backend(ModelSpec(path=str(qwen_dir), chat="on" if chat else "off", device="cpu"))
    for t in _transcripts("thoma2025problearn", 2) + _transcripts("busch2024_stroop", 1):
        (window,) = response_windows(encoder, t, window_tokens=10**6)
        enc = encoder.encode(t)
        labelled = window.labels >= 0
        assert np.array_equal(window.labels[labelled], enc.ids[labelled])
        per_response = np.bincount(enc.response_of[labelled], minlength=len(t.spans))
        (_, result), = list(backend.score([ScoreRequest(transcript=t)]))
        assert per_response.tolist() == result.n_tokens
        assert labelled.sum() == sum(result.n_tokens) > 0


def test_windows_keep_only_whole_responses(qwen_dir):
    from transformers import AutoTokenizer

    encoder = TranscriptEncoder(AutoTokenizer.from_pretrained(qwen_dir), chat=False)
    t = _transcripts("thoma2025problearn", 1)[0]
    enc = encoder.encode(t)
    windows = response_windows(encoder, t, window_tokens=256)
    assert all(len(w) <= 256 for w in windows) and len(windows) >= len(enc.ids) // 256 - 1
    labelled = sum(int((w.labels >= 0).sum()) for w in windows)
    # Responses cut by a window edge lose their loss; every other response token keeps it.
    assert 0.8 * (enc.response_of >= 0).sum() < labelled <= (enc.response_of >= 0).sum()


def test_with_responses_replaces_only_the_responses():
    t = _transcripts("busch2024_stroop", 1)[0]
    answers = [f"A{i}" for i in range(len(t.spans))]
    new = with_responses(t, answers)
    assert new.responses == tuple(answers)
    assert new.text.replace("<<", "").count(">>") == t.text.count(">>")
    with pytest.raises(ValueError, match="answers for"):
        with_responses(t, answers[:-1])


def test_plan_is_fixed_by_the_seed_and_respects_the_token_budget():
    lengths = np.random.default_rng(0).integers(5, 200, size=300).tolist()
    config = TrainConfig(batch_tokens=600, epochs=2, seed=3)
    plan = plan_batches(lengths, config)
    assert plan == plan_batches(lengths, config)
    assert plan != plan_batches(lengths, config.model_copy(update={"seed": 4}))
    assert all(len(b) * max(lengths[i] for i in b) <= 600 for b in plan)
    first_epoch = [i for b in plan[: len(plan) // 2] for i in b]
    assert len(plan) == 2 * len(plan_batches(lengths, config.model_copy(update={"epochs": 1})))
    assert sorted(set(first_epoch)) == sorted(first_epoch)  # no example twice within an epoch


def _model_and_examples(qwen_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_dir)
    encoder = TranscriptEncoder(tok, chat=False)
    examples = [e for t in _transcripts("guenther2022relational", 4) for e in response_windows(encoder, t, 128)]
    model = AutoModelForCausalLM.from_pretrained(qwen_dir)
    return model, examples


def test_a_killed_run_resumes_to_the_same_weights(qwen_dir, tmp_path):
    config = TrainConfig(learning_rate=1e-3, max_steps=7, batch_tokens=512, checkpoint_every=2, seed=1)
    model, examples = _model_and_examples(qwen_dir)
    whole = train(model, examples, config, checkpoint=tmp_path / "a.pt", pad_id=0)
    want = {n: p.detach().clone() for n, p in model.named_parameters()}

    model, _ = _model_and_examples(qwen_dir)
    part = train(model, examples, config, checkpoint=tmp_path / "b.pt", pad_id=0, stop_after=5)
    assert part.steps == 5 and (tmp_path / "b.pt").exists()
    model, _ = _model_and_examples(qwen_dir)  # a fresh process: weights from the checkpoint
    rest = train(model, examples, config, checkpoint=tmp_path / "b.pt", pad_id=0)
    assert rest.resumed_from == 4 and rest.steps == 7
    assert rest.losses[:4] == whole.losses[:4]
    for n, p in model.named_parameters():
        assert np.allclose(p.detach().numpy(), want[n].numpy(), atol=1e-6), n
    # ...and the weights did move.
    fresh, _ = _model_and_examples(qwen_dir)
    assert any(not np.allclose(p.detach().numpy(), q.detach().numpy())
               for p, q in zip(model.parameters(), fresh.parameters()))


def test_a_checkpoint_of_another_run_is_refused(qwen_dir, tmp_path):
    config = TrainConfig(max_steps=3, batch_tokens=512, checkpoint_every=1)
    model, examples = _model_and_examples(qwen_dir)
    train(model, examples, config, checkpoint=tmp_path / "c.pt", pad_id=0, stop_after=2)
    with pytest.raises(ValueError, match="another training run"):
        train(model, examples, config.model_copy(update={"learning_rate": 1e-2}),
              checkpoint=tmp_path / "c.pt", pad_id=0)


def test_windows_longer_than_the_batch_are_an_error():
    examples = [Example(ids=np.arange(50), labels=np.arange(50))]
    with pytest.raises(ValueError, match="longer than batch_tokens"):
        plan_batches([len(e) for e in examples], TrainConfig(batch_tokens=20))
