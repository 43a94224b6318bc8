"""Synthetic studies for the organisms: the package's own paradigms, in task variants, with
participants whose metadata is linked to their parameters (informative) or not (null).

The informative versions are the persona decomposition's positive control, designed so that a
miniature can learn to read it (v3's, where a questionnaire score moved a parameter over
30-50 trials, came out null): a strong link (a trait SD moves the parameter by two population
SDs, individual noise kept small, so choice rates differ about threefold between people above
and below the trait's mean), the trait stated in words as well as a number (a `clinical
diagnosis` field that the paper's interview prompt shows, derived from the score), and short
sessions (10-14 trials), so that the persona, not the person's own earlier choices, is the main
source of what sets this person apart. The null versions are identical in every respect
(traits, words, parameter distributions, tasks) but the link: the negative control.

Normative sessions (the reward-maximising answer at every trial, played through the task so
that feedback follows the choice) are post-training targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...experiments import (IntertemporalChoice, MixedLotteries, ParamSpec, SessionRecord, SyntheticSpec, TraitLink,
                           Trial, play, simulate_synthetic)


@dataclass(frozen=True)
class SyntheticStudy:
    """One synthetic study: a paradigm (with its task variants), how traits link to
    parameters, and the population's parameter distributions."""

    name: str
    paradigm: str
    links: tuple[TraitLink, ...]

    def experiments(self) -> list[Any]:
        """The task variants: trials per session, and option labels that name the option's
        role (the risky and the safe lottery, the sooner and the later reward) in two wordings,
        so that a small model can tell the options apart without reading their numbers."""
        base = {"lotteries": MixedLotteries(), "delay": IntertemporalChoice()}[self.paradigm]
        return [replace(base, name=self.name, n_trials=n, labels=labels)
                for n, labels in zip(TRIALS, _LABELS[self.paradigm])]

    @property
    def informative(self) -> bool:
        return bool(self.links)

    @property
    def spec(self) -> SyntheticSpec:
        return SyntheticSpec(links=self.links, params=_PARAMS[self.paradigm])


TRIALS = (10, 12, 14)
_LABELS = {
    "lotteries": (("risky", "safe"), ("bold", "mild"), ("risky", "safe")),
    "delay": (("sooner", "later"), ("now", "wait"), ("sooner", "later")),
}
# Population parameters centred so that people at the trait's mean choose either option about
# as often, with little individual noise beyond the trait.
_PARAMS = {
    "lotteries": {"loss_aversion": ParamSpec(mean=1.0, sd=0.2, transform="log")},
    "delay": {"discount_rate": ParamSpec(mean=0.02, sd=0.4, transform="log")},
}
# Strong links: a trait SD moves the parameter by two population SDs on its unbounded scale
# (risky choices about 0.19 above the STAI-T mean against 0.72 below; sooner choices 0.63
# above the BIS-11 mean against 0.21 below).
_LINKS = {
    "lotteries": (TraitLink(trait="STAI-T", param="loss_aversion", slope=2.0),),
    "delay": (TraitLink(trait="BIS-11", param="discount_rate", slope=2.0),),
}
# The trait in words (the paper's `clinical diagnosis` field), above the trait's mean.
WORDS = {"lotteries": ("STAI-T", 40, "generalized anxiety disorder"), "delay": ("BIS-11", 62, "ADHD")}
DIAGNOSIS = "clinical diagnosis"

STUDIES: dict[str, SyntheticStudy] = {}
for _paradigm, _links in _LINKS.items():
    for _kind, _l in (("informative", _links), ("null", ())):
        _name = f"synthetic-{_paradigm}-{_kind}"
        STUDIES[_name] = SyntheticStudy(name=_name, paradigm=_paradigm, links=_l)

# What the shipped sample and the default job score: the lottery task, informative and null.
CONTROL_STUDIES = ("synthetic-lotteries-informative", "synthetic-lotteries-null")


def _with_words(record: SessionRecord, paradigm: str) -> SessionRecord:
    trait, threshold, words = WORDS[paradigm]
    diagnosis = words if float(record.metadata[trait]) >= threshold else "none"
    return record.model_copy(update={"metadata": {**record.metadata, DIAGNOSIS: diagnosis}})


def sessions(study: SyntheticStudy, n: int, *, seed: int) -> list[SessionRecord]:
    """n synthetic participants of a study, the task variants in turn; participant ids carry
    the seed so that training and evaluation draws never share a participant."""
    experiments = study.experiments()
    out: list[SessionRecord] = []
    for v, exp in enumerate(experiments):
        k = (n - v + len(experiments) - 1) // len(experiments)  # n split over the variants
        for rec in simulate_synthetic(exp, k, seed=seed * 100 + v, spec=study.spec, id_prefix=f"s{seed}v{v}"):
            out.append(_with_words(rec, study.paradigm))
    return out


def _normative(trial: Trial, session: Any) -> int:
    """The reward-maximising option: the higher expected value (lotteries), the larger amount
    (delays: money later is money too)."""
    info = trial.info
    if "outcomes" in info:
        ev = [float(np.dot(o, p)) for o, p in zip(info["outcomes"], info["probs"])]
        return int(np.argmax(ev))
    return int(np.argmax(info["amounts"]))


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
