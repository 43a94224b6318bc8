"""LoRA toward human behaviour, on real people: it trains, resumes, saves in peft's format and
loads as NAME=PATH,adapter=DIR (how much of the post-trained organism's gap it recovers is
bench/lora.py's record)."""

from __future__ import annotations

import json

import pytest

from surrogate.jobs.finetune import finetune
from surrogate.training import FinetuneConfig
from surrogate.models import ModelSpec
from surrogate.store import read_responses
from surrogate.jobs.run import run

STUDIES = ["guenther2022relational", "guenther2024substitutions"]

# A few steps on the post-trained organism: enough to exercise resuming, the split, the
# adapter's format and its use anywhere a model goes. How much of the gap LoRA recovers with
# the settings docs/lora.md gives is bench/lora.py's record (tests/test_bench_records.py).
CONFIG = FinetuneConfig(learning_rate=2e-3, max_steps=6, window_tokens=256, batch_tokens=1024, checkpoint_every=2,
                        eval_per_study=3)
KW = dict(compare_to="organism-base", studies=STUDIES, max_participants=12)


@pytest.fixture(scope="module")
def trained(psych201, tmp_path_factory):
    """LoRA on the post-trained organism, killed after 3 steps and resumed: (folder, the
    state after the kill, the report)."""
    out = tmp_path_factory.mktemp("lora")
    killed = finetune("organism-post", psych201, out, CONFIG, stop_after=3, **KW)
    after_kill = {"returned": killed, "checkpoint": (out / "checkpoint.pt").exists(),
                  "adapter": (out / "adapter_config.json").exists()}
    return out, after_kill, finetune("organism-post", psych201, out, CONFIG, **KW)


def test_a_killed_lora_run_resumes_from_its_checkpoint(trained):
    out, after_kill, report = trained
    assert after_kill == {"returned": None, "checkpoint": True, "adapter": False}
    assert report.resumed_from == 2 and report.steps == 6
    assert not (out / "checkpoint.pt").exists()


def test_the_split_is_written_and_disjoint(trained):
    out, _, report = trained
    split = json.loads((out / "split.json").read_text())
    assert split["holdout"] == "participants"
    assert not set(map(tuple, split["train"])) & set(map(tuple, split["heldout"]))
    assert json.loads((out / "report.json").read_text())["heldout"][-1]["study"] == "all"
    assert report.overall.reference is not None and report.overall.n_participants > 0


def test_the_adapter_scores_anywhere_a_model_goes(trained, psych201, tmp_path):
    out = trained[0]
    split = json.loads((out / "split.json").read_text())
    keep = {tuple(p) for p in split["heldout"] if p[0] == "guenther2022relational"}
    from surrogate.data import load

    lines = [json.dumps({"text": p.text, "experiment": p.experiment, "participant": p.participant})
             for p in load(psych201, studies=["guenther2022relational"], max_participants=12).participants
             if p.key in keep][:2]
    assert lines
    data = tmp_path / "two.jsonl"
    data.write_text("\n".join(lines) + "\n")
    run([f"lora=organism-post,adapter={out}", "post=organism-post"], data, "off", tmp_path / "run", device="cpu",
        choices=False)
    frame = read_responses(tmp_path / "run")
    per = frame.groupby("model")["nll"].mean()
    assert per["lora"] != per["post"]  # the adapter is applied
    keys = frame.groupby("model")["unit_key"].apply(set)
    assert not keys["lora"] & keys["post"]  # the adapter enters the result key
    from surrogate.jobs.report import report

    rep = report([tmp_path / "run"], tmp_path / "report", lora=[out])
    (fig,) = [f for f in rep.figures if f.name == "lora_recovery"]
    assert fig.png.stat().st_size > 10_000 and 'id="lora_recovery"' in rep.html.read_text()


def test_a_finished_run_is_not_retrained(trained, psych201):
    out, _, report = trained
    again = finetune("organism-post", psych201, out, CONFIG, **KW)
    assert again.overall.after == pytest.approx(report.overall.after)


def test_model_strings_carry_an_adapter():
    spec = ModelSpec.parse("lora=organism-post,adapter=runs/lora")
    assert (spec.name, spec.path, spec.adapter) == ("lora", "organism-post", "runs/lora")
    assert ModelSpec.parse("Qwen/Qwen3-0.6B@main,adapter=a").revision == "main"
    with pytest.raises(ValueError, match="adapter=DIR"):
        ModelSpec.parse("m=organism-post,rank=4")


def test_a_missing_adapter_folder_is_named(tmp_path):
    from surrogate.models import load_backend
    from surrogate.organisms import resolved

    with pytest.raises(FileNotFoundError, match="no-such"):
        load_backend(resolved(ModelSpec(path="organism-base", adapter=str(tmp_path / "no-such")))).fingerprint()


def _small(**kw):
    return FinetuneConfig(max_steps=4, window_tokens=256, batch_tokens=1024, checkpoint_every=2, eval_per_study=2,
                          learning_rate=1e-3, **kw)


@pytest.mark.slow
def test_finetune_takes_every_built_in_name_and_refuses_to_overwrite(psych201, tmp_path):
    """`finetune("demo-base")` loads like `run` does; another run's settings in the folder are
    refused unless --overwrite; a kill during evaluation resumes with the evaluation only."""
    from typer.testing import CliRunner

    from surrogate.jobs.finetune import finetune as api
    from surrogate.cli import app
    from surrogate.jobs import finetune as _lora

    out = tmp_path / "lora"
    kw = dict(studies=["busch2024_stroop"], max_participants=12)
    first = api("demo-base", psych201, out, _small(rank=4), **kw)
    assert first.steps == 4 and (out / "adapter_config.json").exists() and not (out / "checkpoint.pt").exists()
    rank_before = json.loads((out / "adapter_config.json").read_text())["r"]
    with pytest.raises(ValueError, match="other settings.*rank 4 -> 2"):
        api("demo-base", psych201, out, _small(rank=2), **kw)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == rank_before == 4
    res = CliRunner().invoke(app, ["finetune", "--model", "demo-base", "--data", str(psych201), "--study",
                                   "busch2024_stroop", "--max-participants", "12", "--rank", "2", "--max-steps", "4",
                                   "--window-tokens", "256", "--batch-tokens", "1024", "--eval-per-study", "2",
                                   "--out", str(out)])
    assert res.exit_code == 2 and "overwrite" in res.output and "other settings" in res.output
    # Killed while evaluating: the adapter is trained, the report not written.
    other = tmp_path / "lora2"
    real = _lora._participant_nll
    calls = {"n": 0}

    def dies(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    _lora._participant_nll = dies
    try:
        with pytest.raises(KeyboardInterrupt):
            api("demo-base", psych201, other, _small(rank=2), **kw)
    finally:
        _lora._participant_nll = real
    assert (other / "adapter_config.json").exists() and not (other / "report.json").exists()
    assert json.loads((other / "finetune.json").read_text())["stage"] == "trained"
    trained = _lora.train
    _lora.train = lambda *a, **k: pytest.fail("retrained instead of evaluating the saved adapter")
    try:
        report = api("demo-base", psych201, other, _small(rank=2), **kw)
    finally:
        _lora.train = trained
    assert report.steps == 4 and (other / "report.json").exists()
    replaced = api("demo-base", psych201, out, _small(rank=2), overwrite=True, **kw)
    assert replaced.config["rank"] == 2 and json.loads((out / "adapter_config.json").read_text())["r"] == 2


@pytest.mark.slow
def test_a_diverging_run_stops_and_saves_nothing(psych201, tmp_path):
    from pydantic import ValidationError

    from surrogate.jobs.finetune import finetune as api

    with pytest.raises(ValidationError):
        FinetuneConfig(learning_rate=float("inf"))
    out = tmp_path / "lora"
    with pytest.raises(ValueError, match="training loss became (nan|inf)"):
        _diverge(api, psych201, out)
    assert not (out / "adapter_config.json").exists() and not (out / "report.json").exists()


def _diverge(api, psych201, out):
    """A learning rate so large that the loss overflows within the first steps."""
    return api("demo-base", psych201, out, _small().model_copy(update={"learning_rate": 1e30, "max_steps": 6}),
               studies=["busch2024_stroop"], max_participants=12)
