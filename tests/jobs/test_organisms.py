"""The shipped organisms: four models with cards, a sample of held-out real and synthetic
participants, and a reproducible and resumable build. Their acceptance checks re-measured on
the shipped weights, and the default job's findings, are bench/organisms.py's record
(tests/test_bench_records.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.data import load
from surrogate.models import ModelSpec, load_backend
from surrogate.jobs.organisms import OrganismRecipe, build_organisms, read_json_gz
from surrogate.organisms import ORGANISMS, organisms_dir, resolved, sample_dir
from surrogate.store import read_responses


def _build() -> dict:
    return json.loads((organisms_dir() / "build.json").read_text())


def _recipe() -> OrganismRecipe:
    return OrganismRecipe.model_validate(_build()["recipe"])


def test_four_organisms_ship_with_cards_and_load_by_name():
    checks = _build()["evaluation"]["checks"]
    for name in ORGANISMS:
        folder = organisms_dir() / name
        card = (folder / "README.md").read_text()
        assert "Psych-201" in card and "held out" in card.lower() and "| study |" in card
        for check in checks:  # every card prints every check, with its verdict
            assert f"| {check['name']} | {check['value']} | {'passed' if check['passed'] else 'FAILED'} |" in card
        backend = load_backend(resolved(ModelSpec(path=name, device="cpu")))
        assert backend.fingerprint()["model"] == name  # keyed by name, not install location
        assert backend.chat == (_recipe().post_template and name != "organism-base")
        stage = json.loads((folder / "train.json").read_text())["stage"]
        assert stage["steps"] > 0 and len(stage["losses"]) > 10  # the training losses are recorded
    assert sum(f.stat().st_size for f in organisms_dir().rglob("*.safetensors")) < 25 * 2**20


def test_the_sample_is_held_out_real_participants_and_fresh_synthetic_ones(psych201):
    split = read_json_gz(organisms_dir() / "split.json.gz")
    held = {tuple(k) for k in split["heldout"]}
    trained = {tuple(k) for k in split["train"]}
    recipe = _recipe()
    sample = load(sample_dir()).participants
    by_study = pd.Series([p.study for p in sample]).value_counts().to_dict()
    assert by_study == {**{s: recipe.sample_per_study for s in recipe.sample_studies},
                        **{s: recipe.sample_ood_per_study for s in recipe.heldout_studies},
                        "synthetic-lotteries-informative": recipe.sample_synthetic,
                        "synthetic-lotteries-null": recipe.sample_synthetic}
    real_studies = [*recipe.sample_studies, *recipe.heldout_studies]
    real = {p.key: p.text for p in load(psych201, studies=real_studies).participants}
    for p in sample:
        if p.study.startswith("synthetic-"):
            assert p.metadata and "STAI-T" in p.metadata
            continue
        assert p.key in held and p.key not in trained
        assert real[p.key] == p.text  # copied unchanged
        if p.study in recipe.sample_studies:
            assert p.metadata


@pytest.mark.slow
def test_the_build_is_reproducible_and_resumes_by_stage(psych201, tmp_path):
    recipe = OrganismRecipe(budget_minutes=0.15, heldout_studies=("guenther2024comprehension",),
                            sample_studies=("guenther2022relational",), vocab_size=600, hidden_size=32, num_layers=1,
                            batch_tokens=1024, window_tokens=256, window_chars=1200, synthetic_per_study=20)
    data = tmp_path / "data"
    for study in ("guenther2024comprehension", "guenther2022relational", "busch2024_stroop"):
        (data / study).mkdir(parents=True)
        (data / study / "prompts.jsonl.zip").symlink_to(psych201 / study / "prompts.jsonl.zip")
    a = build_organisms(data, tmp_path / "a", recipe, evaluate=False)
    build_organisms(data, tmp_path / "b", recipe, evaluate=False)
    base_steps, post_steps = recipe.steps
    assert [(s.name, s.steps) for s in a.stages] == [
        ("organism-base", base_steps), ("organism-post", post_steps), ("organism-post-light", post_steps),
        ("organism-control", post_steps)]
    weights = {name: (tmp_path / "a" / name / "model.safetensors").read_bytes() for name in ORGANISMS}
    for name in ORGANISMS:
        assert weights[name] == (tmp_path / "b" / name / "model.safetensors").read_bytes(), name
    assert len(set(weights.values())) == 4  # four different models
    # A finished stage is kept: delete one organism and only that one is trained again.
    import shutil

    stamp = (tmp_path / "a" / "organism-base" / "model.safetensors").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "a" / "organism-control")
    again = build_organisms(data, tmp_path / "a", recipe, evaluate=False)
    assert (tmp_path / "a" / "organism-base" / "model.safetensors").stat().st_mtime_ns == stamp
    assert (tmp_path / "a" / "organism-control" / "model.safetensors").read_bytes() == weights["organism-control"]
    assert [s.steps for s in again.stages] == [s.steps for s in a.stages]
    assert not (sample_dir() / "guenther2024comprehension" / "x").exists()  # building elsewhere never writes there


def test_scoring_an_organisms_training_participants_is_said_and_can_be_avoided(psych201, tmp_path):
    data = str(psych201 / "thoma2025problearn")
    res = CliRunner().invoke(app, ["run", "--model", "organism-base", "--data", data, "--max-participants", "10",
                                   "--out", str(tmp_path / "all")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "all" / "run.json").read_text())
    split = read_json_gz(organisms_dir() / "split.json.gz")
    trained = {tuple(k) for k in split["train"]}
    scored = {tuple(k) for k in read_responses(tmp_path / "all")[["study", "experiment", "participant"]]
              .drop_duplicates().itertuples(index=False)}
    assert info["models"]["organism-base"]["trained_on"] == len(scored & trained) > 0
    assert any("trained on" in n and "--heldout-only" in n for n in info["notes"])
    assert "was trained on" in res.output
    res = CliRunner().invoke(app, ["run", "--model", "organism-base", "--data", data, "--max-participants", "10",
                                   "--heldout-only", "--out", str(tmp_path / "held")])
    assert res.exit_code == 0, res.output
    frame = read_responses(tmp_path / "held")
    kept = {tuple(k) for k in frame[["study", "experiment", "participant"]].drop_duplicates().itertuples(index=False)}
    assert kept and not kept & trained
    assert json.loads((tmp_path / "held" / "run.json").read_text())["models"]["organism-base"]["trained_on"] == 0


def test_the_shipped_cards_are_what_this_code_writes_from_the_recorded_evaluation(tmp_path):
    """A card or check wording changed in code without the cards rewritten shows here
    (`rewrite_cards` rewrites them from build.json; no measurement changes)."""
    import shutil

    from surrogate.jobs.organisms.build import rewrite_cards

    shutil.copy(organisms_dir() / "build.json", tmp_path / "build.json")
    shutil.copy(organisms_dir() / "split.json.gz", tmp_path / "split.json.gz")
    for name in ORGANISMS:
        (tmp_path / name).mkdir()
    rewrite_cards(tmp_path)
    for name in ORGANISMS:
        assert (tmp_path / name / "README.md").read_text() == (organisms_dir() / name / "README.md").read_text(), name
    assert json.loads((tmp_path / "build.json").read_text()) == json.loads((organisms_dir() / "build.json").read_text())
