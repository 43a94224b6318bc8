"""The benches' records: every replication-based claim comes from a committed record whose
figures meet their targets and whose fingerprint matches what the code computes today. A
change to an estimator (or to the simulation it is measured on) without re-running its bench
fails here; so does a record that misses a target."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _record_module():
    spec = importlib.util.spec_from_file_location("bench_record", ROOT / "bench" / "_record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sections(bench: str) -> dict:
    path = RESULTS / f"{bench}.json"
    assert path.is_file(), f"{path} is missing: run python bench/{bench}.py"
    return json.loads(path.read_text())["sections"]


def test_every_calibration_section_is_recorded():
    from surrogate.testing.calibration import FINGERPRINTS

    assert set(_sections("calibration")) == set(FINGERPRINTS)


@pytest.mark.parametrize("section", sorted(json.loads((RESULTS / "calibration.json").read_text())["sections"])
                         if (RESULTS / "calibration.json").is_file() else [])
def test_calibration_record_matches_the_code_and_meets_its_targets(section):
    from surrogate.testing.calibration import fingerprint

    record = _sections("calibration")[section]
    assert record["fingerprint"] == fingerprint(section), (
        f"the {section} estimators or their simulation changed since the record was made: run "
        f"python bench/calibration.py --only {section}")
    judge = _record_module().judge
    missed = [(r["scenario"], r["test"], r["rate"], r["kind"]) for r in record["rows"] if judge(r) is False]
    assert not missed, missed
    assert all(r["pass"] == judge(r) for r in record["rows"])  # the record's own verdicts are the rule's
    assert any(r["kind"] in ("type-I", "coverage", "agreement", "at most") for r in record["rows"])


def test_the_package_carries_the_calibration_record_the_bench_wrote():
    """The report shows the calibration from the package's copy of the record."""
    from surrogate.jobs.report import CALIBRATION, calibration_table

    assert CALIBRATION.read_bytes() == (RESULTS / "calibration.json").read_bytes(), (
        "surrogate/analysis/data/calibration.json differs from bench/results/calibration.json: copy it")
    table = calibration_table()
    assert len(table) == sum(len(s["rows"]) for s in _sections("calibration").values())
    assert set(table["met"]) <= {"yes", ""}
