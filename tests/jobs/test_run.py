import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.models import HashBackend
from surrogate.jobs.run import COLUMNS, run
from surrogate.store import read_responses

STUDIES = ["thoma2025problearn", "guenther2022relational"]


def _check_table(frame: pd.DataFrame) -> None:
    """No duplicate rows, and every unit complete: response indices 0..n-1 exactly once."""
    assert list(frame.columns) == COLUMNS
    assert not frame.duplicated(["unit_key", "response_index"]).any()
    for _, g in frame.groupby("unit_key"):
        assert sorted(g["response_index"]) == list(range(len(g)))


def test_run_on_real_data_with_a_real_model(qwen_dir, psych201, tmp_path):
    out = tmp_path / "run"
    result = run([f"tiny={qwen_dir}"], psych201, "both", out, studies=STUDIES, max_participants=3,
                 chat="off")
    frame = read_responses(out)
    _check_table(frame)
    assert set(frame["persona"]) == {"none", "interview"}
    assert set(frame["model"]) == {"tiny"}
    assert frame.groupby(["persona", "study"])["participant"].nunique().eq(3).all()
    assert (frame["nll"] > 0).all() and (frame["n_tokens"] > 0).all()
    thoma = frame[(frame.study == "thoma2025problearn") & (frame.persona == "interview")]
    assert set(thoma["persona_fields"]) == {"age,gender"}
    guenther = frame[(frame.study == "guenther2022relational") & (frame.persona == "interview")]
    assert set(guenther["persona_fields"]) == {"age"}
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete"
    stats = info["models"]["tiny"]
    assert stats["scored"] == 12 and stats["tokens"] > 0 and stats["tokens_per_second"] > 0
    assert stats["backend"]["device"] == "cpu" and stats["backend"]["dtype"] == "float32" and stats["backend"]["fast_path"]
    assert {"torch", "transformers", "surrogate"} <= set(info["versions"])
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and summary["participants"].eq(3).all()
    np.testing.assert_allclose(
        summary.set_index(["persona", "study"])["mean_nll"].sort_index().to_numpy(),
        frame.groupby(["persona", "study"])["nll"].mean().sort_index().to_numpy())
    pd.testing.assert_frame_equal(result.summary.reset_index(drop=True), summary, check_dtype=False)


def test_truncated_responses_are_rows_with_nan(qwen_dir, psych201, tmp_path):
    out = tmp_path / "run"
    run([str(qwen_dir)], psych201, "off", out, studies=["sandbrink2024metacontrol"], max_participants=1,
        chat="off")
    frame = read_responses(out)
    _check_table(frame)
    cut = frame[frame["truncated"]]
    assert len(cut) > 0 and cut["nll"].isna().all() and (cut["n_tokens"] == 0).all()
    assert frame[~frame["truncated"]]["nll"].notna().all()
    # The cut removes a tail: every scored response comes before every cut one.
    assert frame[~frame["truncated"]]["response_index"].max() < cut["response_index"].min()


def test_rerun_skips_finished_units(psych201, tmp_path):
    out = tmp_path / "run"
    first = run([HashBackend("h")], psych201, "both", out, studies=STUDIES, max_participants=4)
    assert first.info.models["h"].scored == 16
    again = run([HashBackend("h")], psych201, "both", out, studies=STUDIES, max_participants=4)
    assert again.info.models["h"].scored == 0 and again.info.models["h"].skipped == 16
    more = run([HashBackend("h")], psych201, "both", out, studies=STUDIES, max_participants=6)
    assert more.info.models["h"].scored == 8
    _check_table(read_responses(out))
    assert read_responses(out)["participant"].nunique() == 12


def test_crash_leaves_a_readable_table_and_resume_completes(psych201, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run([HashBackend("h", fail_after=5)], psych201, "both", out, studies=STUDIES,
            max_participants=4, checkpoint_seconds=0)
    partial = read_responses(out)
    _check_table(partial)
    assert partial["unit_key"].nunique() == 5
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "simulated crash" in info["error"]
    done = run([HashBackend("h")], psych201, "both", out, studies=STUDIES, max_participants=4)
    assert done.info.models["h"].scored == 11
    _check_table(read_responses(out))
    assert read_responses(out)["unit_key"].nunique() == 16


@pytest.mark.slow
def test_killed_process_leaves_a_readable_table(qwen_dir, psych201, tmp_path):
    """SIGKILL in the middle of writing the third part (the temporary file half written):
    whatever is on disk reads back whole. The child kills itself at that point, so the
    test does not depend on timing."""
    out = tmp_path / "run"
    code = f"""
import os, signal
import pyarrow.parquet as pq
calls = []
real = pq.write_table
def write_then_die(table, where, *a, **k):
    calls.append(1)
    if len(calls) == 3:
        where.write(b"PAR1 half a part")
        where.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(table, where, *a, **k)
pq.write_table = write_then_die
from surrogate.jobs.run import run
run([{str(qwen_dir)!r}], {str(psych201)!r}, 'both', {str(out)!r}, studies={STUDIES!r}, max_participants=8,
    chat='off', checkpoint_seconds=0)
"""
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == -signal.SIGKILL
    partial = read_responses(out)
    _check_table(partial)
    assert 0 < partial["unit_key"].nunique() < 32
    full = run([str(qwen_dir)], psych201, "both", out, studies=STUDIES, max_participants=8, chat="off")
    assert full.info.models[str(qwen_dir)].skipped >= partial["unit_key"].nunique()
    _check_table(read_responses(out))
    assert read_responses(out)["unit_key"].nunique() == 32


def test_changed_model_in_the_same_folder_is_refused(psych201, tmp_path):
    out = tmp_path / "run"
    run([HashBackend("h")], psych201, "off", out, studies=STUDIES, max_participants=2)

    class Changed(HashBackend):
        def fingerprint(self):
            return {**super().fingerprint(), "weights": "new"}

    with pytest.raises(ValueError, match="label 'h' already names another model here"):
        run([Changed("h")], psych201, "off", out, studies=STUDIES, max_participants=2)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "already names another model" in info["error"]


def test_changed_group_under_shuffled_personas_is_explained(psych201, tmp_path):
    out = tmp_path / "run"
    run([HashBackend("h")], psych201, "shuffled", out, studies=STUDIES, max_participants=4)
    with pytest.raises(ValueError, match="depend on the whole group"):
        run([HashBackend("h")], psych201, "shuffled", out, studies=STUDIES, max_participants=6)


def test_skip_invalid_writes_invalid_jsonl(tmp_path):
    data = tmp_path / "prompts.jsonl"
    good = {"text": "You press <<J>>.", "experiment": "e", "participant": 1}
    data.write_text(json.dumps(good) + "\n{oops\n" + json.dumps({**good, "participant": 2}) + "\n")
    with pytest.raises(ValueError, match=r"prompts.jsonl:2"):
        run([HashBackend("h")], data, "off", tmp_path / "a")
    result = run([HashBackend("h")], data, "off", tmp_path / "b", skip_invalid=True)
    assert result.info.data["invalid"] == 1
    invalid = [json.loads(x) for x in (tmp_path / "b" / "invalid.jsonl").read_text().splitlines()]
    assert invalid[0]["line"] == 2 and "invalid JSON" in invalid[0]["reason"]
    assert invalid[0]["record"] == "{oops"


def test_system_persona_needs_chat(psych201, tmp_path):
    with pytest.raises(ValueError, match="needs chat-template scoring"):
        run([HashBackend("h")], psych201, "system", tmp_path / "r", studies=STUDIES, max_participants=2)
    result = run([HashBackend("h", chat=True)], psych201, "system", tmp_path / "r2", studies=STUDIES,
                 max_participants=2)
    assert result.info.models["h"].scored == 4


def test_cli_reports_bad_input_clearly(tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"text": "a <<b <<c>>", "participant": 9}\n')
    res = CliRunner().invoke(app, ["run", "--data", str(data), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "prompts.jsonl:1" in res.output and "participant 9" in res.output and "nested" in res.output


def test_cli_declared_options_and_no_choices(qwen_dir, psych201, tmp_path):
    from surrogate.store import read_choices

    common = ["run", "--model", str(qwen_dir), "--data", str(psych201), "--study", "busch2024_stroop",
              "--max-participants", "1", "--chat", "off"]
    res = CliRunner().invoke(app, [*common, "--options", "busch2024_stroop=left,down,right,up",
                                   "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert all(list(o) == ["left", "down", "right", "up"] for o in read_choices(tmp_path / "a")["options"])
    res = CliRunner().invoke(app, [*common, "--no-choices", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert read_choices(tmp_path / "b").empty and not read_responses(tmp_path / "b").empty
    res = CliRunner().invoke(app, [*common, "--options", "nonsense", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "STUDY=a,b,c" in res.output
