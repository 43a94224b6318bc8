"""Declarative experiments (.toml/.json), behaviour indices, fitted parameters, and the
import of real trial tables (round trip through Psych-201 transcripts)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.data import load, parse_spans
from surrogate.experiments import (
    DeclarativeExperiment,
    SyntheticSpec,
    load_experiment_spec,
    simulate_synthetic,
)
from surrogate.jobs.import_table import import_table, trial_table
from surrogate.jobs.simulate import resolve_experiment, simulate
from surrogate.testing.calibration import RECOVERY_CASES

TWO_DOORS = Path(__file__).resolve().parents[2] / "examples" / "two_doors.toml"


def _write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = '''name = "t"
instructions = "Choose."
trials = 5
options = ["a", "b"]
'''


@pytest.mark.parametrize("extra, message", [
    ('colour = "red"\n', "colour: Extra inputs are not permitted"),
    ('[feedback]\nkind = "bernoulli"\nprobabilities = [0.5]\n', "feedback.probabilities: 1 values for 2 options"),
    ('[feedback]\nkind = "bernoulli"\nprobabilities = [1.5, 0.2]\n', "between 0 and 1"),
    ('[feedback]\nkind = "points"\nmeans = [1, 2]\ntext = " and win."\n', "must contain {reward}"),
    ('labels = 3\n', "options or labels: give exactly one"),
    ('cognitive_model = "prospect_theory"\n', "learn from feedback"),
    ('[[conditions]]\nname = "x"\nprobabilities = [0.1, 0.2, 0.3]\n', "conditions[0].probabilities: 3 values"),
])
def test_bad_experiment_files_name_the_file_and_the_field(tmp_path, extra, message):
    path = _write(tmp_path, BASE + extra)
    with pytest.raises(ValueError) as e:
        load_experiment_spec(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_bad_experiment_syntax_and_options(tmp_path):
    with pytest.raises(ValueError, match=r"exp.toml: not valid TOML"):
        load_experiment_spec(_write(tmp_path, 'name = "t\n'))
    with pytest.raises(ValueError, match="must not contain << or >>"):
        load_experiment_spec(_write(tmp_path, BASE.replace('"a"', '"<<a>>"')))
    with pytest.raises(ValueError, match="trials"):
        load_experiment_spec(_write(tmp_path, BASE.replace("trials = 5", "trials = 0")))
    with pytest.raises(FileNotFoundError, match="no such experiment file"):
        resolve_experiment(str(tmp_path / "missing.toml"))
    # The CLI shows the same message as a one-line usage error.
    res = CliRunner().invoke(app, ["simulate", "--experiment", str(_write(tmp_path, BASE + "colour = 1\n")),
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "colour" in res.output and "Traceback" not in res.output


def test_the_example_experiment_plays_and_reverses(tmp_path):
    exp = resolve_experiment(str(TWO_DOORS))
    assert exp.name == "two_doors" and exp.n_trials == 60
    rec = simulate_synthetic(exp, 1, seed=0, spec=SyntheticSpec())[0]
    assert set(rec.choices) <= {"left door", "right door"} and len(rec.choices) == 60
    assert rec.instructions.startswith("Behind one of two doors, the left door and right door")
    assert {f.text for f in rec.feedback} == {" and find a prize.", " and find nothing."}
    # The better door pays 80% of the time and moves every 20 trials: an agent that always
    # opens the left door wins ~80% in one block of 20 and ~20% in the next.
    spec = load_experiment_spec(TWO_DOORS)
    blocks = np.zeros((400, 3))
    for s in range(400):
        session = DeclarativeExperiment(spec).session(np.random.default_rng(s))
        for t in range(60):
            session.next_trial()
            blocks[s, t // 20] += session.respond("left door").reward / 100
    share = blocks / 20
    assert abs(np.abs(share[:, 0] - share[:, 1]).mean() - 0.6) < 0.1
    assert abs(share[:, 0].mean() - 0.5) < 0.05  # the first good door is drawn per participant
    # Blocks 1 and 3 have the same good door, block 2 the other (wins: ~80% vs ~20%).
    assert np.mean((share[:, 0] > 0.5) == (share[:, 2] > 0.5)) > 0.97
    assert np.mean((share[:, 0] > 0.5) != (share[:, 1] > 0.5)) > 0.97


def test_conditions_are_drawn_per_participant_and_recorded(tmp_path):
    path = _write(tmp_path, BASE.replace("trials = 5", "trials = 30") + '''
[feedback]
kind = "bernoulli"
probabilities = [0.5, 0.5]
[[conditions]]
name = "rich"
probabilities = [1.0, 1.0]
[[conditions]]
name = "poor"
probabilities = [0.0, 0.0]
''')
    recs = simulate_synthetic(resolve_experiment(str(path)), 40, seed=1)
    conditions = [r.metadata["condition"] for r in recs]
    assert set(conditions) == {"rich", "poor"}
    for r in recs:
        wins = {f.reward for f in r.feedback}
        assert wins == ({1.0} if r.metadata["condition"] == "rich" else {0.0})


def _corr(frame, x, y):
    return np.corrcoef(frame[x].astype(float), frame[y].astype(float))[0, 1]


@pytest.mark.slow
def test_simulated_people_carry_the_planted_link_into_indices_and_fits(tmp_path):
    linked = simulate(str(TWO_DOORS), ["synthetic", "synthetic:none,name=null"], 150, seed=3, out=tmp_path / "s")
    b = linked.behaviour
    assert set(b["agent"]) == {"syn", "null"}
    syn, null = b[b.agent == "syn"], b[b.agent == "null"]
    # STAI-T raises the learning rate (slope 1 on the logit scale, SD 1): fitted learning rates
    # follow the true ones and the trait; the null group has the same traits and no link.
    assert _corr(syn, "true:learning_rate", "fit:learning_rate") > 0.6
    assert _corr(syn, "trait:STAI-T", "fit:learning_rate") > 0.35
    assert _corr(syn, "trait:STAI-T", "win_stay") > 0.2 and _corr(syn, "trait:STAI-T", "lose_shift") > 0.2
    np.testing.assert_array_equal(syn["trait:STAI-T"], null["trait:STAI-T"])  # paired by traits only
    assert not np.array_equal(syn["mean_reward"], null["mean_reward"])
    # The written folder is a Psych-201 study the scorer can read.
    ds = load(tmp_path / "s")
    assert ds.studies == ["two_doors"] and len(ds) == 300
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["participants_per_agent"] == 150
    assert set(pd.read_parquet(tmp_path / "s" / "trials.parquet")["trial"]) == set(range(1, 61))


@pytest.mark.parametrize("case", list(RECOVERY_CASES))
def test_each_paradigms_index_moves_with_its_parameter(case):
    """A planted link (slope 1) shows in the index with the expected sign in one study of 40;
    how often a slope of 1 shows, and a null link does not, is bench/calibration.py's section
    recovery."""
    from surrogate.testing.calibration import index_correlation

    assert index_correlation(case, linked=True, n=40, seed=0)[0] > 0.5


def _people_table(n=12, trials=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n):
        age, score = int(rng.integers(18, 70)), float(np.round(rng.normal(40, 10), 1))
        for t in range(1, trials + 1):
            rows.append({"participant": f"P{p:02d}", "trial": t,
                         "choice": ["left door", "right door"][int(rng.integers(2))],
                         "reward": float(100 * (rng.random() < 0.5)), "age": age, "STAI-T": score})
    return pd.DataFrame(rows)


def test_import_round_trips_a_trial_table(tmp_path):
    table = _people_table()
    table.to_csv(tmp_path / "people.csv", index=False)
    result = import_table(tmp_path / "people.csv", TWO_DOORS, tmp_path / "imported")
    assert len(result.records) == 12
    ds = load(tmp_path / "imported")
    assert ds.studies == ["two_doors"]
    first = ds.participants[0]
    assert first.metadata == {"age": int(table.age[0]), "STAI-T": float(table["STAI-T"][0])}
    assert len(parse_spans(first.text)) == 20
    assert "Trial 1: you open the <<" in first.text and "and find a prize." in first.text
    back = trial_table(tmp_path / "imported", DeclarativeExperiment(load_experiment_spec(TWO_DOORS)))
    pd.testing.assert_frame_equal(back[table.columns.tolist()].reset_index(drop=True), table, check_dtype=False)
    behaviour = pd.read_csv(tmp_path / "imported" / "behaviour.csv")
    assert {"win_stay", "lose_shift", "fit:learning_rate", "trait:STAI-T"} <= set(behaviour.columns)
    # The CLI does the same and answers with where it wrote.
    res = CliRunner().invoke(app, ["import", str(tmp_path / "people.csv"), "--experiment", str(TWO_DOORS),
                                   "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "two_doors" / "prompts.jsonl").read_text() == \
        (tmp_path / "imported" / "two_doors" / "prompts.jsonl").read_text()


@pytest.mark.parametrize("change, message", [
    (lambda t: t.assign(choice=t.choice.where(t.index != 5, "middle door")),
     r"people.csv:7: participant P00, trial 6: choice 'middle door' is not one of the options"),
    (lambda t: t[t.index != 3], r"participant P00: trials must be 1..19 once each"),
    (lambda t: t.assign(age=t.age.where(t.index != 25, 99)), r"participant P01: metadata column 'age' changes"),
    (lambda t: t.drop(columns="choice"), r"missing column\(s\) choice"),
    (lambda t: t.assign(reward=t.reward.where(t.index != 2)),
     r"people.csv:4: participant P00, trial 3: a reward is missing"),
])
def test_bad_trial_tables_name_the_line_and_participant(tmp_path, change, message):
    change(_people_table()).to_csv(tmp_path / "people.csv", index=False)
    with pytest.raises(ValueError, match=message):
        import_table(tmp_path / "people.csv", TWO_DOORS, tmp_path / "imported")
    assert not (tmp_path / "imported" / "two_doors").exists()  # nothing half-written
