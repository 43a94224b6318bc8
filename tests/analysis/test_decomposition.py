"""The persona decomposition against known truth: tables simulated with persona effects,
participants without metadata, heterogeneity and small experiments (the generator of
bench/calibration.py), run through decompose_personas exactly as the CLI runs it. Rates over
replications live in the calibration bench's record; here, exact values on noise-free tables
and hand computations."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from surrogate.analysis import Sesoi, compare_strategies, decompose_personas, metadata_benefit, participant_means
from surrogate.testing.calibration import SCENARIOS, Scenario, simulate_strategies, simulate_table


def _within(tally, target, reps):
    """A rate within 3 Monte-Carlo standard errors of its target."""
    se = np.sqrt(target * (1 - target) / reps)
    return abs(tally.rate - target) <= 3 * se


# Rates over replications (type-I error, coverage, power) are measured by
# bench/calibration.py and checked through its record (tests/test_bench_records.py); the
# tests here are deterministic and pin down what those rates rest on.

def _cycles(frame: pd.DataFrame) -> list[list[str]]:
    """The swap cycles of one experiment, followed through the shuffled rows' donors."""
    donor = frame[frame.persona == "shuffled"].groupby("participant")["persona_donor"].first().dropna().to_dict()
    seen, cycles = set(), []
    for start in sorted(donor, key=int):
        if start in seen:
            continue
        cycle, p = [], start
        while p not in seen:
            seen.add(p)
            cycle.append(p)
            p = donor[p]
        cycles.append(cycle)
    return cycles


@pytest.mark.parametrize("persona_sd", [0.0, 0.3, 1.0])
def test_a_noise_free_table_gives_exactly_the_planted_individual_component(persona_sd):
    """Without response noise, whatever the personas' own effects: every swap cycle's S - M
    sums to the planted benefit times its size, so every row is exactly it (a sign flip, a
    persona effect that does not cancel, or the wrong control would move it)."""
    s = Scenario("x", experiments=3, participants=15, responses=6, ind=0.07, pop=0.2, persona_sd=persona_sd,
                 noise_sd=0.0)
    d = decompose_personas(simulate_table(s, 4))
    for row in [*d.rows, d.pooled]:
        assert row.individual_component.value == pytest.approx(0.07, abs=1e-9), row.experiment
    null = decompose_personas(simulate_table(replace(s, ind=0.0), 4))
    assert all(abs(r.individual_component.value) < 1e-9 for r in null.rows)


def test_the_individual_test_equals_a_hand_computation():
    """One experiment of 9 (a three-way exchange among four swaps): the estimate is the mean
    of per-participant S - M, its variance the cluster-robust one over the swap cycles
    (K / (K - 1) times the sum of squared residual cycle sums over n^2), t on K - 1 df."""
    from scipy import stats

    frame = simulate_table(Scenario("x", experiments=1, participants=9, responses=5, persona_sd=0.2, ind=0.05), 12)
    means = frame.groupby(["participant", "persona"])["nll"].mean().unstack()
    contrast = means["shuffled"] - means["interview"]
    cycles = _cycles(frame)
    assert sorted(len(c) for c in cycles) == [2, 2, 2, 3]
    sums = np.array([contrast[c].sum() for c in cycles])
    sizes = np.array([len(c) for c in cycles])
    n, k = sizes.sum(), len(cycles)
    value = sums.sum() / n
    se = np.sqrt(k / (k - 1) * np.sum((sums - sizes * value) ** 2) / n**2)
    t = value / se
    p = 2 * stats.t.sf(abs(t), k - 1)
    crit = stats.t.ppf(0.975, k - 1)
    ind = decompose_personas(frame).rows[0].individual_component
    assert ind.value == pytest.approx(value, rel=1e-12)
    assert ind.se == pytest.approx(se, rel=1e-12)
    assert ind.p == pytest.approx(p, rel=1e-9)
    assert (ind.lo, ind.hi) == (pytest.approx(value - crit * se, rel=1e-9), pytest.approx(value + crit * se, rel=1e-9))
    # The total is a plain one-sample t over participants (ddof 1).
    total = decompose_personas(frame).rows[0].total
    x = (means["none"] - means["interview"]).to_numpy()
    assert total.se == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)), rel=1e-12)


def test_response_weights_reproduce_their_estimand_on_a_noise_free_table():
    """A benefit fading over responses, unequal response counts, no noise: participant
    weights give the mean over participants of their mean benefit; response weights weight
    each swap cycle by its members' mean response count, computed here by hand."""
    s = replace(SCENARIOS["fading benefit 0.05, response weights"], experiments=1, participants=12, noise_sd=0.0,
                persona_sd=0.3)
    frame = simulate_table(s, 5)
    means = frame.groupby(["participant", "persona"])["nll"].mean().unstack()
    counts = frame[frame.persona == "none"].groupby("participant").size()
    contrast = means["shuffled"] - means["interview"]
    cycles = _cycles(frame)
    w = {p: counts[c].mean() for c in cycles for p in c}
    by_response = sum(w[p] * contrast[p] for p in w) / sum(w.values())
    d_response = decompose_personas(frame, weight="response").rows[0].individual_component.value
    d_participant = decompose_personas(frame, weight="participant").rows[0].individual_component.value
    assert d_response == pytest.approx(by_response, rel=1e-12)
    assert d_participant == pytest.approx(contrast.mean(), rel=1e-12)
    assert abs(d_response - d_participant) > 1e-4  # the two estimands differ here


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


def test_each_strategy_is_decomposed_against_its_own_control():
    """No noise: narrative's form helps everyone (0.1) and carries no information, interview
    carries 0.05. Each against its own shuffled control gives exactly its own individual
    component and their difference on the shared cycles exactly 0.05; narrative against
    interview's control would count the form as information."""
    s = Scenario("x", experiments=3, participants=12, responses=5, persona_sd=0.2, ind=0.05, noise_sd=0.0)
    frame = simulate_strategies(s, 3, ind_b=0.0, format_b=0.1)
    c = compare_strategies(frame, ["interview", "narrative"])
    assert c.decompositions["interview"].pooled.individual_component.value == pytest.approx(0.05, abs=1e-9)
    assert c.decompositions["narrative"].pooled.individual_component.value == pytest.approx(0.0, abs=1e-9)
    diff = c.differences[0]
    assert (diff.a, diff.b) == ("interview", "narrative")
    assert all(r.individual_component.value == pytest.approx(0.05, abs=1e-9) for r in diff.rows)
    ranking = compare_strategies(simulate_strategies(replace(s, ind=0.0), 7, ind_b=0.08, format_b=0.1),
                                 ["interview", "narrative"]).ranking().set_index("strategy")
    assert ranking.loc["narrative", "rank_individual"] == 1


def test_stratified_singletons_are_left_out_not_faked():
    """30 participants alone in their stratum per experiment, a population effect of 0.1 and
    no individual information: excluded and counted, the individual test holds its level."""
    s = SCENARIOS["stratified, 30 singletons, population 0.1 (null)"]
    frame = simulate_table(s, 1)
    d = decompose_personas(frame)
    assert all(r.n_unpaired == 30 and r.n_participants == 30 for r in d.rows)
    assert d.to_frame().set_index("experiment").loc["exp0", "n_unpaired"] == 30
    shuffled = frame[frame.persona == "shuffled"].groupby(["study", "participant"])["persona_donor"].first()
    assert shuffled.isna().groupby("study").sum().eq(30).all()  # singletons get no control persona
    few = decompose_personas(simulate_table(replace(s, participants=36, singletons=30, stratum_size=2), 2))
    assert all(r.status.startswith("too few participants") for r in few.rows)


def test_form_matched_control_removes_a_persona_recipient_interaction():
    """No noise, no information, a persona x recipient interaction through the form: the plain
    individual component is not 0 (the bias the form-matched control exists for), the content
    component is exactly 0 in every experiment; with information it is exactly that."""
    s = replace(SCENARIOS["interaction through the form (null)"], experiments=3, participants=16, responses=5,
                noise_sd=0.0)
    d = decompose_personas(simulate_table(s, 6))
    assert abs(d.pooled.individual_component.value) > 0.01
    assert all(abs(r.individual_content.value) < 1e-9 for r in d.rows)
    informed = decompose_personas(simulate_table(replace(s, ind=0.05), 6))
    assert all(r.individual_content.value == pytest.approx(0.05, abs=1e-9) for r in informed.rows)


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


def test_the_relative_row_weights_experiments_alike_whatever_their_scale():
    """One experiment at 30 times the others' NLL: the raw pooled row is its mean in nats, the
    relative row the mean of each experiment's per cent of its own no-persona NLL."""
    s = replace(SCENARIOS["unequal scales (one experiment x30), individual 1.5%"], participants=20)
    d = decompose_personas(simulate_table(s, 9))
    rel = [r.relative["individual_component"].value for r in d.rows]
    assert d.pooled_row("pooled_relative").individual_component.value == pytest.approx(np.mean(rel), rel=1e-12)
    assert d.pooled.individual_component.value == pytest.approx(np.mean([r.individual_component.value
                                                                         for r in d.rows]), rel=1e-12)
    assert d.verdict().row == "pooled_relative"


def test_summary_says_why_a_quantity_is_not_defined():
    one = decompose_personas(simulate_table(Scenario("x", experiments=1, participants=30), 1))
    text = one.summary()
    assert "nan" not in text.lower()
    assert "not defined with one experiment" in text
