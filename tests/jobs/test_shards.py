"""Many processes, one table: shards, torchrun ranks, concurrent writers and merges never
lose or duplicate a unit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.models import HashBackend
from surrogate.jobs.merge import merge
from surrogate.store import read_responses
from surrogate.jobs.run import run
from surrogate.store import RESPONSES, writer_lock

STUDIES = ["thoma2025problearn", "guenther2022relational"]


def _table(out) -> pd.DataFrame:
    f = read_responses(out)
    return f.sort_values(["model", "persona", "study", "participant", "response_index"]).reset_index(drop=True)


def test_shards_partition_the_units_into_one_table(psych201, tmp_path):
    kw = dict(studies=STUDIES, max_participants=6)
    run([HashBackend("h")], psych201, "both", tmp_path / "one", **kw)
    counts = []
    for k in range(3):
        r = run([HashBackend("h")], psych201, "both", tmp_path / "sharded", shard=f"{k}/3", **kw)
        counts.append(r.info.models["h"].units)
    assert sum(counts) == 24 and min(counts) > 0  # 2 studies x 6 people x 2 personas, dealt out
    pd.testing.assert_frame_equal(_table(tmp_path / "one"), _table(tmp_path / "sharded"))
    import hashlib

    digest = hashlib.sha256(b"h").hexdigest()[:8]  # of the models' labels: tasks of other models write beside
    assert sorted(p.name for p in (tmp_path / "sharded").glob("run-shard-*.json")) == [
        f"run-shard-{k}-of-3-{digest}.json" for k in range(3)]
    with pytest.raises(ValueError, match="K/N"):
        run([HashBackend("h")], psych201, "off", tmp_path / "bad", shard="3/3", **kw)


def test_merge_of_machines_and_of_overlaps_keeps_every_unit_once(psych201, tmp_path):
    kw = dict(studies=STUDIES, max_participants=5)
    run([HashBackend("h")], psych201, "both", tmp_path / "one", **kw)
    run([HashBackend("h")], psych201, "both", tmp_path / "a", shard="0/2", **kw)
    run([HashBackend("h")], psych201, "both", tmp_path / "b", shard="1/2", **kw)
    run([HashBackend("h")], psych201, "off", tmp_path / "c", **kw)  # overlaps a and b
    res = CliRunner().invoke(app, ["merge", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"),
                                   "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m")  # again: nothing new
    pd.testing.assert_frame_equal(_table(tmp_path / "one"), _table(tmp_path / "m"))
    raw = pd.read_parquet(tmp_path / "m" / RESPONSES)  # plain pandas, every part
    assert not raw.duplicated(["unit_key", "response_index"]).any() and len(raw) == len(_table(tmp_path / "one"))

    class Changed(HashBackend):
        def fingerprint(self):
            return {**super().fingerprint(), "weights": "other"}

    run([Changed("h")], psych201, "off", tmp_path / "d", **kw)
    with pytest.raises(ValueError, match="label 'h' names different models"):
        merge([tmp_path / "d"], tmp_path / "m")


def test_a_second_writer_stops_and_a_foreign_part_is_refused(psych201, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    with writer_lock(out, "0-of-1"):
        with pytest.raises(ValueError, match="already writing shard 0-of-1"):
            run([HashBackend("h")], psych201, "off", out, studies=STUDIES, max_participants=2)
        # Another share of the same folder may run beside it.
        run([HashBackend("h")], psych201, "off", out, studies=STUDIES, max_participants=2, shard="0/2")
    # An unsharded run beside the sharded one: units the shard committed are not committed twice.
    run([HashBackend("h")], psych201, "off", out, studies=STUDIES, max_participants=2)
    plain = pd.read_parquet(out / RESPONSES)
    assert not plain.duplicated(["unit_key", "response_index"]).any() and plain["unit_key"].nunique() == 4
    # A part copied in by hand is in no manifest: refused, by name, not counted twice.
    first = sorted((out / RESPONSES).glob("part-*.parquet"))[0]
    shutil.copy(first, first.with_name("part-999999-copy.parquet"))
    with pytest.raises(ValueError, match="part-999999-copy.parquet: not recorded"):
        read_responses(out)


@pytest.mark.slow
def test_torchrun_with_two_processes_gives_the_one_process_table(psych201, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    surrogate = Path(sys.executable).with_name("surrogate")
    args = ["run", "--model", "organism-base", "--data", str(psych201), "--study", "guenther2022relational",
            "--study", "busch2024_stroop", "--max-participants", "3", "--persona", "both", "--max-chars", "3000",
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([str(surrogate), *args, "--out", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([str(torchrun), "--nproc-per-node", "2", "--no-python", str(surrogate), *args,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    assert "rank 1 of 2" in two.stderr
    a, b = _table(tmp_path / "one"), _table(tmp_path / "two")
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a, b)
