"""Agents against people: population tests, the individual-level match, recovery; and their
calibration under known truth is bench/calibration.py's section agents."""

import pandas as pd

from surrogate.analysis import agent_comparison
from surrogate.analysis._agents import index_columns
from surrogate.testing.calibration import agents_tables


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
