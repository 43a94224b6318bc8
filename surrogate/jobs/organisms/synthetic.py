"""Synthetic studies for the organisms: the package's own paradigms, in task variants, with
participants whose metadata is linked to their parameters (informative) or not (null).

The informative versions give the organisms something a persona can carry about a person
(a trait score that moves their risk attitude, discounting or exploration), so the persona
decomposition has a known positive control; the null versions, the same tasks and traits with
no link, a known negative control. The traits are paper fields (age, STAI-T, BIS-11), so the
paper's interview persona shows them.

Normative sessions (the reward-maximising answer at every trial, played through the task so
that feedback follows the choice) are post-training targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...experiments import (play, IntertemporalChoice, MixedLotteries, RestlessBandit, SessionRecord,
                           SyntheticSpec, TraitLink, Trial, simulate_synthetic)


@dataclass(frozen=True)
class SyntheticStudy:
    """One synthetic study: a paradigm (with its task variants), and how traits link to parameters."""

    name: str
    paradigm: str
    links: tuple[TraitLink, ...]

    def experiments(self) -> list[Any]:
        """The task variants: trials per session, and option labels that name the option's
        role (the risky and the safe lottery, the sooner and the later reward) in two wordings,
        so that a small model can tell the options apart without reading their numbers."""
        base = {"lotteries": MixedLotteries(), "bandit": RestlessBandit(), "delay": IntertemporalChoice()}[self.paradigm]
        return [replace(base, name=self.name, n_trials=n, labels=labels)
                for n, labels in zip((30, 40, 50), _LABELS[self.paradigm])]

    @property
    def informative(self) -> bool:
        return bool(self.links)


_LABELS = {
    "lotteries": (("risky", "safe"), ("bold", "mild"), ("risky", "safe")),
    "bandit": (("left", "right"), ("red", "blue"), ("left", "right")),
    "delay": (("sooner", "later"), ("now", "wait"), ("sooner", "later")),
}

# Strong links: a trait SD moves the parameter by about three population SDs on its unbounded
# scale, so a small model can learn the mapping from the interview's numbers.
_LINKS = {
    "lotteries": (TraitLink(trait="STAI-T", param="loss_aversion", slope=1.0),
                  TraitLink(trait="age", param="curvature", slope=0.8)),
    "bandit": (TraitLink(trait="STAI-T", param="inverse_temperature", slope=-1.0),
               TraitLink(trait="age", param="learning_rate", slope=1.2)),
    "delay": (TraitLink(trait="BIS-11", param="discount_rate", slope=2.0),
              TraitLink(trait="age", param="discount_rate", slope=-1.0)),
}

STUDIES: dict[str, SyntheticStudy] = {}
for _paradigm, _links in _LINKS.items():
    for _kind, _l in (("informative", _links), ("null", ())):
        _name = f"synthetic-{_paradigm}-{_kind}"
        STUDIES[_name] = SyntheticStudy(name=_name, paradigm=_paradigm, links=_l)

# What the shipped sample and the default job score: the lottery task, informative and null.
CONTROL_STUDIES = ("synthetic-lotteries-informative", "synthetic-lotteries-null")


def sessions(study: SyntheticStudy, n: int, *, seed: int) -> list[SessionRecord]:
    """n synthetic participants of a study, the task variants in turn; participant ids carry
    the seed so that training and evaluation draws never share a participant."""
    experiments = study.experiments()
    spec = SyntheticSpec(links=study.links)
    out: list[SessionRecord] = []
    for v, exp in enumerate(experiments):
        k = (n - v + len(experiments) - 1) // len(experiments)  # n split over the variants
        for rec in simulate_synthetic(exp, k, seed=seed * 100 + v, spec=spec, id_prefix=f"s{seed}v{v}"):
            out.append(rec)
    return out


def _normative(trial: Trial, session: Any) -> int:
    """The reward-maximising option: the higher expected value (lotteries), the larger amount
    (delays: money later is money too), the arm whose mean payout is higher now (bandits)."""
    info = trial.info
    if "outcomes" in info:
        ev = [float(np.dot(o, p)) for o, p in zip(info["outcomes"], info["probs"])]
        return int(np.argmax(ev))
    if "amounts" in info:
        return int(np.argmax(info["amounts"]))
    return int(np.argmax(session.means))


def normative_sessions(study: SyntheticStudy, n: int, *, seed: int,
                       policy: Callable[[Trial, Any], int] = _normative) -> list[SessionRecord]:
    """n sessions played by the reward-maximising policy (feedback follows its choices)."""
    out = []
    experiments = study.experiments()
    for i in range(n):
        exp = experiments[i % len(experiments)]
        session = exp.session(np.random.default_rng([seed, i, 7]))
        trials, choices, feedback = play(session, lambda t, s=session: policy(t, s))
        out.append(SessionRecord(experiment=study.name, participant=f"norm{seed}-{i}", instructions=session.instructions,
                                 trials=trials, choices=choices, feedback=feedback, agent="normative"))
    return out


def as_participants(records: Sequence[SessionRecord], study: str):
    """Psych-201 participants (the loader's records) from synthetic sessions."""
    from ...data import participant_from_record

    return [participant_from_record(r.to_psych201(), study=study, source=f"<synthetic {study}>", line=i + 1)
            for i, r in enumerate(records)]
