"""Closed-loop play: option scores, never parsed text; KV reuse changes nothing."""

from pathlib import Path

import numpy as np
import pytest

from surrogate.agents import agreement_with_replay, play_model
from surrogate.experiments import RestlessBandit
from surrogate.models import ModelSpec, load_backend
from surrogate.personas import Interview, Shuffled, SystemPersona
from surrogate.jobs.simulate import resolve_experiment, simulate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two_doors.py"


@pytest.fixture(scope="module")
def plain(qwen_dir):
    return load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32"))


@pytest.fixture(scope="module")
def chat(llama_dir):
    return load_backend(ModelSpec(path=str(llama_dir), chat="on", dtype="float32"))


@pytest.mark.parametrize("which, strategy", [("plain", Interview()), ("plain", Shuffled()),
                                             ("chat", Interview()), ("chat", SystemPersona())])
def test_kv_reuse_matches_scoring_the_finished_transcript(request, which, strategy):
    backend = request.getfixturevalue(which)
    exp = RestlessBandit(n_trials=25)
    stats = {}
    recs = play_model(exp, backend, 5, seed=3, strategy=strategy, batch_size=3, stats=stats)
    assert agreement_with_replay(recs, backend, strategy) < 1e-3
    # One pass over each history, not one per trial.
    assert stats["processed"] < 0.25 * stats["without_reuse"]
    # The tokenizer sees a window per trial, not the whole history; no batch was replayed.
    assert stats["encoded_chars"] < 0.25 * stats["encoded_chars_without_reuse"]
    assert "replayed" not in stats
    assert all(len(r.option_logprobs) == 25 and len(r.choices) == 25 for r in recs)


def test_a_history_that_fails_the_check_is_replayed_encoding_everything(plain, monkeypatch):
    """If windowed encoding ever disagreed with the finished transcript's encoding, the batch
    is played again with the whole history encoded every trial: same people, same seeds."""
    from surrogate.models._encode import GrowingContext

    exp = RestlessBandit(n_trials=12)
    honest = play_model(exp, plain, 3, seed=5, strategy=Interview(), batch_size=3)
    calls = []
    real = GrowingContext.agrees_with

    def distrust_windows(self, finished, system=None):
        calls.append(self.window)
        return real(self, finished, system) and not self.window

    monkeypatch.setattr(GrowingContext, "agrees_with", distrust_windows)
    stats = {}
    with pytest.warns(UserWarning, match="replaying participants 1-3"):
        replayed = play_model(exp, plain, 3, seed=5, strategy=Interview(), batch_size=3, stats=stats)
    assert stats["replayed"] == 3 and calls.count(False) == 3
    assert [r.choices for r in replayed] == [r.choices for r in honest]
    np.testing.assert_allclose([r.option_logprobs for r in replayed], [r.option_logprobs for r in honest],
                               atol=1e-4)


def test_multi_token_options(plain):
    exp = resolve_experiment(f"{EXAMPLE}:TwoDoors", trials=15)
    assert len(plain.encoder.piece_ids("left door")) > 1
    recs = play_model(exp, plain, 4, seed=0, strategy=Interview(), batch_size=4)
    assert agreement_with_replay(recs, plain, Interview()) < 1e-3
    assert {c for r in recs for c in r.choices} <= {"left door", "right door"}


def _fresh(backend, context, options):
    """log p(option | context) from one full forward pass per option."""
    import torch

    out = []
    for o in options:
        ids = list(context) + list(o)
        with torch.inference_mode():
            logp = torch.log_softmax(backend.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        out.append(sum(logp[len(context) + m - 1, o[m]].item() for m in range(len(o))))
    return out


def test_rollback_and_ragged_rows_match_fresh_passes(plain):
    """Row 0's tail changes between steps (a re-tokenized join: cached slots are masked out);
    row 1 only grows; row 2 sits idle for a step. Every answer equals a fresh pass."""
    from surrogate.models._incremental import IncrementalChoices

    rng = np.random.default_rng(0)
    vocab = len(plain.tokenizer)
    ctx = [rng.integers(5, vocab, size=n).tolist() for n in (40, 25, 33)]
    options = [[[7], [9, 11, 13]], [[21, 22], [5]], [[8], [30], [31, 32]]]
    state = IncrementalChoices(plain, 3)
    steps = [
        ctx,
        [ctx[0][:30] + rng.integers(5, vocab, size=12).tolist(),  # tail rewritten
         ctx[1] + rng.integers(5, vocab, size=17).tolist(),  # grows
         None],  # idle
        [ctx[0][:30] + rng.integers(5, vocab, size=5).tolist(),  # rewritten again, shorter
         None,
         ctx[2] + rng.integers(5, vocab, size=9).tolist()],
    ]
    for contexts in steps:
        got = state.step(contexts, [options[i] if c is not None else None for i, c in enumerate(contexts)])
        for i, c in enumerate(contexts):
            if c is None:
                assert got[i] is None
            else:
                np.testing.assert_allclose(got[i], _fresh(plain, c, options[i]), atol=1e-3)


def test_argmax_policy_takes_the_most_likely_option(plain):
    recs = play_model(RestlessBandit(n_trials=10), plain, 2, seed=0, policy="argmax")
    for r in recs:
        for trial, choice, lp in zip(r.trials, r.choices, r.option_logprobs):
            assert trial.options.index(choice) == max(range(len(lp)), key=lp.__getitem__)


def test_simulate_model_agents_and_synthetic_share_people(qwen_dir, tmp_path):
    result = simulate("mixed_lotteries", ["synthetic", f"model:{qwen_dir},persona=interview,name=tiny"], 4,
                      seed=2, out=tmp_path / "sim", trials=8)
    syn = [r for r in result.records if r.agent == "syn"]
    tiny = [r for r in result.records if r.agent == "tiny"]
    assert len(syn) == len(tiny) == 4
    assert [r.metadata for r in syn] == [r.metadata for r in tiny]  # the same simulated people
    # ...but each agent's task randomness is its own: it resembles its person only through the persona.
    assert [r.trials[0] for r in syn] != [r.trials[0] for r in tiny]
    assert {r.participant.split("-")[0] for r in result.records} == {"syn", "tiny"}


@pytest.mark.parametrize("fixture, kind", [("olmo3_dir", "sliding-window"), ("qwen3_5_dir", "linear-attention")])
def test_play_refuses_models_whose_cache_it_cannot_branch(request, fixture, kind):
    """Closed-loop play branches one shared cache under per-row masks; for sliding-window
    and recurrent layers that would give wrong numbers, so it says so instead."""
    backend = load_backend(ModelSpec(path=str(request.getfixturevalue(fixture)), chat="off", dtype="float32"))
    with pytest.raises(NotImplementedError, match=f"{kind}.*replay"):
        play_model(RestlessBandit(n_trials=3), backend, 2, seed=0, strategy=Interview(), batch_size=2)
