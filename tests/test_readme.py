"""The README's worked custom study runs as written (fewer participants, to keep CI short),
and its experiment file is the one in examples/."""

import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Your own studies"


def _section() -> str:
    return (ROOT / "README.md").read_text().split(SECTION, 1)[1]


def _example_commands() -> list[list[str]]:
    block = re.search(r"```bash\n(.*?)```", _section(), re.S).group(1)
    lines = [line.split("#", 1)[0].strip() for line in block.replace("\\\n", " ").strip().splitlines()]
    assert all(c.startswith("surrogate ") for c in lines)
    return [shlex.split(c)[1:] for c in lines]


@pytest.mark.slow
def test_readme_custom_study_runs(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    commands = _example_commands()
    assert [c[0] for c in commands] == ["simulate", "simulate", "compare-agents", "report"]
    for args in commands:
        args = ["12" if a == "60" else a for a in args]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
    people = pd.read_csv(tmp_path / "runs/doors/people/behaviour.csv")
    agents = pd.read_csv(tmp_path / "runs/doors/agents/behaviour.csv")
    assert len(people) == len(agents) == 12 and set(agents["agent"]) == {"base"}
    assert (tmp_path / "runs/doors/agents/two_doors/prompts.jsonl").read_text().count("<<") == 12 * 60
    summary = (tmp_path / "runs/doors/agents/comparison/summary.txt").read_text()
    assert "population level" in summary and "individual level" in summary
    assert (tmp_path / "runs/doors/report/report.html").exists()


def test_readme_experiment_file_is_the_example():
    block = re.search(r"```toml\n(.*?)```", _section(), re.S).group(1)
    assert block in (ROOT / "examples" / "two_doors.toml").read_text()
