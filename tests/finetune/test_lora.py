"""LoRA toward human behaviour, on real people: it trains, resumes, saves in peft's format,
loads as NAME=PATH,adapter=DIR, and recovers most of the post-trained organism's gap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surrogate.finetune import FinetuneConfig, finetune
from surrogate.models import ModelSpec
from surrogate.runner import read_responses, run

STUDIES = ["guenther2022relational", "guenther2024substitutions", "busch2024_stroop"]


def test_lora_on_the_post_trained_organism_recovers_its_gap(psych201, tmp_path):
    out = tmp_path / "lora"
    config = FinetuneConfig(learning_rate=2e-3, max_steps=60, max_tokens=1024, batch_tokens=4096,
                            checkpoint_every=10, eval_per_study=10)
    kw = dict(compare_to="organism-base", studies=STUDIES, max_participants=80)
    assert finetune("organism-post", psych201, out, config, stop_after=15, **kw) is None  # "killed"
    assert (out / "checkpoint.pt").exists() and not (out / "adapter_config.json").exists()
    report = finetune("organism-post", psych201, out, config, **kw)
    assert report.resumed_from == 10 and report.steps == 60
    assert not (out / "checkpoint.pt").exists()
    split = json.loads((out / "split.json").read_text())
    assert split["holdout"] == "participants" and not set(map(tuple, split["train"])) & set(map(tuple, split["heldout"]))
    saved = json.loads((out / "report.json").read_text())
    assert saved["heldout"][-1]["study"] == "all"
    overall = report.overall
    assert overall.before > overall.reference  # the post-trained organism is worse than the base
    assert overall.recovery >= 0.5, report.heldout
    assert overall.after < overall.before

    # The adapter scores anywhere a model goes, and its identity enters the result key.
    people = [p for p in split["heldout"] if p[0] == "guenther2022relational"][:2]
    data = tmp_path / "two.jsonl"
    from surrogate.data import load

    keep = {tuple(p) for p in people}
    lines = []
    for p in load(psych201, studies=["guenther2022relational"]).participants:
        if p.key in keep:
            lines.append(json.dumps({"text": p.text, "experiment": p.experiment, "participant": p.participant}))
    data.write_text("\n".join(lines) + "\n")
    result = run([f"lora=organism-post,adapter={out}", "post=organism-post"], data, "off", tmp_path / "run",
                 device="cpu", choices=False)
    frame = read_responses(tmp_path / "run")
    per = frame.groupby("model")["nll"].mean()
    assert per["lora"] < per["post"]
    assert frame.groupby("model")["unit_key"].apply(set).pipe(lambda s: not (s["lora"] & s["post"]))
    # The report draws the adapter's recovery.
    from surrogate.runner import report

    rep = report([tmp_path / "run"], tmp_path / "report", lora=[out])
    (fig,) = [f for f in rep.figures if f.name == "lora_recovery"]
    assert fig.png.stat().st_size > 10_000 and 'id="lora_recovery"' in rep.html.read_text()
    # A finished run is not retrained.
    again = finetune("organism-post", psych201, out, config, **kw)
    assert again.overall.after == pytest.approx(overall.after)


def test_model_strings_carry_an_adapter():
    spec = ModelSpec.parse("lora=organism-post,adapter=runs/lora")
    assert (spec.name, spec.path, spec.adapter) == ("lora", "organism-post", "runs/lora")
    assert ModelSpec.parse("Qwen/Qwen3-0.6B@main,adapter=a").revision == "main"
    with pytest.raises(ValueError, match="adapter=DIR"):
        ModelSpec.parse("m=organism-post,rank=4")


def test_a_missing_adapter_folder_is_named(tmp_path):
    from surrogate.models import load_backend

    with pytest.raises(FileNotFoundError, match="no-such"):
        load_backend(ModelSpec(path="organism-base", adapter=str(tmp_path / "no-such"))).fingerprint()
