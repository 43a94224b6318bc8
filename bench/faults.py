"""Faults, as a user meets them: random SIGKILLs of `surrogate run`, `merge` and `finetune`,
resumed, against uninterrupted runs; and the audit's cases, each through the command line in
a subprocess (two writers with one label, edited and planted parts, weights changed in
place, resumes of another specification, names that would be paths, planted links, inputs
past their limits, edited records, nonsense options).

    python bench/faults.py                  # 10 kills of each, then every case (about 10 minutes on 2 cores)
    python bench/faults.py --kills 20 --seed 3
    python bench/faults.py --only cases     # the audit's cases alone

Each kill trial starts the command as a subprocess, kills it (SIGKILL: no chance to clean
up) after a random delay, and starts it again, until it finishes. Then it compares: for
`run`, the responses table with an uninterrupted run's (every unit once, equal NLLs, nothing
missing, plain pandas included); for `merge`, the merged table; for `finetune`, the adapter
weights. Each case prints `ok` or `FAILED` with what it saw; the exit code is the number of
failed cases.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from surrogate.data import shared_psych201

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_psych201(ROOT)
RUN = ["run", "--model", "demo-base", "--model", "demo-chat", "--data", str(SHARED), "--study", "thoma2025problearn",
       "--study", "busch2024_stroop", "--max-participants", "12", "--persona", "none,interview,shuffled"]
FINETUNE = ["finetune", "--model", "demo-base", "--data", str(SHARED), "--study", "busch2024_stroop",
            "--max-participants", "30", "--max-steps", "40", "--window-tokens", "256", "--batch-tokens", "1024",
            "--eval-per-study", "3", "--learning-rate", "1e-3"]


def _cli(args: list[str], out: Path) -> subprocess.Popen:
    code = "import sys; from surrogate.cli import app; app(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, *args, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _with_kills(args: list[str], out: Path, kills: int, rng: random.Random, max_delay: float) -> tuple[int, int]:
    """Kill the command `kills` times at random moments, then let it finish: (kills done, starts)."""
    done = starts = 0
    while True:
        proc = _cli(args, out)
        starts += 1
        if done < kills:
            try:
                proc.wait(timeout=rng.uniform(1.0, max_delay))
                if proc.returncode == 0:
                    return done, starts  # finished before the kill came
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done += 1
                continue
        proc.wait()
        if proc.returncode != 0:
            raise SystemExit(f"the resumed command failed with exit code {proc.returncode}")
        return done, starts


def bench_run(kills: int, rng: random.Random, tmp: Path) -> None:
    import numpy as np

    from surrogate.store import read_responses

    t0 = time.time()
    assert _cli(RUN, tmp / "clean").wait() == 0
    clean_seconds = time.time() - t0
    done, starts = _with_kills(RUN, tmp / "killed", kills, rng, max_delay=clean_seconds)
    key = ["model", "persona", "study", "participant", "response_index"]
    a = read_responses(tmp / "clean").sort_values(key).reset_index(drop=True)
    b = read_responses(tmp / "killed").sort_values(key).reset_index(drop=True)
    dup = int(b.duplicated(["unit_key", "response_index"]).sum())
    same_rows = len(a) == len(b) and (a[key].to_numpy() == b[key].to_numpy()).all()
    diff = float(np.nanmax(np.abs(a["nll"].to_numpy() - b["nll"].to_numpy()))) if same_rows else float("nan")
    temporaries = len(list((tmp / "killed").rglob("_*.tmp")))
    print(f"run:      {done} SIGKILLs, {starts} starts; rows {len(b)} (uninterrupted {len(a)}); "
          f"duplicates {dup}; same units {same_rows}; largest NLL difference {diff:.2e}; "
          f"temporaries left {temporaries}; uninterrupted run {clean_seconds:.0f} s")


def bench_finetune(kills: int, rng: random.Random, tmp: Path) -> None:
    from safetensors.numpy import load_file

    t0 = time.time()
    assert _cli(FINETUNE, tmp / "lora-clean").wait() == 0
    clean_seconds = time.time() - t0
    done, starts = _with_kills(FINETUNE, tmp / "lora-killed", kills, rng, max_delay=clean_seconds)
    a = load_file(tmp / "lora-clean" / "adapter_model.safetensors")
    b = load_file(tmp / "lora-killed" / "adapter_model.safetensors")
    equal = a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    print(f"finetune: {done} SIGKILLs, {starts} starts; adapter weights equal to the uninterrupted run's: {equal}; "
          f"report written: {(tmp / 'lora-killed' / 'report.json').exists()}; uninterrupted run {clean_seconds:.0f} s")


def bench_merge(kills: int, rng: random.Random, tmp: Path) -> None:
    """SIGKILLs during `merge` of two shards, then the same merge again: every unit once,
    for plain pandas too, and no temporary left behind."""
    import pandas as pd

    from surrogate.store import read_responses

    for k in range(2):
        assert _cli([*RUN, "--shard", f"{k}/2"], tmp / "shards").wait() == 0
    merge = ["merge", str(tmp / "shards")]
    t0 = time.time()
    assert _cli(merge, tmp / "merge-clean").wait() == 0
    clean_seconds = max(time.time() - t0, 1.5)
    done, starts = _with_kills(merge, tmp / "merge-killed", kills, rng, max_delay=clean_seconds)
    plain = pd.read_parquet(tmp / "merge-killed" / "responses.parquet")
    dup = int(plain.duplicated(["unit_key", "response_index"]).sum())
    same = len(plain) == len(read_responses(tmp / "merge-clean"))
    temporaries = len(list((tmp / "merge-killed").rglob("_*.tmp")))
    print(f"merge:    {done} SIGKILLs, {starts} starts; plain pandas rows {len(plain)}, duplicates {dup}; same rows as "
          f"the uninterrupted merge {same}; temporaries left {temporaries}")


def main() -> None:
    from faults_cases import run_cases

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["kills", "cases"], default=None)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="surrogate-faults-"))
    failed = 0
    try:
        if a.only in (None, "kills"):
            bench_run(a.kills, rng, tmp)
            bench_merge(a.kills, rng, tmp)
            bench_finetune(a.kills, rng, tmp)
        if a.only in (None, "cases"):
            failed = run_cases(tmp / "cases")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(failed)


if __name__ == "__main__":
    main()
