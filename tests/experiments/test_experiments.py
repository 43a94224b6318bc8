import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from surrogate.analysis import decompose_personas
from surrogate.cli import app
from surrogate.data import load, prepare_transcript
from surrogate.experiments import (
    BUILTIN,
    MixedLotteries,
    OracleBackend,
    ProspectTheory,
    SyntheticSpec,
    TraitLink,
    choice_nlls,
    simulate_synthetic,
)
from surrogate.jobs.simulate import read_sessions, resolve_experiment, simulate
from surrogate.jobs.run import run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two_doors.py"


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_paradigms_are_seeded_and_documented(name):
    exp = BUILTIN[name](n_trials=12)
    assert "(" in type(exp).__doc__ and any(y in type(exp).__doc__ for y in ("19", "20"))  # cites its source
    a = simulate_synthetic(exp, 3, seed=5)
    b = simulate_synthetic(exp, 3, seed=5)
    c = simulate_synthetic(exp, 3, seed=6)
    assert [r.text for r in a] == [r.text for r in b] != [r.text for r in c]
    labels = {r.trials[0].options for r in simulate_synthetic(exp, 12, seed=0)}
    assert len(labels) > 1  # labels are drawn per participant


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_transcripts_round_trip_through_the_loader(name, tmp_path):
    result = simulate(name, ["synthetic"], 8, seed=1, out=tmp_path / name, trials=15)
    ds = load(tmp_path / name / name / "prompts.jsonl")
    assert len(ds) == 8 and ds.studies == [name]
    for p, rec in zip(ds, result.records):
        assert p.text == rec.text and p.participant == rec.participant and p.experiment == name
        assert p.metadata == rec.metadata  # traits, as numbers and strings
        assert prepare_transcript(p.text).responses == tuple(rec.choices)
    assert [r.model_dump() for r in read_sessions(tmp_path / name)] == [r.model_dump() for r in result.records]


def test_trait_links_shape_parameters():
    spec = SyntheticSpec(links=(TraitLink(trait="STAI-T", param="loss_aversion", slope=0.5),))
    recs = simulate_synthetic(MixedLotteries(n_trials=2), 300, seed=0, spec=spec)
    anxiety = np.array([r.metadata["STAI-T"] for r in recs], dtype=float)
    lam = np.log([r.params["loss_aversion"] for r in recs])
    assert np.corrcoef(anxiety, lam)[0, 1] > 0.6
    none = simulate_synthetic(MixedLotteries(n_trials=2), 300, seed=0, spec=SyntheticSpec())
    lam0 = np.log([r.params["loss_aversion"] for r in none])
    assert abs(np.corrcoef(anxiety, lam0)[0, 1]) < 0.15
    with pytest.raises(ValueError, match="targets parameter"):
        simulate_synthetic(MixedLotteries(n_trials=2), 1, spec=SyntheticSpec(
            links=(TraitLink(trait="age", param="nonsense", slope=1.0),)))


def test_the_oracle_runs_through_surrogate_run_into_the_decomposition(tmp_path):
    """Synthetic people in the lottery task whose anxiety raises loss aversion; an oracle that
    believes so scores them under none / interview / shuffled / population personas through
    `surrogate run`, and the decomposition sees the link in the individual component. How
    often it finds a link, and how rarely one that is not there: bench/calibration.py,
    section oracle."""
    believed = SyntheticSpec(links=(TraitLink(trait="STAI-T", param="loss_aversion", slope=0.6),))
    sim = simulate(MixedLotteries(n_trials=40), ["synthetic:STAI-T>loss_aversion=0.6"], 80, seed=0,
                   out=tmp_path / "sim", fit=False)
    oracle = OracleBackend(read_sessions(tmp_path / "sim"), ProspectTheory, believed)
    result = run([oracle], tmp_path / "sim", "none,interview,shuffled,population", tmp_path / "run", seed=0,
                 choices=False)
    assert result.info.models["oracle"].scored == 320 and len(sim.records) == 80
    d = decompose_personas(result.responses)
    assert d.rows[0].n_participants == 80 and d.pooled.individual_component.value > 0


def test_oracle_scores_are_the_generative_likelihood(tmp_path):
    spec = SyntheticSpec(links=(TraitLink(trait="STAI-T", param="loss_aversion", slope=0.6),))
    sim = simulate(MixedLotteries(n_trials=10), ["synthetic:STAI-T>loss_aversion=0.6"], 3, out=tmp_path / "s")
    oracle = OracleBackend(sim.records, ProspectTheory, spec)
    result = run([oracle], tmp_path / "s", "interview", tmp_path / "r")
    for rec in sim.records:
        expected = choice_nlls(rec, ProspectTheory, spec.linked_params(ProspectTheory, rec.metadata))
        got = result.responses[result.responses.participant == rec.participant].sort_values("response_index")
        np.testing.assert_allclose(got["nll"], expected, atol=1e-9)


def test_user_experiment_from_a_file(tmp_path):
    exp = resolve_experiment(f"{EXAMPLE}:TwoDoors", trials=25)
    assert exp.name == "two_doors" and exp.n_trials == 25
    recs = simulate_synthetic(exp, 4, seed=0)
    assert all(len(r.choices) == 25 and set(r.choices) <= {"left door", "right door"} for r in recs)
    res = CliRunner().invoke(app, ["simulate", "--experiment", f"{EXAMPLE}:TwoDoors", "--agents", "synthetic",
                                   "--participants", "6", "--trials", "20", "--out", str(tmp_path / "doors")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "doors" / "summary.json").read_text())
    assert summary["experiment"] == "two_doors" and "mean_reward" in summary["agents"]["syn"]["means"]


def test_bad_agent_and_experiment_specs_are_clear(tmp_path):
    res = CliRunner().invoke(app, ["simulate", "--experiment", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown experiment" in res.output
    res = CliRunner().invoke(app, ["simulate", "--experiment", "restless_bandit", "--agents", "robot",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 2 and "cannot read agent" in res.output
    res = CliRunner().invoke(app, ["simulate", "--experiment", "restless_bandit", "--agents",
                                   "synthetic:STAI-T>nonsense=1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "targets parameter" in res.output
