import numpy as np
import pytest

from surrogate.data import load
from surrogate.personas import (
    Conditioning,
    Interview,
    Narrative,
    Persona,
    Population,
    Shuffled,
    Stratify,
    builtin_strategies,
    derangement,
    resolve_strategies,
)


@pytest.fixture(scope="module")
def thoma(psych201):
    return load(psych201 / "thoma2025problearn", max_participants=12).participants


@pytest.fixture(scope="module")
def sandbrink(psych201):
    return load(psych201 / "sandbrink2024metacontrol", max_participants=6).participants


def test_persona_is_typed(thoma, sandbrink):
    p = Persona.from_participant(thoma[0])
    assert p.demographics == {"age": "3.07", "gender": "female"} and p.condition == {"condition": "static_high"}
    q = Persona.from_participant(sandbrink[0])
    assert set(q.questionnaires) == {"FACSIMILE A/D", "FACSIMILE Compul", "FACSIMILE SW"}
    assert not q.demographics


def test_every_builtin_strategy_renders(thoma, sandbrink):
    """Each built-in strategy's conditioning says what it claims: the own fields' values (own
    strategies), someone else's (shuffled), the experiment's pooled persona (population),
    the fields without values (placebo), nothing (none)."""
    people = thoma[:8]
    rendered = {name: resolve_strategies(name)[0].render(people) for name in builtin_strategies()}
    assert set(rendered) == {"none", "interview", "narrative", "demographics", "questionnaires", "system",
                             "shuffled", "population", "placebo"}
    for p, none, interview, narrative, demo, system, shuffled, population, placebo in zip(
            people, *(rendered[k] for k in ("none", "interview", "narrative", "demographics", "system", "shuffled",
                                             "population", "placebo"))):
        age, gender = p.metadata_text["age"], p.metadata_text["gender"]
        assert none == Conditioning()
        assert interview.prefix == (f"Interviewer: What is your age?\nInterviewee: {age}\n\n"
                                    f"Interviewer: What is your gender?\nInterviewee: {gender}\n\n")
        assert interview.fields == ("age", "gender") and interview.donor is None
        assert f"{age}-year-old" in narrative.prefix and p.metadata_text["condition"] in narrative.prefix
        assert f"Interviewee: {age}\n" in demo.prefix and demo.fields == ("age", "gender")
        assert system.prefix == "" and f"{age}-year-old" in system.system
        donor = next(q for q in people if q.participant == shuffled.donor)
        assert donor is not p and f"Interviewee: {donor.metadata_text['age']}\n" in shuffled.prefix
        assert population.prefix == rendered["population"][0].prefix and population.donor == "population"
        assert age not in placebo.prefix and placebo.prefix.count("I would rather not say.") == 2
    q = resolve_strategies("questionnaires")[0].render(sandbrink[:1])[0]
    assert "FACSIMILE A/D" in q.prefix and str(sandbrink[0].metadata_text["FACSIMILE A/D"]) in q.prefix
    assert resolve_strategies("on")[0].name == "interview"
    assert [s.name for s in resolve_strategies("both")] == ["none", "interview"]


def test_narrative_and_questionnaires(thoma, sandbrink):
    text = Narrative().render(thoma[:1])[0].prefix
    assert text.startswith("Participant description: The participant is a 3.07-year-old woman.")
    assert "static_high condition" in text
    q = resolve_strategies("questionnaires")[0].render(sandbrink[:1])[0]
    assert "Interviewer: What is your FACSIMILE A/D score?\nInterviewee: " in q.prefix
    assert q.fields == ("FACSIMILE A/D", "FACSIMILE Compul", "FACSIMILE SW")
    assert resolve_strategies("demographics")[0].render(sandbrink[:1])[0].prefix == ""


def test_system_strategy_gives_a_system_message(thoma):
    c = resolve_strategies("system")[0].render(thoma[:1])[0]
    assert c.prefix == "" and c.system.startswith("You are a participant in a psychology experiment.")
    assert "You are a 3.07-year-old woman" in c.system


def test_shuffled_is_a_seeded_derangement_within_experiments(thoma, sandbrink):
    people = thoma + sandbrink
    out = Shuffled(seed=3).render(people)
    assert [c.donor for c in out] == [c.donor for c in Shuffled(seed=3).render(people)]
    assert [c.donor for c in out] != [c.donor for c in Shuffled(seed=4).render(people)]
    for p, c in zip(thoma, out):
        assert c.donor != p.participant
        donor = next(q for q in people if q.participant == c.donor and q.experiment == p.experiment)
        assert c.prefix == Interview().render([donor])[0].prefix
    assert sorted(c.donor for c in out[: len(thoma)]) == sorted(p.participant for p in thoma)
    # sandbrink has no interview fields: left out of the derangement before it is drawn.
    assert all(c.donor is None and c.prefix == "" and not c.fields for c in out[len(thoma):])


def test_shuffled_leaves_out_participants_without_metadata_and_can_stratify(thoma):
    import copy

    people = [copy.deepcopy(p) for p in thoma]
    people[0].metadata.clear()
    people[0].metadata_text.clear()
    out = Shuffled(seed=1).render(people)
    assert out[0].donor is None and out[0].prefix == ""
    assert people[0].participant not in {c.donor for c in out}
    strat = Shuffled(seed=1, stratify="gender").render(thoma)
    gender = {p.participant: p.metadata.get("gender") for p in thoma}
    for p, c in zip(thoma, strat):
        if c.donor is not None:
            assert gender[c.donor] == gender[p.participant]


def test_derangement_is_a_uniform_product_of_swaps():
    rng = np.random.default_rng(1)
    counts = {}
    for _ in range(3000):
        perm = derangement(4, rng)
        assert (perm[perm] == np.arange(4)).all()  # swaps only
        counts[tuple(perm)] = counts.get(tuple(perm), 0) + 1
    assert len(counts) == 3  # the three pairings of four
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values())


def test_derangement_is_uniform_over_derangements():
    rng = np.random.default_rng(0)
    counts = {}
    for _ in range(4000):
        perm = tuple(derangement(3, rng))
        counts[perm] = counts.get(perm, 0) + 1
    assert set(counts) == {(1, 2, 0), (2, 0, 1)}  # the only two derangements of three
    assert abs(counts[(1, 2, 0)] / 4000 - 0.5) < 0.05


def test_population_persona_is_pooled(thoma):
    out = Population().render(thoma)
    assert len({c.prefix for c in out}) == 1
    ages = sorted(float(p.metadata["age"]) for p in thoma)
    median = (ages[5] + ages[6]) / 2
    assert f"Interviewee: {median:.4g}\n" in out[0].prefix
    genders = [p.metadata["gender"] for p in thoma]
    assert f"Interviewee: {max(set(genders), key=genders.count)}\n" in out[0].prefix


def test_user_strategies_by_mapping_and_import_path(thoma):
    class Shouting:
        name = "shouting"

        def render(self, participants):
            return [Conditioning(prefix=f"PARTICIPANT {p.participant}!\n") for p in participants]

    registry = {**builtin_strategies(), "shouting": Shouting}
    assert resolve_strategies("none,shouting", registry)[1].render(thoma[:1])[0].prefix == "PARTICIPANT 301!\n"
    assert resolve_strategies("surrogate.personas:Narrative")[0].name == "narrative"
    with pytest.raises(ValueError, match="unknown persona strategy"):
        resolve_strategies("nonsense")
    with pytest.raises(ValueError, match="repeat"):
        resolve_strategies("on,interview")


def test_every_strategy_has_its_own_controls_on_one_pairing(thoma):
    names = "none,interview,narrative,shuffled,shuffled-narrative,placebo,shuffled-placebo,placebo-narrative"
    got = {s.name: s for s in resolve_strategies(names)}
    rendered = {name: s.render(thoma) for name, s in got.items()}
    donors = [c.donor for c in rendered["shuffled"]]
    assert donors == [c.donor for c in rendered["shuffled-narrative"]] == [c.donor for c in rendered["shuffled-placebo"]]
    narrative = {p.participant: c.prefix for p, c in zip(thoma, rendered["narrative"])}
    for c in rendered["shuffled-narrative"]:
        assert c.prefix == narrative[c.donor]  # the partner's persona in the same format
    placebo = rendered["placebo"][0]
    assert placebo.prefix == ("Interviewer: What is your age?\nInterviewee: I would rather not say.\n\n"
                              "Interviewer: What is your gender?\nInterviewee: I would rather not say.\n\n")
    assert placebo.fields == ("age", "gender")
    own = {p.participant: c for p, c in zip(thoma, rendered["placebo"])}
    for c in rendered["shuffled-placebo"]:
        assert c.prefix == own[c.donor].prefix and c.fields == own[c.donor].fields
    assert "3.07" not in rendered["placebo-narrative"][0].prefix and "[withheld]" in rendered["placebo-narrative"][0].prefix
    with pytest.raises(ValueError, match="unknown persona strategy 'shuffled-bogus'"):
        resolve_strategies("shuffled-bogus")


def test_stratify_by_bins_and_missing_fields(thoma):
    strata = Stratify.parse("age:3")
    assert strata.field == "age" and strata.bins == 3
    out = resolve_strategies("shuffled", stratify="age:3")[0].render(thoma)
    ages = {p.participant: float(p.metadata["age"]) for p in thoma}
    levels = dict(zip([p.participant for p in thoma], strata.levels(thoma)))
    assert sorted(set(levels.values())) == ["bin1of3", "bin2of3", "bin3of3"]
    for p, c in zip(thoma, out):
        assert c.donor is not None and levels[c.donor] == levels[p.participant]
    low = [a for q, a in ages.items() if levels[q] == "bin1of3"]
    high = [a for q, a in ages.items() if levels[q] == "bin3of3"]
    assert max(low) <= min(high)
    with pytest.raises(ValueError, match="no participant has this metadata field"):
        resolve_strategies("shuffled", stratify="shoe_size")[0].render(thoma)
    for bad in ("age:1", "age:x", ":3"):
        with pytest.raises(ValueError, match="stratify"):
            Stratify.parse(bad)


def test_derangements_are_bounded():
    with pytest.raises(ValueError, match="derangements"):
        resolve_strategies("shuffled", derangements=1_000_000)
    assert [s.name for s in resolve_strategies("shuffled-narrative", derangements=2)] == [
        "shuffled-narrative", "shuffled-narrative.2"]
