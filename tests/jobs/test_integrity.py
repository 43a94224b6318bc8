"""A result is what it says it is: one model per label, tamper-evident parts, resumes that
check what they resume, names that never become paths, and every bad input one line."""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.models import HashBackend
from surrogate.jobs.analyze import analyze
from surrogate.jobs.merge import merge
from surrogate.store import read_choices, read_responses
from surrogate.jobs.run import run
from surrogate.store import CHOICES, RESPONSES

STUDIES = ["thoma2025problearn", "busch2024_stroop"]


def _fails(args, *needles, usage: bool = False):
    """Exit 2 with the needles in the message: one line from surrogate, or typer's usage box
    for an option out of its range (`usage`)."""
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, (args, res.output)
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in res.output and (usage or len(lines) <= 3), res.output
    for needle in needles:
        assert needle in res.output, (needle, res.output)
    return res.output


class Slow(HashBackend):
    """A HashBackend that takes its time per unit, so two writers overlap."""

    def __init__(self, name: str, weights: str, **kw):
        super().__init__(name, **kw)
        self.weights = weights

    def fingerprint(self):
        return {**super().fingerprint(), "weights": self.weights}

    def score(self, requests):
        for i, result in super().score(requests):
            time.sleep(0.01)
            yield i, result


# --- one identity per label ----------------------------------------------------------------------

def test_two_writers_with_different_models_under_one_label_cannot_mix(psych201, tmp_path):
    """A plain writer (base) and a --shard 0/2 writer (another model, the same label) started
    together: before, both exited 0 and the table held two unit keys for the same people."""
    out = tmp_path / "run"
    errors: list[BaseException] = []

    def go(weights, shard):
        try:
            run([Slow("base", weights)], psych201, "none", out, studies=STUDIES, max_participants=6, shard=shard,
                checkpoint_seconds=0)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go, args=("demo-base", None)),
               threading.Thread(target=go, args=("demo-chat", "0/2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 1 and "already names another model" in str(errors[0])
    table = read_responses(out)
    units = table.drop_duplicates("unit_key")
    assert not units.duplicated(["model", "persona", "study", "experiment", "participant"]).any()
    assert json.loads((out / "labels.json").read_text())["base"]["fingerprint"]["weights"] in ("demo-base", "demo-chat")


def test_analysis_refuses_a_label_that_names_two_models_or_separates_them(psych201, tmp_path):
    kw = dict(studies=["thoma2025problearn"], max_participants=4)
    run([Slow("m", "one")], psych201, "none", tmp_path / "a", **kw)
    run([Slow("m", "two")], psych201, "none", tmp_path / "b", **kw)
    with pytest.raises(ValueError, match="label 'm' names different models"):
        analyze([tmp_path / "a", tmp_path / "b"], out=tmp_path / "x")
    _fails(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "rep")], "different models")
    both = analyze([tmp_path / "a", tmp_path / "b"], out=tmp_path / "y", separate_labels=True)
    assert set(both.responses["model"]) == {"m", "m@b"}
    with pytest.raises(ValueError, match="label 'm' names different models"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")


# --- tamper-evident, pandas-clean parts ----------------------------------------------------------

def _run(psych201, out, **kw):
    from .test_faults import ChoosingHash  # scores option sets too, so choices.parquet is written

    return run([ChoosingHash("h")], psych201, "both", out, studies=STUDIES, max_participants=3, checkpoint_seconds=0,
               **kw)


def _rewrite(part: Path, edit) -> None:
    frame = pd.read_parquet(part)
    buf = io.BytesIO()
    edit(frame).to_parquet(buf, index=False)
    part.write_bytes(buf.getvalue())


@pytest.mark.parametrize("edit", ["nll", "rows", "types"])
def test_an_edited_part_is_named_by_every_reader(psych201, tmp_path, edit):
    out = tmp_path / "run"
    _run(psych201, out)
    part = sorted((out / RESPONSES).glob("part-*.parquet"))[1]
    change = {"nll": lambda f: f.assign(nll=f["nll"] * 3),
              "rows": lambda f: f.iloc[:-1],
              "types": lambda f: f.assign(response_index=f["response_index"].astype(str))}[edit]
    _rewrite(part, change)
    with pytest.raises(ValueError, match=f"{part.name}: .*(changed after it was committed|rows where)"):
        read_responses(out)
    with pytest.raises(ValueError, match=part.name):
        _run(psych201, out)  # a resume never takes an edited part for done
    with pytest.raises(ValueError, match=part.name):
        merge([out], tmp_path / "merged")
    _fails(["analyze", str(out)], part.name)


def test_a_deleted_part_and_a_planted_part_are_named(psych201, tmp_path):
    out = tmp_path / "run"
    _run(psych201, out)
    parts = sorted((out / RESPONSES).glob("part-*.parquet"))
    (out / "planted").mkdir()
    os.replace(parts[0], out / "planted" / parts[0].name)
    with pytest.raises(ValueError, match=f"{parts[0].name}: committed by 0-of-1 but missing"):
        read_responses(out)
    os.replace(out / "planted" / parts[0].name, parts[0])
    (out / RESPONSES / "part-x-000001-00000000.parquet").write_bytes(parts[1].read_bytes())
    with pytest.raises(ValueError, match="part-x-000001-00000000.parquet: not recorded"):
        read_responses(out)


def test_a_commit_killed_between_record_and_rename_is_finished_by_the_next_writer(psych201, tmp_path,
                                                                                 monkeypatch):
    """The writer is killed after recording a part and before renaming it into place (as a
    SIGKILL during `merge` left an orphan part and a temporary, and pandas then read 1,584
    duplicate rows): readers say so, the next writer finishes the commit, nothing twice."""
    out = tmp_path / "run"
    real = os.replace
    calls = {"n": 0}

    def killed(src, dst, *a, **k):
        if str(src).endswith(".parquet.tmp"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt  # stands for SIGKILL: no clean-up runs after this point
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(psych201, out)
    monkeypatch.setattr(os, "replace", real)
    assert list((out / RESPONSES).glob("_part-*.tmp"))
    with pytest.raises(ValueError, match="did not finish"):
        read_responses(out)
    done = _run(psych201, out)  # the next writer finishes the interrupted commit, then resumes
    assert not list((out / RESPONSES).glob("_part-*.tmp")) and not list((out / CHOICES).glob("_part-*.tmp"))
    plain = pd.read_parquet(out / RESPONSES)
    assert not plain.duplicated(["unit_key", "response_index"]).any()
    assert plain["unit_key"].nunique() == done.responses["unit_key"].nunique() == 12
    choices = pd.read_parquet(out / CHOICES)
    assert not choices.duplicated(["unit_key", "response_index"]).any() and len(choices) > 0
    assert set(choices["unit_key"]) == set(read_choices(out)["unit_key"])
    assert set(plain.loc[plain.study == "busch2024_stroop", "unit_key"]) <= set(choices["unit_key"]) <= set(
        plain["unit_key"])


def test_a_folder_from_before_manifests_is_read_and_adopted(psych201, tmp_path):
    """Parts written by the old store (no manifest, a unit in two parts): read as before, and
    the next writer records them, each unit once, for pandas too."""
    out = tmp_path / "run"
    _run(psych201, out)
    for m in (out / RESPONSES).glob("_manifest-*.jsonl"):
        m.unlink()
    parts = sorted((out / RESPONSES).glob("part-*.parquet"))
    (out / RESPONSES / "part-0-of-1-999999-ffffffff.parquet").write_bytes(parts[0].read_bytes())
    assert read_responses(out)["unit_key"].nunique() == 12
    _run(psych201, out)
    plain = pd.read_parquet(out / RESPONSES)
    assert not plain.duplicated(["unit_key", "response_index"]).any() and plain["unit_key"].nunique() == 12


# --- every job resumes only what it would have written ------------------------------------------

def test_simulate_refuses_to_resume_another_specification(tmp_path):
    from surrogate.jobs.simulate import simulate

    out = tmp_path / "sim"
    simulate("restless_bandit", participants=3, seed=1, out=out, trials=10, fit=False)
    for kw, what in ((dict(experiment="mixed_lotteries"), "experiment"), (dict(seed=2), "seed"),
                     (dict(trials=12), "experiment")):
        args = dict(experiment="restless_bandit", participants=3, seed=1, out=out, trials=10, fit=False) | kw
        with pytest.raises(ValueError, match=f"another specification \\(differs in: .*{what}"):
            simulate(args.pop("experiment"), **args)
    again = simulate("restless_bandit", participants=3, seed=1, out=out, trials=10, fit=False)
    assert len(again.records) == 3


# --- names are data, never paths or markup --------------------------------------------------------

@pytest.mark.parametrize("name", ["/abs/path", "../../x", "..", ".hidden", "a b"])
def test_an_experiment_name_never_becomes_a_path(tmp_path, name):
    spec = tmp_path / "exp.toml"
    spec.write_text(f'name = "{name}"\ninstructions = "Choose."\ntrials = 3\noptions = ["a", "b"]\n')
    _fails(["simulate", "--experiment", str(spec), "--participants", "2", "--out", str(tmp_path / "o")], "name")
    table = tmp_path / "t.csv"
    table.write_text("participant,trial,choice\n1,1,a\n")
    _fails(["import", str(table), "--experiment", str(spec), "--out", str(tmp_path / "i")], "name")
    assert not (tmp_path / "o").exists() and not (tmp_path / "i").exists()
    assert not Path("/abs").exists()


def test_labels_never_collide_or_break_the_report(psych201, tmp_path):
    labels = ["a-b", "a_b", "$x^2$ and $y$", "q" * 300, "../../evil"]
    run([HashBackend(n) for n in labels], psych201, "none,interview,shuffled", tmp_path / "r",
        studies=["thoma2025problearn"], max_participants=8)
    rep = CliRunner().invoke(app, ["report", str(tmp_path / "r"), "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    names = [p.name for p in (tmp_path / "rep" / "figures").glob("persona_*.png")]
    assert len(names) == len(labels) and all(len(n) < 100 for n in names)
    assert all((tmp_path / "rep" / "figures").resolve() == p.resolve().parent
               for p in (tmp_path / "rep" / "figures").iterdir())
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "$x^2$ and $y$" in page


# --- writes never follow a planted link ---------------------------------------------------------

def test_study_files_and_the_adapter_card_are_never_written_through_links(tmp_path):
    from surrogate.jobs.finetune import _save_adapter
    from surrogate.jobs.simulate import simulate

    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "sim"
    out.mkdir()
    (out / "trials.parquet").symlink_to(victim)
    simulate("restless_bandit", participants=2, out=out, trials=5, fit=False)
    assert victim.read_text() == "precious" and not (out / "trials.parquet").is_symlink()
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "README.md").symlink_to(victim)

    class Fake:
        def save_pretrained(self, folder, safe_serialization=True):
            (Path(folder) / "README.md").write_text("card")
            (Path(folder) / "adapter_config.json").write_text("{}")

    _save_adapter(Fake(), adapter)
    assert victim.read_text() == "precious" and (adapter / "README.md").read_text() == "card"


# --- every input bounded, every error one line ----------------------------------------------------

def test_an_archive_is_bounded_as_a_whole_and_a_corrupt_one_is_one_line(tmp_path, monkeypatch):
    from surrogate.data import DataError, load

    path = tmp_path / "prompts.jsonl.zip"
    line = json.dumps({"text": "x <<J>>. " + "y" * 500, "participant": 1}) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jsonl", line * 4)
        zf.writestr("b.jsonl", line.replace('"participant": 1', '"participant": 2') * 4)
    size = len(line) * 4
    monkeypatch.setenv("SURROGATE_MAX_FILE_BYTES", str(int(size * 1.5)))  # each member fits, both do not
    with pytest.raises(DataError, match="more than the limit"):
        load(path)
    # A header that understates the size: the bytes read are counted all the same.
    data = bytearray(path.read_bytes())
    cd = data.rfind(b"PK\x01\x02")
    while cd >= 0:
        data[cd + 24:cd + 28] = struct.pack("<I", 10)  # central directory: uncompressed size 10
        cd = data.rfind(b"PK\x01\x02", 0, cd)
    lied = tmp_path / "lied" / "prompts.jsonl.zip"
    lied.parent.mkdir()
    lied.write_bytes(bytes(data))
    with pytest.raises(DataError):
        load(lied)
    monkeypatch.delenv("SURROGATE_MAX_FILE_BYTES")
    broken = tmp_path / "broken" / "prompts.jsonl.zip"
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    _fails(["run", "--model", "demo-base", "--data", str(broken), "--out", str(tmp_path / "o")], "not a readable zip")


def test_a_parquet_input_is_bounded_before_it_is_read(tmp_path, monkeypatch):
    from surrogate.data import DataError, load

    path = tmp_path / "prompts.parquet"
    pd.DataFrame({"text": ["x <<J>>. " + "y" * 20_000] * 50, "participant": list(range(50)),
                  "experiment": "e"}).to_parquet(path)
    monkeypatch.setenv("SURROGATE_MAX_FILE_BYTES", "100000")
    with pytest.raises(DataError, match="bytes uncompressed"):  # 1 MB decoded from 20 KB of repeats
        load(path, max_participants=3)
    monkeypatch.delenv("SURROGATE_MAX_FILE_BYTES")
    assert len(load(path, max_participants=3).participants) == 3


def test_a_lone_surrogate_in_a_field_name_is_a_bad_record(tmp_path):
    data = tmp_path / "prompts.jsonl"
    good = {"text": "You press <<J>>.", "experiment": "e", "participant": 1, "age": 30}
    data.write_text(json.dumps(good) + "\n" + '{"text": "x <<J>>.", "experiment": "e", "participant": 2, '
                    '"\\ud800age": 3}\n' + json.dumps({**good, "participant": 3}) + "\n")
    _fails(["run", "--model", "demo-base", "--data", str(data), "--out", str(tmp_path / "o")],
           "prompts.jsonl:2", "lone surrogate")
    result = run([HashBackend("h")], data, "none,interview,shuffled", tmp_path / "ok", skip_invalid=True)
    assert result.info.data["invalid"] == 1 and result.info.data["participants"] == 2


def test_edited_records_and_bad_files_are_one_line(psych201, tmp_path):
    out = tmp_path / "r"
    run([HashBackend("h")], psych201, "none", out, studies=["thoma2025problearn"], max_participants=2)
    info = json.loads((out / "run.json").read_text())
    info["config"]["models"] = [{"no path": 1}]
    info["config"]["truncation"] = "none"
    (out / "run.json").write_text(json.dumps(info))
    _fails(["report", str(out), "--out", str(tmp_path / "rep")], "run.json", "not a surrogate run record")
    (out / "run.json").write_text(json.dumps({**info, "config": {}}))
    (out / "report.json").write_text(json.dumps({"heldout": "many", "adapter": 3}))
    _fails(["report", str(out), "--out", str(tmp_path / "rep2")], "report.json", "not a LoRA report")
    exp = tmp_path / "e.toml"
    exp.write_text('name = "e"\ninstructions = "Choose."\ntrials = 3\noptions = ["a", "b"]\n')
    header = tmp_path / "h.csv"
    header.write_text("participant,trial,choice\n")
    _fails(["import", str(header), "--experiment", str(exp), "--out", str(tmp_path / "i")], "no trials")
    bad = tmp_path / "b.csv"
    bad.write_text('participant,trial,choice\n1,1,a\n1,2,">>b"\n')
    spec = tmp_path / "labels.toml"
    spec.write_text('name = "e"\ninstructions = "Choose."\ntrials = 3\nlabels = 2\n')
    _fails(["import", str(bad), "--experiment", str(spec), "--out", str(tmp_path / "j")], "b.csv:3",
           "cannot be a response")
    _fails(["finetune", "--model", "demo-base", "--data", str(psych201 / "busch2024_stroop"), "--epochs", "inf",
            "--out", str(tmp_path / "ft")], "--epochs", "finite")
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("field,value,needle", [
    ("trials", "true", "trials"), ("trials", '"60"', "trials"), ("trials", "7.0", "trials"),
    ("links", '[{trait = "STAI-T", param = "learning_rate", slope = inf}]', "slope"),
    ("feedback", '{kind = "points", means = [1.0, 2.0], sd = inf}', "sd"),
    ("feedback", '{kind = "bernoulli", probabilities = [2.0, -1.0]}', "probabilities"),
    ("conditions", '[{name = "c", reversal_every = -4}]', "reversal_every"),
    ("conditions", '[{name = "c", probabilities = [2.0, -1.0]}]', "probabilities"),
])
def test_experiment_files_are_checked_as_written(tmp_path, field, value, needle):
    from surrogate.experiments import load_experiment_spec

    fields = {"name": '"e"', "instructions": '"Choose."', "trials": "3", "options": '["a", "b"]',
              "feedback": '{kind = "bernoulli", probabilities = [0.8, 0.2]}', field: value}
    path = tmp_path / "e.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in fields.items()))
    with pytest.raises(ValueError, match=f"e.toml: .*{needle}"):
        load_experiment_spec(path)


def test_nonsense_options_are_refused_before_anything_is_written(psych201, tmp_path):
    data = str(psych201 / "busch2024_stroop")
    sim = ["simulate", "--experiment", "restless_bandit"]
    _fails([*sim, "--trials", "0", "--out", str(tmp_path / "s0")], "--trials", usage=True)
    _fails([*sim, "--trials", "-3", "--out", str(tmp_path / "s1")], "--trials", usage=True)
    _fails([*sim, "--batch-size", "0", "--out", str(tmp_path / "s2")], "--batch-size", usage=True)
    _fails(["run", "--data", data, "--max-participants", "1", "--options", "nosuchstudy=a,b", "--out",
            str(tmp_path / "o")], "--option-set nosuchstudy", "no such study")
    _fails(["run", "--model", str(tmp_path / "models" / "typo"), "--data", data, "--out", str(tmp_path / "t")],
           "no such file or folder")
    _fails(["run", "--model", "demo-base,device=cuda", "--data", data, "--out", str(tmp_path / "c")], "cuda")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"not weights")
    _fails(["run", "--model", f"demo-base,adapter={adapter}", "--data", data, "--out", str(tmp_path / "a")],
           "adapter_model.bin")
    for name in ("s0", "s1", "s2", "o", "t", "c", "a"):
        assert not (tmp_path / name).exists(), name
    run([HashBackend("h")], psych201, "none", tmp_path / "r", studies=["thoma2025problearn"], max_participants=2)
    _fails(["analyze", str(tmp_path / "r"), "--matched", "narrative"], "--matched narrative", "never scored")


def test_agents_and_people_of_different_experiments_are_not_compared(tmp_path):
    from surrogate.jobs.simulate import simulate

    simulate("restless_bandit", participants=4, out=tmp_path / "people", trials=8, fit=False)
    simulate("mixed_lotteries", participants=4, out=tmp_path / "agents", trials=8, fit=False)
    _fails(["compare-agents", str(tmp_path / "people"), str(tmp_path / "agents")], "not comparable")


def test_a_signal_between_two_models_leaves_the_run_interrupted(psych201, tmp_path):
    out = tmp_path / "r"

    class Stops(HashBackend):
        def fingerprint(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run([HashBackend("a"), Stops("b")], psych201, "none", out, studies=["thoma2025problearn"],
            max_participants=2)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["models"]["a"]["scored"] == 2


def test_one_model_under_two_labels_is_two_sets_of_units(psych201, tmp_path, qwen_dir):
    """Units were keyed without their label, so the second label's rows were taken for the
    first's and dropped from the table."""
    res = run([f"a={qwen_dir}", f"b={qwen_dir}"], psych201, "none", tmp_path / "r", studies=["thoma2025problearn"],
              max_participants=2, chat="off")
    table = read_responses(tmp_path / "r")
    assert table.groupby("model")["unit_key"].nunique().to_dict() == {"a": 2, "b": 2}
    a, b = (table[table.model == m].sort_values(["participant", "response_index"]) for m in ("a", "b"))
    assert (a["nll"].to_numpy() == b["nll"].to_numpy()).all() and res.info.models["b"].scored == 2
