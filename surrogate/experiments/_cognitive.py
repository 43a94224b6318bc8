"""Generative cognitive models: per-trial choice probabilities from a few parameters.

Each model reads a trial's task variables (`Trial.info`) and, for learning tasks, updates
on feedback. Parameters are declared with a transform to an unbounded scale, where
individual differences and trait links are additive.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from ._base import Feedback, Trial

Transform = Literal["log", "logit", "identity"]


class ParamSpec(BaseModel):
    """A parameter's population distribution: `mean` on the natural scale, `sd` of the
    individual variation on the transformed scale."""

    model_config = ConfigDict(frozen=True)
    mean: float
    sd: float = 0.3
    transform: Transform = "log"

    def to_unbounded(self, x: float) -> float:
        if self.transform == "log":
            return math.log(x)
        if self.transform == "logit":
            return math.log(x / (1 - x))
        return x

    def to_natural(self, u: float) -> float:
        if self.transform == "log":
            return math.exp(u)
        if self.transform == "logit":
            return 1 / (1 + math.exp(-u))
        return u


def softmax(values: np.ndarray) -> np.ndarray:
    z = values - values.max()
    e = np.exp(z)
    return e / e.sum()


class CognitiveModel(Protocol):
    def probs(self, trial: Trial) -> np.ndarray:
        """Choice probabilities over trial.options."""
        ...

    def observe(self, trial: Trial, choice: int, feedback: Feedback) -> None:
        """Learn from the outcome of a choice (a no-op for models that do not learn)."""
        ...


class QLearner:
    """Delta-rule value learning with softmax choice (Sutton & Barto, 1998; the standard
    account of bandit behaviour, e.g. Daw et al., 2006)."""

    PARAMS = {
        "learning_rate": ParamSpec(mean=0.5, sd=0.6, transform="logit"),
        "inverse_temperature": ParamSpec(mean=0.15, sd=0.4, transform="log"),
    }

    def __init__(self, learning_rate: float, inverse_temperature: float, initial_value: float = 50.0):
        self.alpha, self.beta, self.initial = learning_rate, inverse_temperature, initial_value
        self.q: np.ndarray | None = None

    def probs(self, trial: Trial) -> np.ndarray:
        if self.q is None:
            self.q = np.full(len(trial.options), self.initial)
        return softmax(self.beta * self.q)

    def observe(self, trial: Trial, choice: int, feedback: Feedback) -> None:
        assert self.q is not None and feedback.reward is not None
        self.q[choice] += self.alpha * (feedback.reward - self.q[choice])


class ProspectTheory:
    """Prospect-theory valuation of described gambles with softmax choice (Kahneman &
    Tversky, 1979; Tversky & Kahneman, 1992): v(x) = x^rho for gains, -lambda (-x)^rho for
    losses, probabilities unweighted."""

    PARAMS = {
        "loss_aversion": ParamSpec(mean=1.6, sd=0.35, transform="log"),
        "curvature": ParamSpec(mean=0.85, sd=0.3, transform="logit"),
        "inverse_temperature": ParamSpec(mean=0.25, sd=0.3, transform="log"),
    }

    def __init__(self, loss_aversion: float, curvature: float, inverse_temperature: float):
        self.lam, self.rho, self.beta = loss_aversion, curvature, inverse_temperature

    def value(self, x: np.ndarray) -> np.ndarray:
        mag = np.abs(x) ** self.rho
        return np.where(x >= 0, mag, -self.lam * mag)

    def probs(self, trial: Trial) -> np.ndarray:
        outcomes = np.asarray(trial.info["outcomes"], dtype=float)
        p = np.asarray(trial.info["probs"], dtype=float)
        utility = (p * self.value(outcomes)).sum(axis=1)
        return softmax(self.beta * utility)

    def observe(self, trial: Trial, choice: int, feedback: Feedback) -> None:
        return None


class HyperbolicDiscounter:
    """Hyperbolic delay discounting, V = A / (1 + k D), with softmax choice (Mazur, 1987)."""

    PARAMS = {
        "discount_rate": ParamSpec(mean=0.02, sd=0.8, transform="log"),
        "inverse_temperature": ParamSpec(mean=0.15, sd=0.3, transform="log"),
    }

    def __init__(self, discount_rate: float, inverse_temperature: float):
        self.k, self.beta = discount_rate, inverse_temperature

    def probs(self, trial: Trial) -> np.ndarray:
        amounts = np.asarray(trial.info["amounts"], dtype=float)
        delays = np.asarray(trial.info["delays"], dtype=float)
        return softmax(self.beta * amounts / (1 + self.k * delays))

    def observe(self, trial: Trial, choice: int, feedback: Feedback) -> None:
        return None
