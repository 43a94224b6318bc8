"""Feasibility of the organisms' positive persona control, fast: the base's persona stage
(`persona_stage` of the build, the same code) run again from a built language-modelling stage
(`.build/base-lm` of a build folder) with other settings, then the persona decomposition
(`surrogate run` + the estimator `analyze` uses) on 100 fresh participants of each synthetic
study. A try takes minutes, where a build takes an hour.

    python bench/organisms_feasibility.py --build surrogate/organisms/models --persona-steps 300 --persona-lr 2e-3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from surrogate.agents import detect_option_sets
    from surrogate.analysis import decompose_personas
    from surrogate.data import load, shared_psych201, split_participants
    from surrogate.jobs.organisms.build import OrganismRecipe, StageRecord, _clean, _save, persona_stage
    from surrogate.jobs.organisms.synthetic import STUDIES, as_participants, sessions
    from surrogate.jobs.run import run
    from surrogate.models import TranscriptEncoder, quiet_transformers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, required=True, help="a build folder (its build.json and .build/base-lm)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/persona-feasibility"))
    ap.add_argument("--persona-steps", type=int)
    ap.add_argument("--persona-lr", type=float)
    ap.add_argument("--persona-share", type=float, help="persona_stage_share")
    a = ap.parse_args()
    quiet_transformers()
    recipe = OrganismRecipe.model_validate(json.loads((a.build / "build.json").read_text())["recipe"])
    recipe = recipe.model_copy(update={k: v for k, v in {"persona_stage_steps": a.persona_steps,
                                                         "persona_lr": a.persona_lr,
                                                         "persona_stage_share": a.persona_share}.items()
                                       if v is not None})
    dataset = load(shared_psych201(Path(__file__).resolve().parents[1]))
    split = split_participants(dataset.participants, holdout="participants", fraction=recipe.heldout_fraction,
                               seed=recipe.seed, heldout_studies=recipe.heldout_studies)
    held = set(split.heldout)
    train_people = [p for p in dataset.participants if p.key not in held]
    synthetic = [q for s in STUDIES.values()
                 for q in as_participants(sessions(s, recipe.synthetic_per_study, seed=recipe.seed + 1), s.name)]
    lm = a.build / ".build" / "base-lm"
    tok = AutoTokenizer.from_pretrained(lm)
    plain = TranscriptEncoder(tok, chat=False)
    everyone = [*train_people, *synthetic]
    sets = detect_option_sets(everyone, [_clean(p) for p in everyone]).options
    model = AutoModelForCausalLM.from_pretrained(lm, dtype=torch.float32).train()
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    res = persona_stage(model, train_people, synthetic, recipe, plain, sets, a.out / "persona.pt",
                        pad_id=tok.pad_token_id)
    print(f"persona stage: {recipe.persona_steps} steps at {recipe.persona_lr:g}, share {recipe.persona_stage_share}: "
          f"{time.time() - t0:.0f} s, final loss {res.final_loss:.3f}", flush=True)
    _save(model, tok, a.out / "m", template=None, recipe=recipe,
          stage=StageRecord(name="organism-base", steps=res.steps, final_loss=res.final_loss))
    data = a.out / "data"
    for name, study in STUDIES.items():
        (data / name).mkdir(parents=True, exist_ok=True)
        (data / name / "prompts.jsonl").write_text(
            "".join(json.dumps(r.to_psych201()) + "\n" for r in sessions(study, 100, seed=recipe.seed + 7)))
    scored = run([f"m={a.out / 'm'}"], data, "none,interview,shuffled", a.out / "run", device="cpu")
    for name in STUDIES:
        row = decompose_personas(scored.responses[scored.responses.study == name]).rows[0]
        print(f"{name}: individual {row.individual_component}", flush=True)


if __name__ == "__main__":
    main()
