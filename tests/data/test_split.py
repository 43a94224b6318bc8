"""Seeded splits: order-independent, the requested share, whole studies when asked."""

from __future__ import annotations

import pytest

from surrogate.data import load, split_participants


def test_split_is_order_independent_and_near_the_fraction(psych201):
    people = load(psych201, studies=["guenther2024substitutions", "thoma2025problearn"]).participants
    a = split_participants(people, fraction=0.2, seed=0)
    b = split_participants(list(reversed(people)), fraction=0.2, seed=0)
    assert set(a.heldout) == set(b.heldout) and set(a.train) == set(b.train)
    assert not set(a.heldout) & set(a.train) and len(a.heldout) + len(a.train) == len(people)
    assert 0.15 < len(a.heldout) / len(people) < 0.25  # 1361 people: SD of the share 0.011
    assert set(split_participants(people, seed=1).heldout) != set(a.heldout)
    # Taking fewer people never moves anyone between the sets.
    fewer = split_participants(people[:300], fraction=0.2, seed=0)
    assert set(fewer.heldout) <= set(a.heldout)


def test_experiments_and_named_studies_are_held_out_whole(psych201):
    people = load(psych201, studies=["guenther2024substitutions", "thoma2025problearn", "busch2024_stroop"],
                  max_participants=40).participants
    s = split_participants(people, holdout="experiments", fraction=0.3, seed=0)
    assert s.heldout_studies and all(k[0] in s.heldout_studies for k in s.heldout)
    assert not any(k[0] in s.heldout_studies for k in s.train)
    named = split_participants(people, heldout_studies=["busch2024_stroop"])
    assert {k for k in named.heldout if k[0] == "busch2024_stroop"} == {p.key for p in people
                                                                        if p.study == "busch2024_stroop"}
    with pytest.raises(ValueError, match="not in the data"):
        split_participants(people, heldout_studies=["nope"])
