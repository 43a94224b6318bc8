"""Built-in paradigms, one per domain: exploration, risky choice, intertemporal choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._base import Feedback, Stepper, Trial, draw_labels
from ._cognitive import HyperbolicDiscounter, ProspectTheory, QLearner
from ._indices import delay_indices, learning_indices, lottery_indices, switch_rate  # noqa: F401
from ._synthetic import TraitLink


@dataclass(frozen=True)
class RestlessBandit:
    """Two-armed bandit whose mean payoffs drift as decaying Gaussian random walks, the
    "restless bandit" of Daw, O'Doherty, Dayan, Seymour & Dolan (2006, Nature 441, 876-879)
    used to study exploration. Reinforcement-learning domain."""

    name: str = "restless_bandit"
    n_trials: int = 100
    decay: float = 0.9836
    center: float = 50.0
    drift_sd: float = 2.8
    noise_sd: float = 4.0
    labels: tuple[str, str] | None = None  # fixed machine labels; None: drawn per participant

    cognitive_model: ClassVar = QLearner
    default_links: ClassVar = (TraitLink(trait="STAI-T", param="inverse_temperature", slope=-0.35),)

    def session(self, rng: np.random.Generator) -> "_BanditSession":
        return _BanditSession(self, rng)

    def behaviour(self, record) -> dict[str, float]:
        """Mean reward, switch rate, win-stay and lose-shift (see surrogate.experiments._indices)."""
        return learning_indices(record)


class _BanditSession(Stepper):
    def __init__(self, spec: RestlessBandit, rng: np.random.Generator):
        super().__init__(spec.n_trials)
        self.spec, self.rng = spec, rng
        self.labels = tuple(spec.labels) if spec.labels else draw_labels(rng, 2)
        self.means = rng.uniform(25, 75, size=2)
        a, b = self.labels
        self.instructions = (
            f"In this task, you repeatedly choose between two slot machines, {a} and {b}. "
            "Each choice pays out points. The machines' average payouts change slowly and "
            f"independently over time. Try to win as many points as possible over "
            f"{spec.n_trials} rounds.")

    def make_trial(self) -> Trial:
        return Trial(prompt=f"Round {self.t}: You choose machine", options=self.labels,
                     info={"round": self.t})

    def outcome(self, trial: Trial, index: int) -> Feedback:
        s = self.spec
        reward = float(np.clip(round(self.rng.normal(self.means[index], s.noise_sd)), 1, 100))
        self.means = s.decay * self.means + (1 - s.decay) * s.center + self.rng.normal(0, s.drift_sd, 2)
        return Feedback(text=f" and win {int(reward)} points.", reward=reward)


@dataclass(frozen=True)
class MixedLotteries:
    """Choices between two described 50/50 lotteries with gains and losses, the design used
    to measure loss aversion (Tom, Fox, Trepel & Poldrack, 2007, Science 315, 515-518;
    valued by prospect theory, Kahneman & Tversky, 1979). Risky-choice domain."""

    name: str = "mixed_lotteries"
    n_trials: int = 60
    feedback: bool = True
    # Labels by role, (the wider lottery, the narrower one), wherever they appear; None: two
    # labels drawn per participant, for positions.
    labels: tuple[str, str] | None = None

    cognitive_model: ClassVar = ProspectTheory
    default_links: ClassVar = (TraitLink(trait="STAI-T", param="loss_aversion", slope=0.3),)

    def session(self, rng: np.random.Generator) -> "_LotterySession":
        return _LotterySession(self, rng)

    def behaviour(self, record) -> dict[str, float]:
        """Riskier-lottery rate and mixed-gamble acceptance."""
        return lottery_indices(record)


class _LotterySession(Stepper):
    def __init__(self, spec: MixedLotteries, rng: np.random.Generator):
        super().__init__(spec.n_trials)
        self.spec, self.rng = spec, rng
        self.roles = tuple(spec.labels) if spec.labels else None
        self.labels = self.roles or draw_labels(rng, 2)
        a, b = self.labels
        self.instructions = (
            f"In each of {spec.n_trials} trials you choose between two lotteries, {a} and {b}. "
            "Each lottery has two outcomes that are equally likely (50% each), like flipping a "
            "coin. Outcomes are points you win (+) or lose (-). There are no right or wrong "
            "answers; choose the lottery you prefer.")

    def make_trial(self) -> Trial:
        rng = self.rng
        gain = int(rng.integers(10, 61))
        loss = -int(rng.integers(5, 61))
        scale = rng.uniform(0.1, 0.6)
        safe = [max(1, int(gain * scale)), min(-1, int(loss * scale))]
        wide_first = rng.random() < 0.5
        outcomes = [[gain, loss], safe] if wide_first else [safe, [gain, loss]]
        labels = self.labels if not self.roles or wide_first else self.labels[::-1]
        parts = [f"Lottery {label}: {_signed(o[0])} points or {_signed(o[1])} points, 50% chance each."
                 for label, o in zip(labels, outcomes)]
        return Trial(prompt=" ".join(parts) + " You choose", options=labels,
                     info={"outcomes": outcomes, "probs": [[0.5, 0.5], [0.5, 0.5]]})

    def outcome(self, trial: Trial, index: int) -> Feedback:
        if not self.spec.feedback:
            return Feedback(text=".")
        x = trial.info["outcomes"][index][int(self.rng.integers(0, 2))]
        return Feedback(text=f". You get {_signed(x)} points.", reward=float(x))


def _signed(x: float) -> str:
    return f"+{int(x)}" if x >= 0 else f"{int(x)}"


@dataclass(frozen=True)
class IntertemporalChoice:
    """Choices between a smaller-sooner and a larger-later reward (delay discounting, as in
    Kirby & Marakovic, 1996; modelled hyperbolically after Mazur, 1987). Intertemporal-choice
    domain."""

    name: str = "intertemporal_choice"
    n_trials: int = 60
    # Labels by role, (the sooner reward, the later one), wherever they appear; None: two
    # labels drawn per participant, for positions.
    labels: tuple[str, str] | None = None

    cognitive_model: ClassVar = HyperbolicDiscounter
    default_links: ClassVar = (TraitLink(trait="BIS-11", param="discount_rate", slope=0.5),)

    def session(self, rng: np.random.Generator) -> "_DelaySession":
        return _DelaySession(self, rng)

    def behaviour(self, record) -> dict[str, float]:
        """Later-reward rate and the log indifference discount rate."""
        return delay_indices(record)


class _DelaySession(Stepper):
    DELAYS = (1, 3, 7, 14, 30, 60, 90, 180)

    def __init__(self, spec: IntertemporalChoice, rng: np.random.Generator):
        super().__init__(spec.n_trials)
        self.rng = rng
        self.roles = tuple(spec.labels) if spec.labels else None
        self.labels = self.roles or draw_labels(rng, 2)
        a, b = self.labels
        self.instructions = (
            f"In each of {spec.n_trials} trials you choose between two rewards, {a} and {b}. "
            "One is paid today, the other later and is larger. Imagine the rewards are real "
            "and choose the one you prefer.")

    def make_trial(self) -> Trial:
        rng = self.rng
        soon = int(rng.integers(10, 81))
        later = int(round(soon * rng.uniform(1.05, 2.5)))
        delay = int(rng.choice(self.DELAYS))
        pairs = [(soon, 0), (later, delay)]
        labels = self.labels
        if rng.random() < 0.5:
            pairs.reverse()
            labels = labels[::-1] if self.roles else labels
        parts = [f"Option {label}: {a} points {_when(d)}."
                 for label, (a, d) in zip(labels, pairs)]
        return Trial(prompt=" ".join(parts) + " You choose", options=labels,
                     info={"amounts": [a for a, _ in pairs], "delays": [d for _, d in pairs]})

    def outcome(self, trial: Trial, index: int) -> Feedback:
        return Feedback(text=".")


def _when(days: int) -> str:
    return "today" if days == 0 else "in 1 day" if days == 1 else f"in {days} days"


BUILTIN = {
    "restless_bandit": RestlessBandit,
    "mixed_lotteries": MixedLotteries,
    "intertemporal_choice": IntertemporalChoice,
}

