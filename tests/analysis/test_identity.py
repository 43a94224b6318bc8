"""A participant is a session (study, experiment, participant id): on real studies whose ids
repeat across their experiments, pairing, donors, differences and bootstraps never mix two
people who share an id. The tables are the ones `surrogate run` writes for the real
participants, with NLLs from a generative model of known truth."""

import pandas as pd
import pytest

from surrogate.analysis import ModelPair, compare_strategies, decompose_personas, post_training_misalignment
from surrogate.data import Participant, SourceRef, load
from surrogate.personas import Stratify, swap_pairing
from surrogate.testing.calibration import simulate_sessions

REPEATED = ["guenther2024associations_sentences_texts", "guenther2024substitutions"]


@pytest.fixture(scope="module")
def people(psych201):
    ds = load(psych201, studies=REPEATED)
    ids = pd.DataFrame([p.key for p in ds.participants], columns=["study", "experiment", "participant"])
    # The shape that broke the default decomposition: the same id in several experiments.
    assert (ids.groupby(["study", "participant"]).size() > 1).sum() > 400
    return ds.participants


def _with_metadata(table: pd.DataFrame) -> pd.Series:
    rows = table[(table.persona == "interview") & (table.persona_fields != "")]
    return rows.drop_duplicates(["study", "experiment", "participant"]).groupby("study").size()


@pytest.mark.parametrize("recorded", [True, False], ids=["donor experiment recorded", "older tables: id only"])
def test_every_session_is_paired_and_counted_once(people, recorded):
    table = simulate_sessions(people, ["none", "interview", "shuffled", "narrative", "shuffled-narrative"], seed=3,
                              record_donor_experiment=recorded)
    expected = _with_metadata(table)
    d = decompose_personas(table)
    for row in d.rows:
        assert row.status == "ok"
        assert row.n_unpaired == 0
        assert row.n_participants == expected[row.experiment]  # 540 and 877, not "none paired"
    diffs = compare_strategies(table, ["interview", "narrative"]).differences_frame().set_index("experiment")
    for study in REPEATED:
        assert diffs.loc[study, "n_participants"] == expected[study]  # not the cross product (1,080; 2,047)


def test_a_planted_individual_effect_is_recovered_on_the_real_shape(people):
    table = simulate_sessions(people, ["none", "interview", "shuffled"], seed=4, ind=0.3, persona_sd=0.2)
    ind = decompose_personas(table).pooled.individual_component
    assert ind.lo < 0.3 < ind.hi and abs(ind.value - 0.3) < 0.05


def test_study_person_clusters_a_persons_sessions(people):
    table = simulate_sessions(people, ["none", "interview", "shuffled"], seed=5)
    one = [r for r in decompose_personas(table, by="study").rows if r.experiment == REPEATED[0]][0]
    person = [r for r in decompose_personas(table, by="study-person").rows if r.experiment == REPEATED[0]][0]
    assert one.n_participants == person.n_participants == 540
    assert one.total.df == 539  # sessions independent
    assert person.total.df == pytest.approx(269)  # 270 people, two sessions each
    assert person.individual_component.df < one.individual_component.df


def test_misalignment_treats_sessions_apart_and_persons_together(people):
    a = simulate_sessions(people, ["none"], seed=6).assign(model="base")
    b = a.assign(model="post", nll=a["nll"] + 0.1)
    table = pd.concat([a, b], ignore_index=True)
    pair = [ModelPair(base="base", post_trained="post")]
    sessions = post_training_misalignment(table, pair, n_boot=50).pairs[0]
    persons = post_training_misalignment(table, pair, by="study-person", n_boot=50).pairs[0]
    assert sessions.n_participants[REPEATED[0]] == 540
    assert persons.n_participants[REPEATED[0]] == 270
    with pytest.raises(ValueError, match="by='person'"):
        post_training_misalignment(table, pair, by="person")


def _person(i: int, **metadata) -> Participant:
    return Participant(study="s", experiment="e", participant=str(i), text="", metadata=metadata,
                       metadata_text={k: str(v) for k, v in metadata.items()}, source=SourceRef(file="x", line=i))


@pytest.mark.parametrize("stratify", ["group", "age:2"])
def test_a_stratify_field_some_participants_lack_is_no_stratum(stratify):
    field = stratify.split(":")[0]
    value = (lambda i: "a" if i % 2 else "b") if field == "group" else (lambda i: 20 + i)
    people = [_person(i, **({field: value(i)} if i >= 4 else {"other": 1})) for i in range(12)]
    s = Stratify.parse(stratify)
    assert [p.participant for p in s.lacking(people)] == ["0", "1", "2", "3"]
    donors = swap_pairing(people, [True] * 12, seed=0, stratify=s)
    assert donors[:4] == [None] * 4  # never swapped among themselves as a "None" level
    levels = s.levels(people)
    for i, d in enumerate(donors[4:], start=4):
        assert d is not None and d >= 4 and levels[d] == levels[i]
