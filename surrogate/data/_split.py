"""Seeded, order-independent splits of participants into training and held-out sets."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._records import Participant

Holdout = Literal["participants", "experiments"]


def _unit(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) from a hash: the same for a participant wherever it sits."""
    digest = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Split(BaseModel):
    """Who trains and who is held out, and the rule that decided it (written as split.json)."""

    model_config = ConfigDict(frozen=True)

    holdout: Holdout
    fraction: float
    seed: int
    heldout_studies: tuple[str, ...] = ()
    train: tuple[tuple[str, str, str], ...] = Field(description="(study, experiment, participant)")
    heldout: tuple[tuple[str, str, str], ...]

    def is_heldout(self, p: Participant) -> bool:
        return p.key in set(self.heldout)


def split_participants(
    participants: Sequence[Participant],
    *,
    holdout: Holdout = "participants",
    fraction: float = 0.2,
    seed: int = 0,
    heldout_studies: Sequence[str] = (),
) -> Split:
    """Hold out a `fraction` of participants (each by a hash of seed and its key, so adding
    or reordering data never moves anyone), or with holdout="experiments" whole studies (by
    a hash of their name; at least one). Studies in `heldout_studies` are always held out
    whole."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must lie in (0, 1), got {fraction}")
    studies = sorted({p.study for p in participants})
    whole = set(heldout_studies)
    unknown = whole - set(studies)
    if unknown:
        raise ValueError(f"held-out studies not in the data: {sorted(unknown)}")
    if holdout == "experiments":
        drawn = {s for s in studies if _unit(seed, s) < fraction}
        if not drawn and len(studies) > 1:
            drawn = {min(studies, key=lambda s: _unit(seed, s))}
        whole |= drawn
        if whole >= set(studies):
            raise ValueError("holding out experiments would leave nothing to train on "
                             f"({len(studies)} studies); use --holdout participants")
    train, held = [], []
    for p in participants:
        out = p.study in whole or (holdout == "participants" and _unit(seed, *p.key) < fraction)
        (held if out else train).append(p.key)
    if not train or not held:
        raise ValueError(f"the split left {len(train)} participants to train on and {len(held)} "
                         "held out; use more data or another fraction")
    return Split(holdout=holdout, fraction=fraction, seed=seed, heldout_studies=tuple(sorted(whole)),
                 train=tuple(train), heldout=tuple(held))
