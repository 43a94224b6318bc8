"""The persona decomposition against known truth: tables simulated with persona effects,
participants without metadata, heterogeneity and small experiments (the generator of
bench/calibration.py), run through decompose_personas exactly as the CLI runs it. Rates are
over many replications, never one seed."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from surrogate.analysis import Sesoi, compare_strategies, decompose_personas, metadata_benefit, participant_means
from surrogate.testing.calibration import (SCENARIOS, Scenario, replicate, replicate_levels, simulate_strategies,
                                          simulate_table, truth)


def _within(tally, target, reps):
    """A rate within 3 Monte-Carlo standard errors of its target."""
    se = np.sqrt(target * (1 - target) / reps)
    return abs(tally.rate - target) <= 3 * se


@pytest.mark.slow
def test_null_rejection_is_nominal_with_strong_persona_effects():
    # The old participant-level test rejected 0 of 400 here: persona effects sat in its noise.
    s = Scenario("null", experiments=2, participants=40, responses=10, persona_sd=0.3)
    tallies = replicate(s, 200, seed=11)["individual_component"]
    n = len(tallies["reject"].hits)
    assert n == 400
    assert 0.025 <= tallies["reject"].rate <= 0.08, tallies["reject"].rate
    assert _within(tallies["cover"], 0.95, n), tallies["cover"].rate


@pytest.mark.slow
def test_power_for_a_small_individual_effect_under_persona_effects():
    # The design: 6 experiments x 60 participants x 30 responses, persona SD 0.2,
    # individual effect 0.025 nats/response. The old analysis had no power here.
    s = SCENARIOS["individual 0.025, persona SD 0.2"]
    tallies = replicate(s, 40, seed=12, rows="pooled")["individual_component"]
    assert tallies["reject"].rate >= 0.7, tallies["reject"].rate


@pytest.mark.slow
@pytest.mark.parametrize("n", [8, 15])
def test_small_experiments_keep_coverage(n):
    s = replace(SCENARIOS["small n=8"], participants=n, experiments=4)
    tallies = replicate(s, 100, seed=13)
    for comp in ("total", "population_component", "individual_component"):
        cover = tallies[comp]["cover"]
        assert _within(cover, 0.95, len(cover.hits)), (comp, cover.rate)


@pytest.mark.slow
def test_pooled_row_holds_its_level_under_heterogeneity_with_three_experiments():
    s = replace(SCENARIOS["heterogeneity tau 0.2, K=3"], participants=20, responses=10)
    tallies = replicate(s, 300, seed=14, rows="pooled")["individual_component"]
    assert _within(tallies["cover"], 0.95, 300), tallies["cover"].rate


def test_participants_without_metadata_are_left_out_and_counted():
    s = Scenario("half", experiments=2, participants=60, ind=0.1, share_without_metadata=0.5)
    frame = simulate_table(s, 3)
    result = decompose_personas(frame)
    without = frame[(frame.persona == "interview") & (frame.persona_fields == "")].groupby("study")[
        "participant"].nunique()
    for row in result.rows:
        assert row.n_without_metadata == without[row.experiment] > 0
        assert row.n_participants + row.n_without_metadata == 60
    # Not diluted: the estimate is of the individual effect among those with metadata.
    assert result.pooled.individual_component.lo <= 0.1 <= result.pooled.individual_component.hi
    assert abs(result.pooled.individual_component.value - 0.1) < 0.05


def test_an_experiment_without_metadata_is_reported_as_such():
    frame = simulate_table(Scenario("x", experiments=2, participants=20), 4)
    frame.loc[(frame.study == "exp1") & (frame.persona != "none"), "persona_fields"] = ""
    table = decompose_personas(frame).to_frame().set_index("experiment")
    assert table.loc["exp1", "status"] == "no metadata"
    assert np.isnan(table.loc["exp1", "individual_p"]) and np.isnan(table.loc["exp1", "total_lo"])
    assert table.loc["exp0", "status"] == "ok"


def test_population_control_estimand_is_documented_not_silently_used():
    s = SCENARIOS["population control, unequal fields (null)"]
    result = decompose_personas(simulate_table(s, 5), control="population")
    assert any("completeness" in n for n in result.notes)
    # Its individual component picks up persona completeness under a true null (the bias
    # the review measured), which is why shuffled is the default control.
    assert result.pooled.individual_component.value < -0.05


def test_by_experiment_does_not_crash_and_matches_by_study():
    frame = simulate_table(Scenario("x", experiments=2, participants=20, ind=0.1), 6)
    a = decompose_personas(frame, by="experiment").to_frame()
    b = decompose_personas(frame, by="study").to_frame()
    pd.testing.assert_frame_equal(a, b)


def test_table_columns_and_multiplicity_adjustment():
    frame = simulate_table(Scenario("x", experiments=5, participants=20, ind=0.05), 7)
    table = decompose_personas(frame).to_frame()
    for col in ["experiment", "n_participants", "total", "total_lo", "total_hi", "population_component",
                "population_component_lo", "population_component_hi", "individual_component",
                "individual_component_lo", "individual_component_hi", "individual_p", "d_z_individual",
                "individual_p_holm", "individual_p_bh", "individual_tost_p", "individual_mde",
                "individual_component_tau2", "individual_component_i2", "individual_component_pi_lo",
                "status", "n_without_metadata"]:
        assert col in table.columns, col
    assert list(table["experiment"]) == ["exp0", "exp1", "exp2", "exp3", "exp4", "pooled", "pooled_fixed",
                                         "pooled_relative"]
    exp = table.iloc[:5]
    p = exp["individual_p"].to_numpy()
    order = np.argsort(p)
    holm = np.minimum(1, np.maximum.accumulate((5 - np.arange(5)) * p[order]))
    np.testing.assert_allclose(exp["individual_p_holm"].to_numpy()[order], holm)
    assert (exp["individual_p_bh"] >= exp["individual_p"] - 1e-12).all()
    assert (exp["individual_p_bh"] <= exp["individual_p_holm"] + 1e-12).all()
    pooled = table.set_index("experiment").loc["pooled"]
    assert pooled["individual_component_pi_lo"] <= pooled["individual_component_lo"]


def test_equivalence_test_claims_no_effect_only_when_the_interval_is_inside_the_margin():
    big = simulate_table(Scenario("x", experiments=4, participants=200, responses=60), 8)
    r = decompose_personas(big, sesoi=0.05)
    ind = r.pooled.individual_component
    assert -0.05 < ind.lo and ind.hi < 0.05
    row = r.to_frame().set_index("experiment").loc["pooled"]
    assert row["individual_tost_p"] < 0.05
    assert decompose_personas(big, sesoi=0.0001).to_frame().set_index("experiment").loc[
        "pooled", "individual_tost_p"] > 0.05


def test_participant_means_use_only_responses_scored_in_every_condition():
    frame = simulate_table(Scenario("x", experiments=1, participants=4, responses=5), 9)
    frame.loc[(frame.persona == "interview") & (frame.response_index == 4), "nll"] = np.nan
    means = participant_means(frame, ["none", "interview"])
    assert (means["n_responses"] == 4).all()
    expected = frame[(frame.persona == "none") & (frame.response_index < 4)].groupby("participant")["nll"].mean()
    np.testing.assert_allclose(means.set_index("participant")["none"].sort_index(), expected.sort_index())


def test_metadata_benefit_restricts_to_participants_with_metadata():
    s = Scenario("x", experiments=3, participants=40, pop=0.3, share_without_metadata=0.5)
    frame = simulate_table(s, 10)
    mb = metadata_benefit(frame)
    means = participant_means(frame, ["none", "interview"])
    has = frame[(frame.persona == "interview") & (frame.persona_fields != "")]
    g = means[(means.unit == "exp0") & means.participant.isin(has[has.study == "exp0"].participant)]
    pooled_sd = np.sqrt((g["none"].var() + g["interview"].var()) / 2)
    assert mb.per_experiment["exp0"] == pytest.approx((g["none"].mean() - g["interview"].mean()) / pooled_sd)
    assert mb.n_participants["exp0"] == len(g) < 40
    assert mb.mean.n == 3


# --- issue 16: designs beyond the plain swap ----------------------------------------------

def test_a_control_of_another_strategy_is_refused():
    frame = simulate_strategies(Scenario("x", experiments=1, participants=20), 1, ind_b=0.0)
    with pytest.raises(ValueError, match="renders 'interview' personas.*shuffled-narrative"):
        decompose_personas(frame, matched="narrative", control="shuffled")
    d = decompose_personas(frame, matched="narrative")  # its own control by default
    assert d.control == "shuffled-narrative"


def test_strategies_too_small_to_pool_are_summarised_not_crashed():
    """Four participants per experiment: no strategy has a pooled row, and the summary says
    why for each instead of failing (it once raised KeyError on the empty ranking)."""
    frame = simulate_strategies(Scenario("x", experiments=2, participants=4), 1, ind_b=0.0)
    c = compare_strategies(frame, ["interview", "narrative"])
    assert c.ranking().empty
    text = c.summary()
    assert "no strategy could be pooled" in text and "too few participants" in text


@pytest.mark.slow
def test_strategies_are_compared_on_their_own_controls_and_shared_cycles():
    """A narrative format that helps everyone (format 0.1) is no individual information:
    compared on its own shuffled control it shows none, while the difference in total
    benefit is found; with real individual information in narrative the difference is."""
    s = Scenario("x", experiments=4, participants=40, responses=10, persona_sd=0.2)
    rejections = []
    for k in range(150):
        c = compare_strategies(simulate_strategies(s, 300 + k, ind_b=0.0, format_b=0.1), ["interview", "narrative"])
        diff = c.differences[0].pooled
        rejections.append(diff.individual_component.p < 0.05)
        assert diff.total.value < 0  # narrative's format lowers NLL for its owner
    assert 0.02 <= np.mean(rejections) <= 0.09, np.mean(rejections)
    c = compare_strategies(simulate_strategies(s, 7, ind_b=0.08, format_b=0.1), ["interview", "narrative"])
    ranking = c.ranking().set_index("strategy")
    assert ranking.loc["narrative", "rank_individual"] == 1
    assert c.differences[0].pooled.individual_component.hi < 0  # interview - narrative


@pytest.mark.slow
def test_stratified_singletons_are_left_out_not_faked():
    """30 participants alone in their stratum per experiment, a population effect of 0.1 and
    no individual information: excluded and counted, the individual test holds its level."""
    s = SCENARIOS["stratified, 30 singletons, population 0.1 (null)"]
    frame = simulate_table(s, 1)
    d = decompose_personas(frame)
    assert all(r.n_unpaired == 30 and r.n_participants == 30 for r in d.rows)
    assert d.to_frame().set_index("experiment").loc["exp0", "n_unpaired"] == 30
    tallies = replicate(s, 150, seed=21, rows="pooled")["individual_component"]
    assert 0.01 <= tallies["reject"].rate <= 0.09, tallies["reject"].rate
    few = decompose_personas(simulate_table(replace(s, participants=36, singletons=30, stratum_size=2), 2))
    assert all(r.status.startswith("too few participants") for r in few.rows)


@pytest.mark.slow
def test_form_matched_control_removes_a_persona_recipient_interaction():
    s = SCENARIOS["interaction through the form (null)"]
    levels = replicate_levels(s, 120, seed=22)
    plain = levels["pooled"]["individual_component"]["reject"].rate
    content = levels["pooled"]["individual_content"]["reject"].rate
    assert plain > 0.2, plain  # the interaction passes as individual information...
    assert 0.01 <= content <= 0.09, content  # ...the difference in differences does not
    experiments = levels["experiments"]["individual_content"]
    assert abs(experiments["cover"].rate - 0.95) < 3 * np.sqrt(0.05 * 0.95 / len(experiments["cover"].hits))


@pytest.mark.slow
def test_response_weights_estimate_their_own_estimand():
    """A benefit fading over trials, unequal response counts: participant weights estimate
    the mean over participants, response weights the response-weighted mean (cycles weighted
    by their mean response count); each interval covers its own truth."""
    for name in ("fading benefit 0.05, participant weights", "fading benefit 0.05, response weights"):
        s = SCENARIOS[name]
        tallies = replicate(s, 120, seed=23, rows="experiments")["individual_component"]
        n = len(tallies["cover"].hits)
        assert abs(tallies["cover"].rate - 0.95) < 3 * np.sqrt(0.05 * 0.95 / n), (name, tallies["cover"].rate)
    assert truth(SCENARIOS["fading benefit 0.05, response weights"])["individual_component"] < \
        truth(SCENARIOS["fading benefit 0.05, participant weights"])["individual_component"]


def test_swap_partners_share_a_weight():
    frame = simulate_table(replace(SCENARIOS["unequal response counts"], experiments=1), 3)
    d = decompose_personas(frame, weight="response")
    assert d.weight == "response" and "cycle" in d.to_frame()["estimand"].iloc[0]
    with pytest.raises(ValueError, match="participant or response"):
        decompose_personas(frame, weight="token")


def test_relative_sesoi_and_its_pooled_claim():
    assert Sesoi.parse("1%") == Sesoi(value=1, unit="%")
    assert Sesoi.parse("0.01") == Sesoi(value=0.01, unit="nats")
    assert Sesoi.parse("0.002/token") == Sesoi(value=0.002, unit="nats/token")
    for bad in ("-1%", "0", "abc"):
        with pytest.raises(ValueError, match="sesoi"):
            Sesoi.parse(bad)
    big = simulate_table(Scenario("x", experiments=4, participants=200, responses=60, pop=0.2), 8)
    d = decompose_personas(big, sesoi="2%")
    eq = d.equivalence()
    assert eq.row == "pooled_relative" and eq.margin == 2.0
    rel = d.pooled_row("pooled_relative").individual_component
    assert -2 < rel.lo and rel.hi < 2 and eq.tost_p < 0.05 and eq.equivalent and eq.prediction_inside
    assert not eq.total_indistinguishable
    row = d.to_frame().set_index("experiment").loc["exp0"]
    assert row["sesoi_margin"] == pytest.approx(0.02 * row["none_nll"])
    # A model that ignores the prefix: no total benefit either, and the summary says so.
    flat = decompose_personas(simulate_table(Scenario("x", experiments=4, participants=200, responses=60), 8),
                              sesoi="2%")
    assert flat.equivalence().total_indistinguishable and "may ignore the prefix" in flat.summary()
    assert flat.verdict().kind == "equivalent" and "may ignore it" in flat.verdict().text
    two = decompose_personas(simulate_table(Scenario("x", experiments=2, participants=200, responses=60), 8),
                             sesoi="2%")
    # Two experiments: no prediction interval, so equivalence (where TOST shows it) is claimed for
    # these experiments only.
    eq2 = two.equivalence()
    assert eq2.prediction_inside is None and eq2.scope == "these experiments"
    assert eq2.equivalent == (eq2.tost_p < 0.05)
    assert "not defined with fewer than 3" in two.summary() and "these experiments only" in two.summary()


@pytest.mark.slow
def test_pooling_on_the_relative_scale_holds_its_level_when_scales_differ():
    s = SCENARIOS["unequal scales (one experiment x30), null"]
    levels = replicate_levels(s, 150, seed=24)
    raw = levels["pooled"]["individual_component"]["reject"].rate
    rel = levels["pooled_relative"]["individual_component"]["reject"].rate
    assert raw < 0.025, raw  # dominated by the 30x experiment: conservative
    assert 0.02 <= rel <= 0.09, rel


def test_summary_says_why_a_quantity_is_not_defined():
    one = decompose_personas(simulate_table(Scenario("x", experiments=1, participants=30), 1))
    text = one.summary()
    assert "nan" not in text.lower()
    assert "not defined with one experiment" in text
