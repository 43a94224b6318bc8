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


def _bench_module(name: str):
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def _check_rows(bench: str, section: str, record: dict) -> None:
    judge = _record_module().judge
    missed = [(r["scenario"], r["test"], r["rate"], r["kind"], r.get("note", "")) for r in record["rows"]
              if judge(r) is False]
    assert not missed, f"{bench}/{section} misses its targets: {missed}"
    assert all(r["pass"] == judge(r) for r in record["rows"])  # the record's own verdicts are the rule's
    assert any(r["pass"] is not None for r in record["rows"]), f"{bench}/{section} has no row with a target"


def test_every_calibration_section_is_recorded():
    assert set(_sections("calibration")) == set(_bench_module("calibration").SECTIONS)


@pytest.mark.parametrize("section", sorted(json.loads((RESULTS / "calibration.json").read_text())["sections"])
                         if (RESULTS / "calibration.json").is_file() else [])
def test_calibration_record_matches_the_code_and_meets_its_targets(section):
    record = _sections("calibration")[section]
    assert record["fingerprint"] == _bench_module("calibration").fingerprint(section), (
        f"the {section} estimators or their simulation changed since the record was made: run "
        f"python bench/calibration.py --only {section}")
    _check_rows("calibration", section, record)
    assert any(r["kind"] in ("type-I", "coverage", "agreement", "at most") for r in record["rows"])


@pytest.mark.parametrize("bench, sections", [("lora", {"recovery"}), ("organisms", {"checks", "default-job"})])
def test_bench_record_matches_the_code_and_meets_its_targets(bench, sections):
    """LoRA's recovery and the organisms' checks: their fingerprints cover the shipped weights
    and a few steps of the code path, so retraining or changing either needs a new record."""
    recorded = _sections(bench)
    assert set(recorded) == sections
    now = _bench_module(bench).fingerprint()
    for section, record in recorded.items():
        assert record["fingerprint"] == now, (f"the code or the shipped weights changed since bench/results/"
                                              f"{bench}.json was made: run python bench/{bench}.py")
        _check_rows(bench, section, record)


def test_the_organisms_cards_report_what_the_record_remeasured():
    from surrogate.organisms import organisms_dir

    card = {c["name"]: c["passed"] for c in json.loads((organisms_dir() / "build.json").read_text())["evaluation"][
        "checks"]}
    rows = {r["test"]: r for r in _sections("organisms")["checks"]["rows"]}
    assert set(rows) == set(card)
    for name, passed in card.items():
        assert rows[name]["lo"] == float(passed)


def test_the_package_carries_the_calibration_record_the_bench_wrote():
    """The report shows the calibration from the package's copy of the record."""
    from surrogate.jobs.report import CALIBRATION, calibration_table

    assert CALIBRATION.read_bytes() == (RESULTS / "calibration.json").read_bytes(), (
        "surrogate/analysis/data/calibration.json differs from bench/results/calibration.json: copy it")
    table = calibration_table()
    assert len(table) == sum(len(s["rows"]) for s in _sections("calibration").values())
    assert set(table["met"]) <= {"yes", ""}
