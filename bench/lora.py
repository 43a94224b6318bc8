"""LoRA toward human behaviour, measured: the recovery fraction of the post-trained organism's
gap to its base, with the settings of docs/lora.md and with finetune's defaults on a study the
organisms never saw, and the held-out comparison `surrogate run --heldout-only` makes. Writes
bench/results/lora.json; `tests/test_bench_records.py` checks every figure against its target
and that the fingerprint (the shipped organisms' weights and a few steps of the training code
path) still matches.

    python bench/lora.py              # both cases (about 8 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import _record
from surrogate.data import shared_psych201

SHARED = shared_psych201(_record.ROOT)
STUDIES = ["guenther2022relational", "guenther2024substitutions", "busch2024_stroop"]
NEVER_SEEN = "guenther2024comprehension"


def _config(**kw):
    from surrogate.training import FinetuneConfig

    return FinetuneConfig(**kw)


DOCS_CONFIG = dict(learning_rate=2e-3, max_steps=60, window_tokens=1024, batch_tokens=4096, eval_per_study=10)


def fingerprint() -> str:
    """The shipped organisms' weights and what two training steps of the code path compute."""
    from surrogate.jobs.finetune import finetune
    from surrogate.models import weights_digest
    from surrogate.organisms import resolve_model

    weights = {m: weights_digest(Path(resolve_model(m))) for m in ("organism-base", "organism-post")}
    with tempfile.TemporaryDirectory() as tmp:
        report = finetune("organism-post", SHARED, Path(tmp) / "fp", _config(
            max_steps=2, window_tokens=256, batch_tokens=1024, eval_per_study=2, learning_rate=1e-3),
            studies=["guenther2022relational"], max_participants=6, compare_to="organism-base")
    steps = {"loss": float(f"{report.final_train_loss:.4g}"),
             "after": [float(f"{h.after:.4g}") for h in report.heldout]}
    blob = json.dumps({"weights": weights, "steps": steps, "config": _config().model_dump()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def recovery_rows(name: str, report) -> list[dict]:
    o = report.overall
    return [
        _record.measured(name, "post-trained organism worse than the base on held-out people (before - reference, nats)",
                    "at least", o.before - o.reference, o.n_participants, lo=0.0),
        _record.measured(name, "the adapter lowers held-out NLL (before - after, nats)", "at least", o.before - o.after,
                    o.n_participants, lo=0.0),
        _record.measured(name, "recovery fraction (before - after) / (before - reference)", "at least", o.recovery,
                    o.n_participants, lo=0.5),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    from surrogate.jobs.finetune import finetune
    from surrogate.jobs.run import run

    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lora"
        docs = finetune("organism-post", SHARED, out, _config(**DOCS_CONFIG), compare_to="organism-base",
                        studies=STUDIES, max_participants=80)
        rows += recovery_rows("docs/lora.md: 3 studies, 60 steps", docs)
        print(f"# docs case: recovery {docs.overall.recovery:.3f} ({time.time() - t0:.0f} s)", flush=True)
        scored = run([f"lora=organism-post,adapter={out}", "post=organism-post"], SHARED / STUDIES[0], "off",
                     Path(tmp) / "scored", heldout_only=True, choices=False)
        per = scored.responses.groupby(["model", "participant", "experiment"])["nll"].mean().groupby("model").mean()
        n = scored.responses.groupby("model")["participant"].nunique()["lora"]
        rows.append(_record.measured("docs/lora.md: 3 studies, 60 steps",
                                f"--heldout-only on {STUDIES[0]}: NLL without minus with the adapter (nats)",
                                "at least", per["post"] - per["lora"], n, lo=0.0))
        t1 = time.time()
        default = finetune("organism-post", SHARED, Path(tmp) / "default", _config(eval_per_study=40,
                           holdout_fraction=0.5), compare_to="organism-base", studies=[NEVER_SEEN])
        rows += recovery_rows(f"default settings, {NEVER_SEEN} (never seen by the organisms)", default)
        print(f"# default case: recovery {default.overall.recovery:.3f} ({time.time() - t1:.0f} s)", flush=True)
    path = _record.write("lora", "recovery", rows, fingerprint=fingerprint(), reps=1, seed=0, seconds=time.time() - t0)
    for r in rows:
        print(f"{r['scenario'][:45]:<45} {r['test'][:70]:<70} {r['rate']:+.3f} {'ok' if r['pass'] else 'MISSED'}")
    print(f"written to {path}")
    sys.exit(sum(r["pass"] is False for r in rows))


if __name__ == "__main__":
    main()
