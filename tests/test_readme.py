"""The README's worked example runs as written (fewer participants, to keep CI short)."""

import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from surrogate.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _example_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Simulate human-like synthetic participants", 1)[1]
    block = re.search(r"```bash\n(.*?)```", block, re.S).group(1)
    commands = block.replace("\\\n", " ").strip().splitlines()
    assert all(c.startswith("surrogate ") for c in commands)
    return [shlex.split(c)[1:] for c in commands]


def test_readme_example_runs(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in _example_commands():
        args = ["12" if a == "60" else a for a in args]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
    table = pd.read_csv(tmp_path / "runs/doors/personas/persona_effects.csv")
    assert list(table["experiment"]) == ["people", "pooled", "pooled_fixed", "pooled_relative"]
    assert table.set_index("experiment").loc["people", "status"] == "ok"
    assert (tmp_path / "runs/doors/personas/analysis/summary.txt").exists()
    assert (tmp_path / "runs/doors/model/prompts.jsonl").read_text().count("\n") == 12


def test_readme_example_file_matches_the_readme():
    readme = (ROOT / "README.md").read_text()
    code = (ROOT / "examples" / "two_doors.py").read_text()
    body = code.split('"""', 2)[2].strip()  # without the module docstring
    assert body in readme
