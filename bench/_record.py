"""Bench records: what a bench measured, kept in bench/results/<bench>.json beside a
fingerprint of the code path it measured, so that a fast test can check every recorded
figure against its target and notice when the code changed under a record.

A record holds sections; each section: the fingerprint, the command that made it, the
replications, seed, date, seconds, and rows. A row: what was measured (`rate` with its
Monte-Carlo `mcse` over `n` replications), what kind of figure it is, and its target:

- `type-I`: a true null's rejection rate, target [0.03, 0.07];
- `coverage`: a 95% interval's coverage, target [0.92, 0.98];
  both met when the band is within two Monte-Carlo SEs (taken at the band's nearer edge) of
  the measured rate: a test whose true rate is 0.03 measures below 0.03 half the time, so a
  bare band would fail correct estimators by chance (Bradley's liberal band is 0.025-0.075);
- `agreement`: a prediction (`predicted`) within 0.05 (+ 2 Monte-Carlo SEs) of the simulated rate;
- `at most` / `at least`: a bound (`hi` / `lo`);
- `power`, `known bias`, `info`: measured and reported, no target.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGETS = {"type-I": (0.03, 0.07), "coverage": (0.92, 0.98)}
PACKAGED = {"calibration": ROOT / "surrogate" / "analysis" / "data" / "calibration.json"}


def mcse(rate: float, n: int) -> float:
    return (rate * (1 - rate) / n) ** 0.5 if n else float("nan")


def judge(row: dict) -> bool | None:
    """Whether a row meets its target (None: no target)."""
    kind, rate = row["kind"], row["rate"]
    if kind in TARGETS:
        lo, hi = TARGETS[kind]
        edge = lo if rate < lo else hi
        return lo - 2 * mcse(edge, row["n"]) <= rate <= hi + 2 * mcse(edge, row["n"])
    if kind == "agreement":
        return abs(row["predicted"] - rate) <= 0.05 + 2 * row["mcse"]
    if kind == "at most":
        return rate <= row["hi"]
    if kind == "at least":
        return rate >= row["lo"]
    return None


def row(scenario: str, test: str, kind: str, rate: float, n: int, **extra) -> dict:
    out = {"scenario": scenario, "test": test, "kind": kind, "rate": round(float(rate), 4), "n": int(n),
           "mcse": round(mcse(float(rate), int(n)), 4), **extra}
    out["pass"] = judge(out)
    return out


def _command() -> str:
    """The command that made a section, as run from the project root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return " ".join(["python", str(shown), *sys.argv[1:]])


def measured(scenario: str, test: str, kind: str, value: float, n: int, **extra) -> dict:
    """A single measurement (not a rate over replications): no Monte-Carlo SE."""
    out = {"scenario": scenario, "test": test, "kind": kind, "rate": round(float(value), 4), "n": int(n),
           "mcse": 0.0, "single": True, **extra}
    out["pass"] = judge(out)
    return out


def write(bench: str, section: str, rows: list[dict], *, fingerprint: str, reps: int, seed: int,
          seconds: float) -> Path:
    """Replace one section of bench/results/<bench>.json (written whole, atomically)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}.json"
    record = json.loads(path.read_text()) if path.exists() else {"bench": bench, "sections": {}}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    record["sections"][section] = {
        "fingerprint": fingerprint, "command": _command(), "reps": reps, "seed": seed,
        "date": datetime.now(timezone.utc).date().isoformat(), "seconds": round(seconds),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "commit": commit, "rows": rows}
    record["sections"] = dict(sorted(record["sections"].items()))
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{bench}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    if bench in PACKAGED:  # the report shows it, so the package carries a copy (tests check it is equal)
        shutil.copyfile(path, PACKAGED[bench])
    return path
