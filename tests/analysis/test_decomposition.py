"""Ground truth for the persona decomposition: per-response NLL tables with planted
individual- and population-level effects, recovered within their CIs; power and size of
the individual-level test over seeded replications."""

import numpy as np
import pandas as pd
import pytest

from surrogate.analysis import decompose_personas, metadata_benefit, participant_means


def simulate(n=120, experiments=3, responses=30, pop=0.0, ind=0.0, ind_sd=0.3, seed=0):
    """NLL = participant baseline + response difficulty + condition effect + noise.

    Any persona lowers NLL by `pop` (population level); the matched persona lowers it by a
    further ind_i ~ N(ind, ind_sd) for participant i (individual level)."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(experiments):
        for i in range(n):
            base = rng.normal(3.0, 0.5)
            difficulty = rng.normal(0, 1.0, responses)
            gain = rng.normal(ind, ind_sd)
            for persona, effect in (("none", 0.0), ("shuffled", -pop), ("population", -pop),
                                    ("interview", -pop - gain)):
                nll = base + difficulty + effect + rng.normal(0, 0.05, responses)
                rows += [{"study": f"exp{e}", "experiment": f"exp{e}", "participant": str(i),
                          "response_index": r, "model": "m", "persona": persona, "nll": nll[r]}
                         for r in range(responses)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("pop, ind", [(0.0, 0.2), (0.3, 0.0), (0.3, 0.2), (0.0, 0.0)],
                         ids=["individual", "population", "both", "neither"])
def test_planted_effects_are_recovered_within_their_cis(pop, ind):
    result = decompose_personas(simulate(pop=pop, ind=ind, seed=1), n_boot=1000, n_perm=999, mixed=False)
    pooled = result.pooled
    for est, truth in ((pooled.population_component, pop), (pooled.individual_component, ind),
                       (pooled.total, pop + ind)):
        assert est.lo <= truth <= est.hi, (est, truth)
    assert (pooled.individual_component.p < 0.05) == (ind > 0)
    # The population-level effect must not leak into the individual component, nor back.
    assert abs(pooled.individual_component.value - ind) < 0.05
    assert abs(pooled.population_component.value - pop) < 0.05
    for row in result.rows:
        assert row.n_participants == 120
        assert row.individual_component.lo <= ind <= row.individual_component.hi


def test_population_control_gives_the_same_split():
    frame = simulate(pop=0.3, ind=0.2, seed=2)
    result = decompose_personas(frame, control="population", n_boot=500, n_perm=999, mixed=False)
    assert result.pooled.population_component.lo <= 0.3 <= result.pooled.population_component.hi
    assert result.pooled.individual_component.lo <= 0.2 <= result.pooled.individual_component.hi


def _rejects(seed, ind, n=200):
    # d_z = 0.3 for the individual component: ind / ind_sd = 0.3 (other noise is tiny).
    frame = simulate(n=n, experiments=1, responses=10, ind=ind, ind_sd=1.0, seed=seed)
    result = decompose_personas(frame, n_boot=0, n_perm=999, mixed=False, seed=seed)
    return result.pooled.individual_component.p < 0.05, result.pooled.d_z_individual


def test_power_for_individual_effect_dz_03_with_200_participants():
    outcomes = [_rejects(seed, ind=0.3) for seed in range(100)]
    power = np.mean([r for r, _ in outcomes])
    assert abs(np.mean([dz for _, dz in outcomes]) - 0.3) < 0.05  # the planted effect size
    assert power >= 0.80, power


def test_null_rejection_rate_is_nominal():
    reps = 400
    rate = np.mean([_rejects(1000 + seed, ind=0.0)[0] for seed in range(reps)])
    se = np.sqrt(0.05 * 0.95 / reps)
    assert rate <= 0.05 + 2 * se, rate


def test_mixed_model_recovers_strategy_effects():
    result = decompose_personas(simulate(pop=0.3, ind=0.2, seed=3), n_boot=0, n_perm=99)
    effects = result.mixed.effects
    assert effects["interview"].lo <= -0.5 <= effects["interview"].hi
    assert effects["shuffled"].lo <= -0.3 <= effects["shuffled"].hi
    assert "experiment" in result.mixed.formula


def test_participant_means_use_only_responses_scored_in_every_condition():
    frame = simulate(n=4, experiments=1, responses=5, seed=4)
    frame.loc[(frame.persona == "interview") & (frame.response_index == 4), "nll"] = np.nan
    means = participant_means(frame, ["none", "interview"])
    assert (means["n_responses"] == 4).all()
    expected = frame[(frame.persona == "none") & (frame.response_index < 4)].groupby("participant")["nll"].mean()
    np.testing.assert_allclose(means.set_index("participant")["none"].sort_index(), expected.sort_index())


def test_metadata_benefit_is_the_papers_cohens_d():
    frame = simulate(pop=0.3, ind=0.0, seed=5)
    mb = metadata_benefit(frame, n_boot=200)
    means = participant_means(frame, ["none", "interview"])
    g = means[means.unit == "exp0"]
    pooled_sd = np.sqrt((g["none"].var() + g["interview"].var()) / 2)
    assert mb.per_experiment["exp0"] == pytest.approx((g["none"].mean() - g["interview"].mean()) / pooled_sd)
    assert mb.mean.n == 3


def test_table_has_the_documented_columns():
    table = decompose_personas(simulate(n=20, seed=6), n_boot=100, n_perm=99, mixed=False).to_frame()
    for col in ["experiment", "n_participants", "total", "total_lo", "total_hi", "population_component",
                "population_component_lo", "population_component_hi", "individual_component",
                "individual_component_lo", "individual_component_hi", "individual_p", "d_z_individual"]:
        assert col in table.columns
    assert list(table["experiment"]) == ["exp0", "exp1", "exp2", "pooled"]
