"""A custom surrogate study end to end, as the README walks it: a declarative experiment,
people (synthetic, or imported from a trial table), model agents given each person's persona,
compare-agents, and the report."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app

TWO_DOORS = str(Path(__file__).resolve().parents[2] / "examples" / "two_doors.toml")


def _cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.slow
def test_people_model_agents_comparison_and_report(tmp_path):
    people, agents = tmp_path / "people", tmp_path / "agents"
    _cli("simulate", "--experiment", TWO_DOORS, "--agents", "synthetic", "--participants", 24, "--trials", 30,
         "--out", people)
    _cli("simulate", "--experiment", TWO_DOORS, "--agents", "model:organism-base,persona=interview,name=base",
         "--people", people, "--trials", 30, "--out", agents)
    behaviour = pd.read_csv(agents / "behaviour.csv", dtype={"person": str})
    assert list(behaviour["agent"].unique()) == ["base"] and len(behaviour) == 24
    assert set(behaviour["person"]) == set(pd.read_csv(people / "behaviour.csv")["participant"])
    # Each agent saw its person's traits in the persona and played the task closed loop.
    sessions = (agents / "two_doors" / "prompts.jsonl").read_text().splitlines()
    assert len(sessions) == 24 and all(s.count("<<") == 30 for s in sessions)
    res = _cli("compare-agents", people, agents, "--n-perm", 199)
    assert "population level" in res.stdout and "individual level" in res.stdout
    for name in ("agents_indices.csv", "agents_individual.csv", "agents_recovery.csv", "comparison.json"):
        assert (agents / "comparison" / name).is_file(), name
    indices = pd.read_csv(agents / "comparison" / "agents_indices.csv")
    assert set(indices["index"]) >= {"mean_reward", "switch_rate", "win_stay", "lose_shift"}
    assert indices["p"].between(0, 1).all()
    _cli("report", agents / "comparison", "--out", tmp_path / "report")
    html = (tmp_path / "report" / "report.html").read_text()
    assert "two_doors" in html and "individual" in html.lower()
    figures = {p.stem for p in (tmp_path / "report" / "figures").glob("*.png")}
    assert {"agents_choices", "agents_indices", "agents_recovery", "agents_individual"} <= figures


@pytest.mark.slow
def test_imported_people_get_model_agents(tmp_path):
    rows = [{"participant": f"P{p}", "trial": t, "choice": ["left door", "right door"][(p + t) % 2],
             "reward": 100.0 * ((p * t) % 3 == 0), "STAI-T": 30 + 5 * p, "age": 20 + p}
            for p in range(6) for t in range(1, 11)]
    pd.DataFrame(rows).to_csv(tmp_path / "people.csv", index=False)
    _cli("import", tmp_path / "people.csv", "--experiment", TWO_DOORS, "--out", tmp_path / "people")
    _cli("simulate", "--experiment", TWO_DOORS, "--agents", "model:organism-base,persona=interview",
         "--people", tmp_path / "people", "--trials", 10, "--out", tmp_path / "agents")
    agents = [line for line in (tmp_path / "agents" / "two_doors" / "prompts.jsonl").read_text().splitlines()]
    assert len(agents) == 6
    behaviour = pd.read_csv(tmp_path / "agents" / "behaviour.csv", dtype={"person": str})
    assert sorted(behaviour["person"]) == [f"P{p}" for p in range(6)]
    assert sorted(behaviour["trait:STAI-T"]) == [30 + 5 * p for p in range(6)]  # personas from the table
