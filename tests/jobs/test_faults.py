"""Faults and bad input: a second writer, kills and signals, corrupt weights, planted files,
and a one-line message (exit 2) for every bad option, path and file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.models import HashBackend
from surrogate.store import read_choices, read_responses
from surrogate.jobs.run import run
from surrogate.store import CHOICES, RESPONSES, writer_lock

STUDIES = ["thoma2025problearn", "busch2024_stroop"]


class ChoosingHash(HashBackend):
    """A HashBackend that also scores option sets (so choices.parquet is written)."""

    def score_choices(self, requests):
        from surrogate.models import ChoiceResult

        for i, result in self.score(requests):
            req = requests[i]
            yield i, ChoiceResult(**result.model_dump(), option_logprobs=[
                [-float(len(o)) for o in opts] for opts in req.options])


# --- data loss and wrong tables -------------------------------------------------------------

def test_a_second_process_starting_never_touches_a_running_writers_files(psych201, tmp_path):
    """Writer A (shard 0/2) is alive with a part under its temporary name; writer B (shard
    1/2) starts, runs and finishes on the same folder and leaves A's files alone. Once A is
    gone, the next writer removes what it left."""
    out = tmp_path / "run"
    kw = dict(studies=STUDIES, max_participants=4, checkpoint_seconds=0)
    out.mkdir()
    (out / RESPONSES).mkdir()
    (out / CHOICES).mkdir()
    planted = [out / table / "_part-0-of-2-000001-0123abcd.parquet.tmp" for table in (RESPONSES, CHOICES)]
    with writer_lock(out, "0-of-2"):
        for p in planted:
            p.write_bytes(b"A is writing this")
        run([ChoosingHash("h")], psych201, "both", out, shard="1/2", **kw)
        assert all(p.read_bytes() == b"A is writing this" for p in planted)
    run([ChoosingHash("h")], psych201, "both", out, shard="1/2", **kw)  # A died: its leftovers go
    assert not any(p.exists() for p in planted)
    run([ChoosingHash("h")], psych201, "both", out, shard="0/2", **kw)
    responses, choices = read_responses(out), read_choices(out)
    assert responses["unit_key"].nunique() == 16  # 2 studies x 4 people x 2 personas
    stroop = responses[responses.study == "busch2024_stroop"]["unit_key"].unique()
    assert set(stroop) <= set(choices["unit_key"])  # every closed-set unit kept its choices


def _catch(errors, fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        errors.append(e)


def test_tables_open_with_plain_pandas_and_pyarrow(psych201, tmp_path):
    """A persona column that is all None in one part typed it null there, and pandas could not
    join the parts; every part now has one fixed schema."""
    out = tmp_path / "run"
    run([ChoosingHash("h")], psych201, "none,shuffled", out, studies=STUDIES, max_participants=3,
        checkpoint_seconds=0)
    for name in (RESPONSES, CHOICES):
        frame = pd.read_parquet(out / name)
        table = pq.read_table(out / name)
        assert len(frame) == table.num_rows > 0
    schemas = {str(pq.read_schema(p).remove_metadata()) for p in (out / RESPONSES).glob("part-*.parquet")}
    assert len(schemas) == 1 and "persona_donor: string" in schemas.pop()


def test_nan_weights_are_an_error_not_truncation(tmp_path, psych201):
    import torch
    from safetensors.torch import load_file, save_file

    from surrogate.organisms import resolve_model

    src = Path(resolve_model("demo-base"))
    bad = tmp_path / "nan-model"
    bad.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (bad / f.name).write_bytes(f.read_bytes())
    weights = load_file(bad / "model.safetensors")
    weights = {k: torch.full_like(v, float("nan")) if "norm" in k else v for k, v in weights.items()}
    save_file(weights, bad / "model.safetensors", metadata={"format": "pt"})
    res = CliRunner().invoke(app, ["run", "--model", str(bad), "--data", str(psych201 / "busch2024_stroop"),
                                   "--max-participants", "1", "--out", str(tmp_path / "o"), "--no-choices"])
    assert res.exit_code == 2, res.output
    assert "non-finite NLL" in res.output and "participant" in res.output
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["status"] == "failed" and "non-finite" in info["error"]
    assert not (tmp_path / "o" / RESPONSES).exists() or read_responses(tmp_path / "o").empty


def test_combining_runs_names_what_falls_out(psych201, tmp_path):
    """One run has placebo rows, the other not: the placebo contrasts are left out with a
    note, and no participant silently leaves the decomposition."""
    from surrogate.jobs.analyze import analyze

    kw = dict(studies=["thoma2025problearn", "guenther2022relational"], max_participants=10)
    run([HashBackend("h")], psych201, "none,interview,shuffled", tmp_path / "a", **kw)
    run([HashBackend("h")], psych201, "placebo", tmp_path / "b", studies=["thoma2025problearn"], max_participants=10)
    result = analyze([tmp_path / "a", tmp_path / "b"], n_boot=0)
    d = result.decompositions["h"]
    assert {r.experiment for r in d.rows} == {"thoma2025problearn", "guenther2022relational"}
    assert all(r.n_participants == 10 for r in d.rows)
    assert any("placebo" in n and "guenther2022relational" in n for n in d.notes)


# --- security ---------------------------------------------------------------------------------

def test_a_planted_checkpoint_cannot_run_code(tmp_path):
    from surrogate.training._train import load_checkpoint

    flag = tmp_path / "pwned"

    class Attack:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    import pickle

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"run_id": "x", "state": Attack()}))
    with pytest.raises(ValueError, match="not a surrogate training checkpoint"):
        load_checkpoint(path)
    assert not flag.exists()


def test_report_escapes_what_comes_from_configuration(psych201, tmp_path):
    from surrogate.jobs.report import report

    out = tmp_path / "run"
    run([HashBackend("h")], psych201, "none,interview,shuffled", out, studies=["thoma2025problearn"],
        max_participants=8)
    info = json.loads((out / "run.json").read_text())
    info["config"]["options"]["stratify"] = "<svg onload=alert(4)>"
    info["config"]["options"]["seed"] = "<script>alert(1)</script>"
    info["config"]["options"]["derangements"] = "<b>x</b>"
    info["config"]["options"]["max_chars"] = "<i>1</i>"
    info["data"]["participants"] = "<script>2</script>"
    (out / "run.json").write_text(json.dumps(info))
    page = report([out], tmp_path / "rep").html.read_text()
    for raw in ("<svg onload", "<script>alert", "<b>x</b>", "<i>1</i>", "<script>2"):
        assert raw not in page


def test_the_writer_lock_never_follows_a_link(psych201, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / ".writer-0-of-1.lock").symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        run([HashBackend("h")], psych201, "none", out, studies=STUDIES, max_participants=1)
    assert victim.read_text() == "precious"
    # ...and a clean run leaves no lock file behind.
    run([HashBackend("h")], psych201, "none", tmp_path / "clean", studies=STUDIES, max_participants=1)
    assert not list((tmp_path / "clean").glob(".writer-*"))


def test_the_training_checkpoint_temporary_is_not_predictable(tmp_path):
    import torch

    from surrogate.training._train import _save_checkpoint

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (tmp_path / f".checkpoint.pt.{pid}.tmp").symlink_to(victim)
    _save_checkpoint(tmp_path / "checkpoint.pt", torch, step=1)
    assert victim.read_text() == "precious" and (tmp_path / "checkpoint.pt").exists()


# --- bad records and limits ---------------------------------------------------------------------

def test_lone_surrogates_are_bad_records(tmp_path):
    data = tmp_path / "prompts.jsonl"
    good = {"text": "You press <<J>>.", "experiment": "e", "participant": 1}
    data.write_text(json.dumps(good) + "\n" + '{"text": "x \\ud800 <<J>>.", "experiment": "e", "participant": 2}\n'
                    + json.dumps({**good, "participant": 3, "age": "\ud800"}, ensure_ascii=True) + "\n")
    res = CliRunner().invoke(app, ["run", "--model", "demo-base", "--data", str(data), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "prompts.jsonl:2" in res.output and "lone surrogate" in res.output
    assert not (tmp_path / "o").exists()  # nothing made before the data were read
    result = run([HashBackend("h")], data, "none", tmp_path / "ok", skip_invalid=True)
    assert result.info.data["invalid"] == 2 and result.info.data["participants"] == 1


def test_a_one_line_zip_bomb_is_refused_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("SURROGATE_MAX_RECORD_BYTES", str(2**20))
    path = tmp_path / "prompts.jsonl.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("prompts.jsonl", '{"text": "' + "a" * (8 * 2**20) + '", "participant": 1}\n'
                    + json.dumps({"text": "x <<J>>.", "participant": 2}) + "\n")
    from surrogate.data import DataError, load

    with pytest.raises(DataError, match="longer than 1048576 bytes"):
        load(path)
    ds = load(path, skip_invalid=True)
    assert [p.participant for p in ds.participants] == ["2"] and "longer than" in ds.invalid[0].reason
    monkeypatch.setenv("SURROGATE_MAX_FILE_BYTES", "1000")
    with pytest.raises(DataError, match="SURROGATE_MAX_FILE_BYTES"):
        load(path)


def test_a_transcript_longer_than_the_token_budget_runs_in_chunks(psych201, tmp_path):
    """One pass used to ignore --batch-tokens for a single long transcript (8.5 GB for 2M
    characters); it now runs in chunks that continue from the cache, with equal scores."""
    kw = dict(studies=["guenther2022relational"], max_participants=2, device="cpu", choices=False, max_chars=None)
    whole = run(["demo-base"], psych201, "none", tmp_path / "a", batch_tokens=100_000, **kw).responses
    chunked = run(["demo-base"], psych201, "none", tmp_path / "b", batch_tokens=256, **kw).responses
    key = ["participant", "response_index"]
    a, b = whole.sort_values(key), chunked.sort_values(key)
    assert len(a) > 50 and (a["n_tokens"].to_numpy() == b["n_tokens"].to_numpy()).all()
    np.testing.assert_allclose(a["nll"], b["nll"], atol=1e-4)


# --- signals ------------------------------------------------------------------------------------

def test_sigterm_flushes_finished_units_and_says_how_to_resume(psych201, tmp_path):
    """SLURM sends SIGTERM before it kills: the units finished so far are written, run.json
    says interrupted, the exit code is 143 and the message names the command to resume."""
    out = tmp_path / "run"
    code = f"""
import os, signal
from surrogate.cli import app
from surrogate.models import HashBackend
import surrogate.jobs.run as r
real = HashBackend.score
def score(self, requests):
    for k, item in enumerate(real(self, requests)):
        if k == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        yield item
HashBackend.score = score
real_run = r.run_with
r.run_with = lambda opts, models, *a, **k: real_run(opts, [HashBackend("h")], *a, **k)
app(["run", "--model", "h", "--data", {str(psych201)!r}, "--study", "thoma2025problearn", "--max-participants", "6",
     "--persona", "both", "--out", {str(out)!r}, "--no-choices"])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "interrupted" in proc.stderr and "run the same command again to resume" in proc.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted"
    saved = read_responses(out)["unit_key"].nunique()
    assert saved == 5  # every finished unit, none half
    again = run([HashBackend("h")], psych201, "both", out, studies=["thoma2025problearn"], max_participants=6,
                choices=False)
    assert again.info.models["h"].skipped == 5 and again.info.status == "complete"


# --- one clear line for every bad option, path and file ---------------------------------------

def _fails(args, *needles, cwd=None):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, (args, res.output)
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in res.output and len(lines) <= 3, res.output
    for needle in needles:
        assert needle in res.output, (needle, res.output)


def test_bad_paths_and_options_get_one_line(psych201, tmp_path, monkeypatch):
    data = str(psych201 / "busch2024_stroop")
    common = ["run", "--data", data, "--max-participants", "1"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    _fails([*common, "--out", str(a_file)], "a file is in the way")
    _fails([*common, "--out", str(a_file / "sub")], "is a file")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if not os.access(ro, os.W_OK):  # root can write anyway
        _fails([*common, "--out", str(ro / "x")], "no write permission")
    _fails([*common, "--out", ""], "--out: must name a folder")
    for device in ("gpu", "cuda", "cuda:9"):
        _fails([*common, "--model", "demo-base", "--device", device, "--out", str(tmp_path / "d")], "--device")
    _fails([*common, "--persona", "", "--out", str(tmp_path / "p")], "no persona strategy")
    _fails([*common, "--persona", "shuffled", "--stratify", "shoe_size", "--out", str(tmp_path / "s")],
           "shoe_size")
    _fails([*common, "--derangements", "1000000", "--out", str(tmp_path / "dd")], "--derangements")
    _fails([*common, "--options", "busch2024_stroop=", "--out", str(tmp_path / "op")], "at least two options")
    _fails([*common, "--options", "busch2024_stroop=left", "--out", str(tmp_path / "op")], "at least two options")
    assert not (tmp_path / "p").exists() and not (tmp_path / "s").exists()
    empty = tmp_path / "empty-model"
    empty.mkdir()
    _fails([*common, "--model", str(empty), "--out", str(tmp_path / "e")], "no config.json")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fails([*common, "--model", "nobody/no-such-model-xyz", "--out", str(tmp_path / "h")], "cannot be reached")


def test_truncated_weights_name_the_file(tmp_path, psych201):
    from surrogate.organisms import resolve_model

    src = Path(resolve_model("demo-base"))
    bad = tmp_path / "truncated"
    bad.mkdir()
    for f in src.iterdir():
        if f.is_file():
            data = f.read_bytes()
            (bad / f.name).write_bytes(data[: len(data) // 2] if f.suffix == ".safetensors" else data)
    _fails(["run", "--model", str(bad), "--data", str(psych201 / "busch2024_stroop"), "--out", str(tmp_path / "o")],
           "model.safetensors", "truncated")


def test_analysis_options_are_checked_by_their_names(psych201, tmp_path):
    run([HashBackend("h")], psych201, "none,interview,shuffled", tmp_path / "r", studies=["thoma2025problearn"],
        max_participants=8)
    r = str(tmp_path / "r")
    _fails(["analyze", r, "--n-boot", "-5"], "--n-boot")
    _fails(["analyze", r, "--by", "bogus"], "--by")
    _fails(["analyze", r, "--sesoi", "-1%"], "--sesoi")
    _fails(["analyze", r, "--control", "bogus"], "bogus")
    _fails(["report", r, "--lora", str(tmp_path / "missing"), "--out", str(tmp_path / "rep")], "missing")


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(psych201, tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pqm

    real = pqm.write_table
    calls = {"n": 0, "fail_from": 1}

    def full(table, where, *a, **k):
        calls["n"] += 1
        if calls["n"] >= calls["fail_from"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, *a, **k)

    monkeypatch.setattr(pqm, "write_table", full)
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["run", "--model", "demo-base", "--data", str(psych201 / "thoma2025problearn"),
                                   "--max-participants", "2", "--out", str(out), "--no-choices"])
    assert res.exit_code == 2 and "no space left" in res.output and "resume" in res.output, res.output
    assert "Traceback" not in res.output
    # Earlier parts stay intact and no temporary is left; resuming completes the table.
    calls.update(n=0, fail_from=3)
    out = tmp_path / "api"
    with pytest.raises(OSError):
        run([HashBackend("h")], psych201, "both", out, studies=["thoma2025problearn"], max_participants=6,
            checkpoint_seconds=0, choices=False)
    assert not list((out / RESPONSES).glob("_*.tmp"))
    partial = read_responses(out)
    assert partial["unit_key"].nunique() == 2 and not partial.duplicated(["unit_key", "response_index"]).any()
    monkeypatch.setattr(pqm, "write_table", real)
    done = run([HashBackend("h")], psych201, "both", out, studies=["thoma2025problearn"], max_participants=6,
               choices=False)
    assert done.info.models["h"].skipped == 2 and read_responses(out)["unit_key"].nunique() == 12
