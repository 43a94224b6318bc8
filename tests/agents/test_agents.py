import numpy as np
import pytest
import torch

from surrogate.agents import ParticipantAgent, detect_option_sets, make_agents, replay_agents, slots
from surrogate.data import load, prepare_transcript
from surrogate.models import ChoiceRequest, ModelSpec, load_backend
from surrogate.personas import Interview, NoPersona, Shuffled
from surrogate.store import read_choices, read_responses
from surrogate.jobs.run import run


def _sets(psych201, study, n=6):
    ps = load(psych201 / study, max_participants=n).participants
    return ps, detect_option_sets(ps, [prepare_transcript(p.text) for p in ps])


def test_fixed_labels_are_detected_per_experiment(psych201):
    ps, sets = _sets(psych201, "busch2024_stroop")
    assert all(sets.for_participant(p)[0] == ("down", "left", "right") for p in ps)
    assert all(sets.shared.values())


def test_randomised_labels_are_detected_per_participant(psych201):
    ps, sets = _sets(psych201, "thoma2025problearn")
    labels = {sets.for_participant(p)[0] for p in ps}
    assert len(labels) > 1 and all(len(s) == 2 for s in labels)
    assert not any(sets.shared.values())


def test_two_slots_per_trial_get_their_own_sets(psych201):
    ps, sets = _sets(psych201, "shahar2019twosteptask", n=2)
    t = prepare_transcript(ps[0].text)
    opts = sets.for_participant(ps[0])
    first, second = {opts[i] for i, k in enumerate(slots(t)) if k == 0}, {opts[i] for i, k in enumerate(slots(t)) if k == 1}
    assert len(first) == len(second) == 1 and first != second


@pytest.mark.parametrize("study", ["guenther2024substitutions", "alsobay2025publicGoodsGame",
                                   "guenther2022relational"])
def test_open_responses_are_not_closed_sets(psych201, study):
    ps, sets = _sets(psych201, study)
    assert not sets.options and len(sets.skipped) == len(ps)


def test_declared_options_override_and_are_checked(psych201):
    ps = load(psych201 / "busch2024_stroop", max_participants=2).participants
    ts = [prepare_transcript(p.text) for p in ps]
    sets = detect_option_sets(ps, ts, declared={"busch2024_stroop": ["left", "down", "right", "up"]})
    assert sets.for_participant(ps[0])[0] == ("left", "down", "right", "up")
    bad = detect_option_sets(ps, ts, declared={"busch2024_stroop": ["left", "down"]})
    assert not bad.options and "not among the declared options" in next(iter(bad.skipped.values()))


def test_agent_variants_are_configurations_of_one_type(qwen_backend, psych201):
    ps = load(psych201 / "thoma2025problearn", max_participants=3).participants
    base = make_agents(ps, qwen_backend, NoPersona())
    persona = make_agents(ps, qwen_backend, Interview())
    control = make_agents(ps, qwen_backend, Shuffled())
    assert {type(a) for a in base + persona + control} == {ParticipantAgent}
    assert persona[0].transcript.text.startswith("Interviewer: What is your age?")
    table = replay_agents(persona)
    one = persona[0].replay()
    np.testing.assert_allclose(one["nll"], table[table.participant == ps[0].participant]["nll"], atol=1e-4)
    assert (table["persona"] == "interview").all() and table["nll"].notna().all()


def test_choice_distributions_are_exact_for_single_and_multi_token_options(qwen_dir, psych201):
    backend = load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32"))
    p = load(psych201 / "busch2024_stroop", max_participants=1).participants[0]
    agent = make_agents([p], backend)[0]
    opts = ("down", "left", "right", "upward diagonal press")
    assert len(backend.encoder.piece_ids(opts[-1])) > 1
    req = agent.request([opts] * len(agent.transcript.spans))
    assert isinstance(req, ChoiceRequest)
    _, res = next(backend.score_choices([req]))
    lp = np.asarray(res.option_logprobs)
    enc = backend.encode(req)
    for r in (0, 17, 60):
        start = int(np.nonzero(enc.response_of == r)[0][0])
        for k, o in enumerate(opts):
            ids = list(enc.ids[:start]) + backend.encoder.piece_ids(o)
            with torch.inference_mode():
                logp = torch.log_softmax(backend.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            brute = sum(logp[start + m - 1, ids[start + m]].item() for m in range(len(ids) - start))
            assert lp[r, k] == pytest.approx(brute, abs=1e-3)
    # The recorded response's option log-probability is its NLL.
    said = [opts.index(x) for x in agent.transcript.responses]
    np.testing.assert_allclose(-lp[np.arange(len(said)), said], res.nll, atol=1e-4)
    table = agent.choices([opts] * len(agent.transcript.spans))
    assert np.allclose(table["probs"].map(sum), 1)
    best = table["probs"].map(np.argmax) == table["options"].map(list).combine(table["chosen"], lambda o, c: o.index(c))
    np.testing.assert_array_equal(table["correct"].to_numpy(), best.to_numpy().astype(float))


def test_ties_count_as_the_expected_accuracy_of_a_random_break():
    from surrogate.agents._agent import _tie_share

    assert _tie_share(np.array([0.5, 0.5]), 0) == 0.5
    assert _tie_share(np.array([0.25, 0.5, 0.25]), 0) == 0.0
    assert _tie_share(np.array([0.2, 0.6, 0.2]), 1) == 1.0


def test_run_writes_choices_consistent_with_responses(qwen_dir, psych201, tmp_path):
    out = tmp_path / "run"
    run([str(qwen_dir)], psych201, "both", out, studies=["busch2024_stroop", "guenther2022relational"],
        max_participants=2, chat="off")
    responses, choices = read_responses(out), read_choices(out)
    assert set(choices["study"]) == {"busch2024_stroop"}  # the open-response study has none
    merged = choices.merge(responses, on=["unit_key", "response_index"])
    assert len(merged) == len(choices) == len(responses[responses.study == "busch2024_stroop"])
    assert (merged["chosen"] == merged["response_text"]).all()
    assert all(tuple(o) == ("down", "left", "right") for o in merged["options"])
    np.testing.assert_allclose(merged["probs"].map(sum), 1.0, atol=1e-9)
    # Normalising over the options can only raise the chosen response's probability.
    assert (merged["nll_choice"] <= merged["nll"] + 1e-6).all()
    np.testing.assert_allclose(merged["nll_choice"], -np.log(merged["p_chosen"]), atol=1e-9)


def _fresh_option_logprob(backend, context_ids, option_ids):
    """log p(option | context) from one plain forward pass of the model over context + option."""
    import torch

    ids = list(context_ids) + list(option_ids)
    with torch.inference_mode():
        logp = torch.log_softmax(backend.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return sum(logp[len(context_ids) + m - 1, t].item() for m, t in enumerate(option_ids))


@pytest.mark.parametrize("opts", [("down", "left", "right"),  # one token each
                                  ("down", "left", "right", "right away", "lower left corner")])
def test_batched_choice_scoring_equals_one_transcript_at_a_time(qwen_dir, psych201, opts):
    """Transcripts go through the model together (padded, length-bucketed), multi-token
    options continuing from the batch's cache; every number equals scoring each transcript
    alone, and option log-probabilities equal plain forward passes over context + option."""
    backend = load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32", batch_tokens=1 << 16))
    people = load(psych201 / "busch2024_stroop", max_participants=4).participants
    lengths = [len(backend.encoder.piece_ids(o)) for o in opts]
    assert lengths[:3] == [1, 1, 1] and all(n > 1 for n in lengths[3:])
    agents = make_agents(people, backend)
    reqs = [a.request([opts] * len(a.transcript.spans)) for a in agents]
    assert len(backend.batches([len(backend.encode(r)) for r in reqs])) == 1  # one padded pass
    together = dict(backend.score_choices(reqs))
    for i, req in enumerate(reqs):
        (_, alone), = backend.score_choices([req])
        np.testing.assert_allclose(together[i].option_logprobs, alone.option_logprobs, atol=1e-4)
        np.testing.assert_allclose(together[i].nll, alone.nll, atol=1e-4)
        assert together[i].n_tokens == alone.n_tokens and together[i].top1 == alone.top1
    enc = backend.encode(reqs[1])
    for r in (0, 7, enc.n_responses - 1):
        first = int(np.argmax(enc.response_of == r))
        want = [_fresh_option_logprob(backend, enc.ids[:first], backend.encoder.piece_ids(o)) for o in opts]
        np.testing.assert_allclose(together[1].option_logprobs[r], want, atol=1e-4)
