"""The built-in demo study: synthetic participants in the three built-in paradigms.

It is what `surrogate run` scores when no --data is given: Psych-201-format transcripts
generated here, offline, from known cognitive models (no human data).
"""

from __future__ import annotations

from pathlib import Path

from ._paradigms import IntertemporalChoice, MixedLotteries, RestlessBandit
from ._synthetic import SyntheticSpec, records_to_jsonl, simulate_synthetic

DEMO_VERSION = 1


def demo_experiments():
    return [RestlessBandit(n_trials=40), MixedLotteries(n_trials=30), IntertemporalChoice(n_trials=30)]


def write_demo_data(folder: Path, n_participants: int = 12, seed: int = 0) -> Path:
    """Write <folder>/<paradigm>/prompts.jsonl for each built-in paradigm (idempotent)."""
    from ..runner._store import atomic_write_bytes

    for exp in demo_experiments():
        target = folder / exp.name / "prompts.jsonl"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        spec = SyntheticSpec(links=tuple(exp.default_links))
        records = simulate_synthetic(exp, n_participants, seed=seed, spec=spec)
        atomic_write_bytes(target, records_to_jsonl(records).encode())
    return folder
