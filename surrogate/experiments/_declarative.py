"""Experiments written as a file (TOML or JSON) instead of a class.

A declarative experiment says what a participant sees and what follows each choice:

```toml
name = "two_doors"
instructions = "Behind one of two doors there is usually a prize worth 100 points. ..."
trials = 60
prompt = "Trial {trial}: you open the"
options = ["left door", "right door"]      # or: labels = 2 (letters drawn per participant)
cognitive_model = "q_learning"             # how synthetic participants choose
links = [{trait = "STAI-T", param = "learning_rate", slope = 0.8}]

[feedback]
kind = "bernoulli"          # each option pays `reward` with its probability
probabilities = [0.8, 0.2]  # per option; the best option moves every `reversal_every` trials
reward = 100
reversal_every = 20
win = " and find a prize."
loss = " and find nothing."

[[conditions]]              # optional between-subject conditions (one drawn per participant)
name = "easy"
probabilities = [0.9, 0.1]
```

Feedback kinds: `bernoulli` (win or nothing, with probabilities per option, optional
reversals), `points` (a Gaussian payout around a mean per option: `means`, `sd`, text
`text = " and win {reward} points."`), `none` (the response is followed by `end`, "." by
default). Every field is validated by pydantic; a wrong file says which field and why.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._paths import check_name

from ._base import Feedback, Stepper, Trial, draw_labels
from ._cognitive import HyperbolicDiscounter, ProspectTheory, QLearner
from ._synthetic import TraitLink

COGNITIVE_MODELS = {"q_learning": QLearner, "prospect_theory": ProspectTheory, "hyperbolic": HyperbolicDiscounter}


# Files are checked as written: no type coercion (`trials = true`, `"60"` or `7.0` are not a
# number of trials), no infinities or NaN.
STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class FeedbackRule(BaseModel):
    """What follows a choice."""

    model_config = STRICT
    kind: Literal["bernoulli", "points", "none"] = "bernoulli"
    probabilities: list[float] | None = Field(None, description="bernoulli: win probability per option.")
    reward: float = Field(1.0, description="bernoulli: the reward of a win.")
    reversal_every: int | None = Field(None, ge=1, description="bernoulli: the probabilities rotate over the options "
                                                               "every this many trials (reversal learning).")
    win: str = Field(" and win.", description="bernoulli: text after a winning choice.")
    loss: str = Field(" and get nothing.", description="bernoulli: text after a losing choice.")
    means: list[float] | None = Field(None, description="points: mean payout per option.")
    sd: float = Field(10.0, ge=0, description="points: SD of a payout.")
    text: str = Field(" and win {reward} points.", description="points: text after a choice; {reward} is filled.")
    end: str = Field(".", description="none: text after a choice.")

    @model_validator(mode="after")
    def _complete(self) -> "FeedbackRule":
        if self.kind == "bernoulli":
            if not self.probabilities or not all(0 <= p <= 1 for p in self.probabilities):
                raise ValueError("feedback.probabilities: a list of win probabilities between 0 and 1, one per option")
        if self.kind == "points":
            if not self.means:
                raise ValueError("feedback.means: a list of mean payouts, one per option")
            if "{reward}" not in self.text:
                raise ValueError("feedback.text: must contain {reward}")
        return self


class Condition(BaseModel):
    """A between-subject condition: overrides of the feedback rule."""

    model_config = STRICT
    name: str = Field(min_length=1)
    probabilities: list[float] | None = None
    means: list[float] | None = None
    reversal_every: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _probabilities(self) -> "Condition":
        if self.probabilities is not None and not all(0 <= p <= 1 for p in self.probabilities):
            raise ValueError("probabilities: win probabilities between 0 and 1, one per option")
        return self


class ExperimentSpec(BaseModel):
    """A declarative experiment (see the module's docstring)."""

    model_config = STRICT
    name: str = Field(min_length=1, description="Names the study folder simulate and import write: letters, digits, "
                                                ". _ - (at most 80).")
    instructions: str = Field(min_length=1, description="Shown first; {options} lists the options.")
    trials: int = Field(ge=1, le=100_000)
    prompt: str = Field("Trial {trial}: you choose", description="The text before each response; {trial} is filled.")
    options: list[str] | None = Field(None, description="Fixed option labels, as written inside << >>.")
    labels: int | None = Field(None, ge=2, le=20, description="Draw this many letter labels per participant instead.")
    feedback: FeedbackRule = FeedbackRule(kind="none")
    conditions: list[Condition] = []
    cognitive_model: Literal["q_learning", "prospect_theory", "hyperbolic"] = "q_learning"
    links: list[TraitLink] = []

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return check_name(name, "name")

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentSpec":
        if (self.options is None) == (self.labels is None):
            raise ValueError("options or labels: give exactly one (fixed option labels, or how many to draw)")
        n = len(self.options) if self.options is not None else self.labels
        if self.options is not None and len(set(self.options)) != len(self.options):
            raise ValueError("options: must be distinct")
        if self.options is not None and any("<<" in o or ">>" in o or "\n" in o or not o.strip() for o in self.options):
            raise ValueError("options: must be non-empty, on one line, and must not contain << or >>")
        for what, values in (("feedback.probabilities", self.feedback.probabilities),
                             ("feedback.means", self.feedback.means),
                             *((f"conditions[{i}].probabilities", c.probabilities) for i, c in enumerate(self.conditions)),
                             *((f"conditions[{i}].means", c.means) for i, c in enumerate(self.conditions))):
            if values is not None and len(values) != n:
                raise ValueError(f"{what}: {len(values)} values for {n} options")
        if self.cognitive_model != "q_learning":
            raise ValueError("cognitive_model: a declarative experiment has no described outcomes or delays, so its "
                             "synthetic participants learn from feedback (q_learning)")
        for text in (self.instructions, self.prompt):
            if "<<" in text or ">>" in text:
                raise ValueError("instructions and prompt must not contain << or >> (they mark responses)")
        return self


def load_experiment_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a .toml or .json experiment; errors name the file and the field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {e}") from None
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'file'}: {err['msg'].removeprefix('Value error, ')}"
                             for err in e.errors())
        raise ValueError(f"{path}: {problems}") from None


class DeclarativeExperiment:
    """An Experiment (and MeasuresBehaviour) from an ExperimentSpec."""

    def __init__(self, spec: ExperimentSpec, n_trials: int | None = None):
        self.spec = spec if n_trials is None else spec.model_copy(update={"trials": n_trials})
        self.name = spec.name
        self.cognitive_model = COGNITIVE_MODELS[spec.cognitive_model]
        self.default_links = tuple(spec.links)

    @property
    def n_trials(self) -> int:
        return self.spec.trials

    def with_trials(self, n: int) -> "DeclarativeExperiment":
        return DeclarativeExperiment(self.spec, n)

    def session(self, rng: np.random.Generator) -> "_DeclarativeSession":
        return _DeclarativeSession(self.spec, rng)

    def behaviour(self, record) -> dict[str, float]:
        from ._indices import learning_indices

        return learning_indices(record)


class _DeclarativeSession(Stepper):
    def __init__(self, spec: ExperimentSpec, rng: np.random.Generator):
        super().__init__(spec.trials)
        self.spec, self.rng = spec, rng
        self.labels = tuple(spec.options) if spec.options is not None else draw_labels(rng, spec.labels)
        self.condition = spec.conditions[int(rng.integers(len(spec.conditions)))] if spec.conditions else None
        fb = spec.feedback
        self.probabilities = (self.condition.probabilities if self.condition and self.condition.probabilities
                              else fb.probabilities)
        self.means = self.condition.means if self.condition and self.condition.means else fb.means
        self.reversal = self.condition.reversal_every if self.condition and self.condition.reversal_every \
            else fb.reversal_every
        self.shift = int(rng.integers(len(self.labels))) if self.reversal else 0
        listed = ", ".join(self.labels[:-1]) + f" and {self.labels[-1]}" if len(self.labels) > 1 else self.labels[0]
        self.instructions = spec.instructions.replace("{options}", listed)

    def make_trial(self) -> Trial:
        if self.reversal and self.t > 1 and (self.t - 1) % self.reversal == 0:
            self.shift += 1
        info: dict[str, Any] = {"trial": self.t}
        if self.condition is not None:
            info["condition"] = self.condition.name
        return Trial(prompt=self.spec.prompt.replace("{trial}", str(self.t)), options=self.labels, info=info)

    def outcome(self, trial: Trial, k: int) -> Feedback:
        fb = self.spec.feedback
        if fb.kind == "bernoulli":
            p = self.probabilities[(k - self.shift) % len(self.labels)]
            win = bool(self.rng.random() < p)
            return Feedback(text=fb.win if win else fb.loss, reward=fb.reward * win)
        if fb.kind == "points":
            reward = float(round(self.rng.normal(self.means[(k - self.shift) % len(self.labels)], fb.sd)))
            return Feedback(text=fb.text.replace("{reward}", f"{reward:g}"), reward=reward)
        return Feedback(text=fb.end)
