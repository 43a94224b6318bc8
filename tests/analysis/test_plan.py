"""`surrogate plan`: the planner's components, counts and answers (its predicted against
simulated power is measured by bench/calibration.py, section planner)."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.analysis import plan_personas
from surrogate.cli import app
from surrogate.testing.calibration import (SCENARIOS, _true_plan, replace, simulate_pairs, simulate_table,
                                          PAIR_SCENARIOS)


def test_pilot_estimates_recover_the_components():
    s = SCENARIOS["individual 0.025, persona SD 0.2"]
    pilot = plan_personas(simulate_table(s, 3))
    for e in pilot.experiments:
        assert e.sigma2_response == pytest.approx(2 * s.noise_sd**2, rel=0.1)
        assert e.n == 60 and e.recruited == 60 and e.responses == 30
    assert pilot.usable_share == 1.0
    assert all(t >= 0 for t in pilot.tau2.values())  # truncated at 0
    # At the pilot's own design the planner's SE is the estimator's own SE.
    from surrogate.analysis import decompose_personas

    d = decompose_personas(simulate_table(s, 3))
    assert pilot.experiments[0].se(60) == pytest.approx(d.rows[0].individual_component.se, rel=1e-9)
    # More participants, more power; heterogeneity caps what participants can buy.
    assert pilot.power(0.025, 120) > pilot.power(0.025, 60)
    het = _true_plan(SCENARIOS["heterogeneity tau 0.2, K=3"], 0.05)
    assert het.participants_for(0.05, 0.8, k=3) is None  # tau = 0.2 over 3 experiments: unreachable
    assert het.experiments_for(0.05, 100, 0.8) is not None


def test_participants_are_counted_as_recruited():
    """Half the pilot lacks metadata: the planner recommends twice the usable participants."""
    s = SCENARIOS["half without metadata, individual 0.03"]
    pilot = plan_personas(simulate_table(s, 4))
    assert pilot.usable_share == pytest.approx(sum(e.n for e in pilot.experiments) / (60 * s.experiments))
    assert 0.4 < pilot.usable_share < 0.6
    everyone = pilot.model_copy(update={"usable_share": 1.0})
    assert pilot.power(0.03, 120) == pytest.approx(everyone.power(0.03, 120 * pilot.usable_share))
    need, need_all = pilot.participants_for(0.03), everyone.participants_for(0.03)
    assert abs(need * pilot.usable_share - need_all) <= 2
    with pytest.raises(ValueError, match="usable_share="):
        plan_personas(simulate_table(s, 4), usable_share=1.5)


def test_equivalence_power_simulates_the_verdicts_rule():
    """Certain where the SE is tiny and tau is 0; impossible where tau alone puts the
    prediction interval outside the margin (with three or more experiments), whatever n."""
    from surrogate.analysis import Sesoi

    s = SCENARIOS["null, persona SD 0.1"]
    plan = _true_plan(s, sesoi="1%")
    assert plan.equivalence_power(10_000, 6) > 0.99
    assert plan.equivalence_power(20, 6) < plan.equivalence_power(200, 6)
    wide = plan.model_copy(update={"tau2": {"%": 4.0, "nats": 0.0036}})  # tau = 2% > the 1% margin
    assert wide.equivalence_power(100_000, 6) < 0.01  # only where tau^2 is underestimated by chance
    assert wide.participants_for_equivalence(0.8, 6) is None
    # Two experiments: no prediction interval, TOST alone (a claim about these experiments),
    # on 1 df.
    assert plan.equivalence_power(100_000, 2) > 0.9 and plan.equivalence_power(60, 2) < 0.3
    nats = plan.model_copy(update={"sesoi": Sesoi.parse("0.03")})  # 0.03 nats = 1% of 3 nats
    assert nats.equivalence_power(200, 6) == pytest.approx(plan.equivalence_power(200, 6), abs=0.02)


def test_vectorised_paule_mandel_is_statsmodels():
    import warnings

    from statsmodels.stats.meta_analysis import combine_effects

    from surrogate.analysis._inference import paule_mandel

    rng = np.random.default_rng(0)
    y, v = rng.normal(0, 1, (40, 6)), rng.uniform(0.1, 2, (40, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [combine_effects(a, b, method_re="iterated").tau2 for a, b in zip(y, v)]
    np.testing.assert_allclose(paule_mandel(y, v), expected, atol=1e-5)
    assert (paule_mandel(y, v) > 0).any() and (paule_mandel(y, v) == 0).any()


def test_plan_answers_from_a_pilot_folder(tmp_path):
    pilot = tmp_path / "pilot"
    pilot.mkdir()
    table = simulate_table(SCENARIOS["individual 0.025, persona SD 0.2"], 5)
    pairs_table, pairs = simulate_pairs(replace(PAIR_SCENARIOS["pairs: no trend, pair SD 0.1"], experiments=5), 5)
    table = pd.concat([table, pairs_table.assign(n_tokens=2, persona_fields="", persona_donor=None)],
                      ignore_index=True)
    table.assign(unit_key=table["model"] + "/" + table["persona"] + "/" + table["study"] + "/"
                 + table["participant"]).to_parquet(pilot / "responses.parquet")
    base, post = pairs[0].base, pairs[0].post_trained
    res = CliRunner().invoke(app, ["plan", str(pilot), "--model", "m", "--effect", "1%", "--pair", f"{base},{post}",
                                   "--d", "0.3", "--out", str(tmp_path / "plan")])
    assert res.exit_code == 0, res.output
    assert "participants per experiment" in res.output and "Planning misalignment" in res.output
    grid = pd.read_csv(tmp_path / "plan" / "plan.csv")
    assert {"experiments", "participants", "power_individual", "power_equivalence"} <= set(grid.columns)
    # power grows with participants at a fixed number of experiments
    five = grid[grid["experiments"] == 5].sort_values("participants")["power_individual"].to_numpy()
    assert (np.diff(five) >= 0).all() and five[-1] > five[0]
    res = CliRunner().invoke(app, ["plan", str(pilot), "--model", "m", "--power", "2"])
    assert res.exit_code == 2 and "--power" in res.output
