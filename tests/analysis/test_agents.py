"""Agents against people: population tests, the individual-level match, recovery; and their
calibration under known truth (the simulations bench/calibration.py reports)."""

import pandas as pd
import pytest

from surrogate.analysis import agent_comparison
from surrogate.analysis._agents import index_columns
from surrogate.testing.calibration import agents_tables, replicate_agents


def test_index_columns_leave_out_identity_traits_and_parameters():
    frame = pd.DataFrame({"agent": ["a"], "participant": ["p"], "index": [1], "person": ["q"], "n_trials": [4],
                          "win_stay": [0.5], "trait:age": [30], "true:learning_rate": [0.2],
                          "fit:learning_rate": [0.3], "label": ["x"]})
    assert index_columns(frame) == ["win_stay"]


def test_a_strong_difference_and_a_strong_match_are_found():
    people, copies, p_trials, c_trials = agents_tables(80, 60, seed=1, agents_like="copies")
    c = agent_comparison(people, copies, p_trials, c_trials, n_perm=499, seed=0)
    match = {m.on: m for m in c.individual}
    assert set(match) == {"indices"}  # tables built without fits
    assert match["indices"].p < 0.01 and match["indices"].closer > 0 and match["indices"].pairs == 80
    assert all(i.p > 0.001 for i in c.indices)  # copies are the same population
    people, shifted, p_trials, s_trials = agents_tables(80, 60, seed=1, agents_like="shifted")
    c = agent_comparison(people, shifted, p_trials, s_trials, n_perm=499, seed=0)
    by = {i.index: i for i in c.indices}
    assert by["lose_shift"].p < 0.01 and by["lose_shift"].difference > 0  # faster learners follow outcomes


@pytest.mark.slow
@pytest.mark.long
def test_agent_tests_hold_their_level_and_have_power():
    """300 datasets of 40 people and 40 agents without any relation: each test rejects at
    about 5% (binomial SE 1.3 points). Power at 80 + 80 (40 datasets each; measured 0.975 for
    copies on the individual test, 0.70 for doubled learning rates on win-stay)."""
    null = replicate_agents(300, agents_like="independent", n_perm=199, seed=7)
    assert {"individual: indices", "population: choices per trial", "population: win_stay"} <= set(null)
    for name, tally in null.items():
        assert 0.02 <= tally.rate <= 0.09, (name, tally.rate)
    copies = replicate_agents(40, agents_like="copies", n=80, n_perm=199, seed=8)
    assert copies["individual: indices"].rate >= 0.85
    shifted = replicate_agents(40, agents_like="shifted", n=80, n_perm=199, seed=9)
    assert shifted["population: win_stay"].rate >= 0.45
    assert shifted["individual: indices"].rate <= 0.2  # a population shift is not an individual match
