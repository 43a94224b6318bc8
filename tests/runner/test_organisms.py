"""The shipped organisms: trained on real people, the post-trained one predicts held-out
people worse (the paper's direction) and gives the consensus answer more often; the build
is reproducible; the default job shows the science."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.data import load
from surrogate.models import ModelSpec, load_backend
from surrogate.organisms import organisms_dir
from surrogate.runner import read_responses
from surrogate.organisms import (OrganismRecipe, build_organisms, evaluate_organisms, read_json_gz,
                                        sample_dir)


def _recipe() -> OrganismRecipe:
    build = json.loads((organisms_dir() / "build.json").read_text())
    return OrganismRecipe.model_validate(build["recipe"])


def test_organisms_ship_with_cards_and_load_by_name():
    for name in ("organism-base", "organism-post"):
        folder = organisms_dir() / name
        card = (folder / "README.md").read_text()
        assert "Psych-201" in card and "held out" in card.lower() and "| study |" in card
        backend = load_backend(ModelSpec(path=name, device="cpu"))
        assert backend.fingerprint()["model"] == name  # keyed by name, not install location
        assert backend.chat == (name == "organism-post")
    assert sum(f.stat().st_size for f in organisms_dir().rglob("*.safetensors")) < 16 * 2**20


def test_the_sample_is_held_out_real_participants_with_metadata(psych201):
    split = read_json_gz(organisms_dir() / "split.json.gz")
    held = {tuple(k) for k in split["heldout"]}
    sample = load(sample_dir()).participants
    recipe = _recipe()
    assert len(sample) == recipe.sample_per_study * len(recipe.sample_studies)
    real = {p.key: p.text for p in load(psych201, studies=list(recipe.sample_studies)).participants}
    for p in sample:
        assert p.key in held and p.metadata
        assert real[p.key] == p.text  # copied unchanged


def test_post_training_makes_the_organism_less_human_and_more_correct(psych201):
    """On held-out participants of studies it trained on, and on studies it never saw: by
    the paper's d, the post-trained organism predicts people worse in most studies, and its
    most probable answer is the population's modal answer more often."""
    recipe = _recipe().model_copy(update={"eval_per_study": 10, "eval_max_chars": 4000})
    split = read_json_gz(organisms_dir() / "split.json.gz")
    held = {tuple(k) for k in split["heldout"]}
    modal = read_json_gz(organisms_dir() / "modal_answers.json.gz")
    modal.pop("note")
    studies = ["busch2024_stroop", "guenther2022relational", "guenther2024substitutions", "thoma2025problearn",
               "spektor2024lossaversion", "guenther2020LDT", *recipe.heldout_studies]
    people = [p for p in load(psych201, studies=studies).participants if p.key in held]
    ev = evaluate_organisms(organisms_dir(), people, recipe, modal)
    rows = ev["studies"]
    assert set(rows) == set(studies)
    seen = [s for s in studies if s not in recipe.heldout_studies]
    assert sum(rows[s]["d_paper"] > 0 for s in seen) >= 5
    assert sum(rows[s]["correct_post"] > rows[s]["correct_base"] for s in seen) >= 5
    assert ev["heldout_participants"]["nll_post"] > ev["heldout_participants"]["nll_base"]
    # Trained on people, the base organism predicts them far better than chance: a uniform
    # guess over its vocabulary costs ln 4096 = 8.3 nats per token.
    assert np.mean([rows[s]["nll_per_token_base"] for s in seen]) < 8.3 / 2
    assert all(rows[s]["nll_per_token_base"] < 8.3 for s in seen)


def test_the_build_is_reproducible(psych201, tmp_path):
    recipe = OrganismRecipe(budget_minutes=0.1, heldout_studies=("guenther2024comprehension",),
                            vocab_size=600, hidden_size=32, num_layers=1, batch_tokens=1024, window_tokens=256,
                            window_chars=1200)
    data = tmp_path / "data"
    for study in ("guenther2024comprehension", "guenther2022relational", "busch2024_stroop"):
        (data / study).mkdir(parents=True)
        (data / study / "prompts.jsonl.zip").symlink_to(psych201 / study / "prompts.jsonl.zip")
    a = build_organisms(data, tmp_path / "a", recipe, evaluate=False)
    b = build_organisms(data, tmp_path / "b", recipe, evaluate=False)
    assert a.base_steps == 5 and a.post_steps == 2
    for name in ("organism-base", "organism-post"):
        wa = (tmp_path / "a" / name / "model.safetensors").read_bytes()
        wb = (tmp_path / "b" / name / "model.safetensors").read_bytes()
        assert wa == wb
    assert (tmp_path / "a" / "organism-base" / "model.safetensors").read_bytes() != \
        (tmp_path / "a" / "organism-post" / "model.safetensors").read_bytes()
    assert not (sample_dir() / "x").exists()  # building elsewhere never touches the shipped sample


def test_the_default_job_shows_the_three_results(tmp_path):
    res = CliRunner().invoke(app, ["run", "--persona", "on", "--max-participants", "8",
                                   "--out", str(tmp_path / "default")])
    assert res.exit_code == 0, res.output
    assert "miniature organisms" in res.output and "--data PATH/TO/psych201" in res.output
    frame = read_responses(tmp_path / "default")
    assert set(frame["model"]) == {"organism-base", "organism-post"}
    assert set(frame["persona"]) == {"none", "interview", "shuffled"}
    assert frame.groupby("study")["participant"].nunique().eq(8).all()
    assert "Post-training misalignment" in res.output and "Persona decomposition" in res.output
    analysis = tmp_path / "default" / "analysis"
    mis = __import__("pandas").read_csv(analysis / "misalignment.csv")
    assert mis.set_index("experiment").loc["pooled", "cohens_d"] > 0
    effects = __import__("pandas").read_csv(analysis / "persona_effects.csv")
    assert {"total", "population_component", "individual_component"} <= set(effects.columns)
    assert set(effects["model"]) == {"organism-base", "organism-post"}
    assert np.isfinite(effects.loc[effects["experiment"] == "pooled", "individual_component"]).all()
    # ...and ends by writing the report, saying where.
    page = (tmp_path / "default" / "report" / "report.html").read_text()
    for name in ("misalignment", "persona_organism_base", "persona_organism_post", "nll_by_study"):
        assert f'id="{name}"' in page
    assert "report.html" in res.output
