"""The reliability audit's cases, each run through the command line in subprocesses as a user
would meet it (see bench/faults.py). A case returns what it saw and whether that is right."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from surrogate.data import shared_psych201

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_psych201(ROOT)
DATA = ["--data", str(SHARED), "--study", "thoma2025problearn", "--study", "busch2024_stroop", "--max-participants",
        "4"]
CODE = "import sys; from surrogate.cli import app; app(sys.argv[1:])"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CODE, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CODE, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def refused(res: subprocess.CompletedProcess, *needles: str) -> tuple[bool, str]:
    """Exit 2, no traceback, every needle in the message."""
    text = res.stdout + res.stderr
    ok = res.returncode == 2 and "Traceback" not in text and all(n in text for n in needles)
    return ok, f"exit {res.returncode}: {' '.join(text.split())[:160]}"


def _table(out: Path):
    import pandas as pd

    return pd.read_parquet(out / "responses.parquet")


# --- one identity per label ----------------------------------------------------------------------

def two_writers_one_label(tmp: Path) -> tuple[bool, str]:
    out = tmp / "mixed"
    a = start("run", "--model", "base=demo-base", *DATA, "--out", out)
    b = start("run", "--model", "base=demo-chat", *DATA, "--shard", "0/2", "--out", out)
    codes = sorted([a.wait(), b.wait()])
    errs = (a.stderr.read() if a.stderr else "") + (b.stderr.read() if b.stderr else "") + \
        (a.stdout.read() if a.stdout else "") + (b.stdout.read() if b.stdout else "")
    units = _table(out).drop_duplicates("unit_key")
    twice = int(units.duplicated(["model", "persona", "study", "experiment", "participant"]).sum())
    ok = codes == [0, 2] and "already names another model" in errs and twice == 0
    return ok, f"exit codes {codes}; units stored two ways: {twice}"


def one_label_two_folders(tmp: Path) -> tuple[bool, str]:
    cli("run", "--model", "m=demo-base", *DATA, "--out", tmp / "a")
    cli("run", "--model", "m=demo-chat", *DATA, "--out", tmp / "b")
    ok1, seen1 = refused(cli("analyze", tmp / "a", tmp / "b"), "names different models")
    ok2, seen2 = refused(cli("report", tmp / "a", tmp / "b", "--out", tmp / "rep"), "names different models")
    sep = cli("analyze", tmp / "a", tmp / "b", "--separate-labels", "--out", tmp / "an")
    return ok1 and ok2 and sep.returncode == 0, f"analyze: {seen1}; report: {seen2}; separate: exit {sep.returncode}"


def weights_changed_in_place(tmp: Path) -> tuple[bool, str]:
    import shutil

    from surrogate.organisms import resolve_model

    model = tmp / "model"
    shutil.copytree(resolve_model("demo-base"), model)
    first = cli("run", "--model", f"m={model}", *DATA, "--out", tmp / "w1")
    weights = model / "model.safetensors"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # a byte of the last tensor, size kept
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ok, seen = refused(cli("run", "--model", f"m={model}", *DATA, "--out", tmp / "w1"), "already names another model")
    cli("run", "--model", f"m={model}", *DATA, "--out", tmp / "w2")
    keys_differ = set(_table(tmp / "w1")["unit_key"]).isdisjoint(_table(tmp / "w2")["unit_key"])
    ok_merge, seen_merge = refused(cli("merge", tmp / "w2", "--out", tmp / "w1"), "names different models")
    return first.returncode == 0 and ok and keys_differ and ok_merge, \
        f"resume: {seen}; unit keys differ: {keys_differ}; merge: {seen_merge}"


# --- tamper-evident parts ----------------------------------------------------------------------

def _edited(tmp: Path, name: str, edit: Callable) -> tuple[bool, str]:
    import pandas as pd

    out = tmp / name
    cli("run", "--model", "demo-base", *DATA, "--persona", "both", "--out", out)
    part = sorted((out / "responses.parquet").glob("part-*.parquet"))[0]
    frame = pd.read_parquet(part)
    buf = io.BytesIO()
    edit(frame).to_parquet(buf, index=False)
    part.write_bytes(buf.getvalue())
    checks = [refused(cli("analyze", out), part.name),
              refused(cli("run", "--model", "demo-base", *DATA, "--persona", "both", "--out", out), part.name),
              refused(cli("merge", out, "--out", tmp / f"{name}-merged"), part.name)]
    return all(ok for ok, _ in checks), "; ".join(seen for _, seen in checks)


def nlls_edited(tmp: Path) -> tuple[bool, str]:
    return _edited(tmp, "nll", lambda f: f.assign(nll=f["nll"] + 20))


def rows_deleted(tmp: Path) -> tuple[bool, str]:
    return _edited(tmp, "rows", lambda f: f[f["unit_key"] != f["unit_key"].iloc[0]])


def wrong_types(tmp: Path) -> tuple[bool, str]:
    return _edited(tmp, "types", lambda f: f.assign(nll=f["nll"].astype(str)))


def plain_pandas_never_double_counts(tmp: Path) -> tuple[bool, str]:
    out = tmp / "both"
    a = start("run", "--model", "demo-base", *DATA, "--out", out)
    b = start("run", "--model", "demo-base", *DATA, "--shard", "0/2", "--out", out)
    codes = [a.wait(), b.wait()]
    plain = _table(out)
    dup = int(plain.duplicated(["unit_key", "response_index"]).sum())
    return codes == [0, 0] and dup == 0, f"exit codes {codes}; duplicate rows for plain pandas: {dup}"


# --- every job resumes only what it would have written --------------------------------------------

def simulate_resumes_only_itself(tmp: Path) -> tuple[bool, str]:
    out = tmp / "sim"
    cli("simulate", "--experiment", "restless_bandit", "--participants", "3", "--trials", "10", "--out", out)
    checks = [refused(cli("simulate", "--experiment", "mixed_lotteries", "--participants", "3", "--out", out),
                      "another specification"),
              refused(cli("simulate", "--experiment", "restless_bandit", "--participants", "3", "--trials", "10",
                          "--seed", "5", "--out", out), "seed"),
              refused(cli("simulate", "--experiment", "restless_bandit", "--participants", "3", "--trials", "12",
                          "--out", out), "experiment")]
    return all(ok for ok, _ in checks), "; ".join(seen for _, seen in checks)


# --- names are data -------------------------------------------------------------------------------

def names_never_become_paths(tmp: Path) -> tuple[bool, str]:
    seen = []
    ok = True
    table = tmp / "t.csv"
    table.write_text("participant,trial,choice\n1,1,a\n")
    for name in ("/tmp/surrogate-abs-escape", "../../escape"):
        spec = tmp / "n.toml"
        spec.write_text(f'name = "{name}"\ninstructions = "Choose."\ntrials = 3\noptions = ["a", "b"]\n')
        for args in (("simulate", "--experiment", spec, "--participants", "2", "--out", tmp / "s"),
                     ("import", table, "--experiment", spec, "--out", tmp / "i")):
            good, text = refused(cli(*args), "name")
            ok &= good
            seen.append(text)
    ok &= not Path("/tmp/surrogate-abs-escape").exists() and not (tmp.parent / "escape").exists()
    labels = ["a-b", "a_b", "$x^2$ and $y$", "q" * 300]
    run = ["run", *sum((["--model", f"{lab}=demo-base"] for lab in labels), []), "--data", str(SHARED), "--study",
           "thoma2025problearn", "--max-participants", "8", "--persona", "none,interview,shuffled",
           "--out", tmp / "labels"]
    r = cli(*run)
    rep = cli("report", tmp / "labels", "--out", tmp / "rep")
    figs = sorted(p.name for p in (tmp / "rep" / "figures").glob("persona_*.png")) if rep.returncode == 0 else []
    ok &= r.returncode == 0 and rep.returncode == 0 and len(figs) == len(labels) and max(map(len, figs)) < 100
    return ok, "; ".join(seen) + f"; report exit {rep.returncode}, persona figures {len(figs)} of {len(labels)}"


# --- writes never follow a link -------------------------------------------------------------------

def no_write_through_links(tmp: Path) -> tuple[bool, str]:
    victim = tmp / "victim"
    victim.write_text("precious")
    sim = tmp / "sim-link"
    sim.mkdir()
    (sim / "trials.parquet").symlink_to(victim)
    cli("simulate", "--experiment", "restless_bandit", "--participants", "2", "--trials", "5", "--out", sim)
    lora = tmp / "lora-link"
    lora.mkdir()
    (lora / "README.md").symlink_to(victim)
    cli("finetune", "--model", "demo-base", "--data", str(SHARED), "--study", "busch2024_stroop",
        "--max-participants", "20", "--max-steps", "2", "--window-tokens", "128", "--batch-tokens", "256",
        "--eval-per-study", "2", "--out", lora)
    cache = tmp / "cache"
    cache.mkdir()
    for pid in range(os.getpid(), os.getpid() + 400):
        (cache / f".digests-{pid}.tmp").symlink_to(victim)
    cli("run", "--model", "demo-base", *DATA, "--out", tmp / "cached", env={"SURROGATE_CACHE": str(cache)})
    ok = victim.read_text() == "precious" and not (sim / "trials.parquet").is_symlink() \
        and not (lora / "README.md").is_symlink()
    return ok, f"victim intact: {victim.read_text() == 'precious'}"


# --- inputs bounded, errors one line ----------------------------------------------------------------

def limits_hold(tmp: Path) -> tuple[bool, str]:
    import pandas as pd

    seen = []
    ok = True
    line = json.dumps({"text": "x <<J>>. " + "y" * 500, "participant": 1}) + "\n"
    arch = tmp / "two" / "prompts.jsonl.zip"
    arch.parent.mkdir()
    with zipfile.ZipFile(arch, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jsonl", line * 4)
        zf.writestr("b.jsonl", line.replace('"participant": 1', '"participant": 2') * 4)
    env = {"SURROGATE_MAX_FILE_BYTES": str(int(len(line) * 6))}
    res = cli("run", "--model", "demo-base", "--data", arch, "--out", tmp / "o1", env=env)
    good, text = refused(res, "more than the limit")
    ok, seen = ok & good, seen + [text]
    data = bytearray(arch.read_bytes())
    cd = data.rfind(b"PK\x01\x02")
    while cd >= 0:
        data[cd + 24:cd + 28] = struct.pack("<I", 10)
        cd = data.rfind(b"PK\x01\x02", 0, cd)
    lied = tmp / "lied" / "prompts.jsonl.zip"
    lied.parent.mkdir()
    lied.write_bytes(bytes(data))
    good, text = refused(cli("run", "--model", "demo-base", "--data", lied, "--out", tmp / "o2", env=env))
    ok, seen = ok & good, seen + [text]
    broken = tmp / "broken" / "prompts.jsonl.zip"
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04 not a zip")
    good, text = refused(cli("run", "--model", "demo-base", "--data", broken, "--out", tmp / "o3"), "not a readable zip")
    ok, seen = ok & good, seen + [text]
    pq = tmp / "bomb" / "prompts.parquet"
    pq.parent.mkdir()
    pd.DataFrame({"text": ["x <<J>>. " + "y" * 200_000] * 200, "participant": range(200),
                  "experiment": "e"}).to_parquet(pq)
    res = cli("run", "--model", "demo-base", "--data", pq, "--max-participants", "3", "--out", tmp / "o4",
              env={"SURROGATE_MAX_FILE_BYTES": str(2 * 10**6)})
    good, text = refused(res, "bytes uncompressed")
    ok, seen = ok & good, seen + [text]
    key = tmp / "key.jsonl"
    key.write_text(json.dumps({"text": "a <<J>>.", "participant": 1, "age": 30}) + "\n"
                   + '{"text": "b <<J>>.", "participant": 2, "\\ud800age": 31}\n'
                   + json.dumps({"text": "c <<K>>.", "participant": 3, "age": 32}) + "\n")
    res = cli("run", "--model", "demo-base", "--data", key, "--persona", "none,interview,shuffled", "--skip-invalid",
              "--out", tmp / "o5")
    ok &= res.returncode == 0
    seen.append(f"lone surrogate in a key under --skip-invalid: exit {res.returncode}")
    return ok, "; ".join(seen)


def edited_records_and_bad_files(tmp: Path) -> tuple[bool, str]:
    out = tmp / "rec"
    cli("run", "--model", "demo-base", *DATA, "--out", out)
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "config": {"models": [{}], "truncation": 3}}))
    checks = [refused(cli("report", out, "--out", tmp / "rep1"), "not a surrogate run record")]
    (out / "run.json").write_text(json.dumps(info))
    (out / "report.json").write_text(json.dumps({"heldout": "x", "adapter": 1}))
    checks.append(refused(cli("report", out, "--out", tmp / "rep2"), "not a LoRA report"))
    exp = tmp / "e.toml"
    exp.write_text('name = "e"\ninstructions = "Choose."\ntrials = 3\noptions = ["a", "b"]\n')
    header = tmp / "h.csv"
    header.write_text("participant,trial,choice\n")
    checks.append(refused(cli("import", header, "--experiment", exp, "--out", tmp / "i"), "no trials"))
    checks.append(refused(cli("finetune", "--model", "demo-base", "--data", str(SHARED), "--epochs", "inf", "--out",
                              tmp / "ft"), "--epochs"))
    for field in ('links = [{trait = "STAI-T", param = "learning_rate", slope = inf}]',
                  'feedback = {kind = "points", means = [1.0, 2.0], sd = inf}'):
        bad = tmp / "inf.toml"
        bad.write_text(exp.read_text() + field + "\n")
        checks.append(refused(cli("simulate", "--experiment", bad, "--out", tmp / "sinf"), "finite"))
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"planted")
    checks.append(refused(cli("run", "--model", f"demo-base,adapter={adapter}", *DATA, "--out", tmp / "ad"),
                          "adapter_model.bin"))
    checks.append(refused(cli("run", "--model", tmp / "models" / "typo", *DATA, "--out", tmp / "typo"),
                          "no such file"))
    checks.append(refused(cli("run", "--model", "demo-base,device=cuda", *DATA, "--out", tmp / "cuda"), "cuda"))
    ok = all(good for good, _ in checks) and not any((tmp / n).exists() for n in ("ft", "ad", "typo", "cuda"))
    # A signal between two models: run.json says interrupted, never running.
    proc = start("run", "--model", "demo-base", "--model", "organism-base", *DATA, "--persona", "both",
                 "--out", tmp / "sig")
    for _ in range(600):
        info_path = tmp / "sig" / "run.json"
        if info_path.exists() and "demo-base" in json.loads(info_path.read_text() or "{}").get("models", {}):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    status = json.loads((tmp / "sig" / "run.json").read_text())["status"]
    ok &= status in ("interrupted", "complete")
    return ok, "; ".join(seen for _, seen in checks) + f"; after SIGTERM: {status}"


def nonsense_refused(tmp: Path) -> tuple[bool, str]:
    checks = [refused(cli("simulate", "--experiment", "restless_bandit", "--trials", t, "--out", tmp / "s"), "--trials")
              for t in ("-3", "0")]
    checks.append(refused(cli("simulate", "--experiment", "restless_bandit", "--batch-size", "0", "--out",
                              tmp / "s"), "--batch-size"))
    checks.append(refused(cli("run", *DATA, "--options", "nostudy=a,b", "--out", tmp / "o"), "no such study"))
    cli("run", "--model", "demo-base", *DATA, "--out", tmp / "r")
    checks.append(refused(cli("analyze", tmp / "r", "--matched", "narrative"), "never scored"))
    cli("simulate", "--experiment", "restless_bandit", "--participants", "4", "--trials", "8", "--out", tmp / "p")
    cli("simulate", "--experiment", "mixed_lotteries", "--participants", "4", "--trials", "8", "--out", tmp / "a")
    checks.append(refused(cli("compare-agents", tmp / "p", tmp / "a"), "not comparable"))
    base = 'name = "e"\ninstructions = "Choose."\noptions = ["a", "b"]\n'
    for line in ("trials = true", 'trials = "60"', "trials = 7.0",
                 'trials = 3\nfeedback = {kind = "bernoulli", probabilities = [2.0, -1.0]}',
                 'trials = 3\nfeedback = {kind = "bernoulli", probabilities = [0.5, 0.5]}\n'
                 'conditions = [{name = "c", reversal_every = -4}]'):
        f = tmp / "x.toml"
        f.write_text(base + line + "\n")
        checks.append(refused(cli("simulate", "--experiment", f, "--out", tmp / "sx"), "x.toml"))
    spec = tmp / "l.toml"
    spec.write_text('name = "e"\ninstructions = "Choose."\ntrials = 3\nlabels = 2\n')
    for choice in ('">>b"', '"a\nb"'):
        table = tmp / "c.csv"
        table.write_text(f"participant,trial,choice\n1,1,a\n1,2,{choice}\n")
        checks.append(refused(cli("import", table, "--experiment", spec, "--out", tmp / "ic"), "cannot be a response"))
    return all(ok for ok, _ in checks), "; ".join(seen for _, seen in checks)


CASES = [two_writers_one_label, one_label_two_folders, weights_changed_in_place, nlls_edited, rows_deleted,
         wrong_types, plain_pandas_never_double_counts, simulate_resumes_only_itself, names_never_become_paths,
         no_write_through_links, limits_hold, edited_records_and_bad_files, nonsense_refused]


def run_cases(tmp: Path) -> int:
    failed = 0
    for case in CASES:
        folder = tmp / case.__name__
        folder.mkdir(parents=True)
        t0 = time.time()
        try:
            ok, seen = case(folder)
        except Exception as e:  # noqa: BLE001 - a case that crashes is a failed case
            ok, seen = False, f"{type(e).__name__}: {e}"
        failed += not ok
        print(f"{'ok    ' if ok else 'FAILED'} {case.__name__:<36} {time.time() - t0:5.0f} s  {seen}", flush=True)
    print(f"{len(CASES) - failed} of {len(CASES)} cases ok")
    return failed
