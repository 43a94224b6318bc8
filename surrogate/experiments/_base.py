"""What an experiment is: instructions, trials with a closed set of options, feedback.

An experiment makes one *session* per participant. A session shows a trial (its prompt and
options, which may depend on everything before), takes a response, and returns feedback
that is written right after it. Rendering follows Psych-201 exactly: the instructions, a
blank line, then one line per trial: `{prompt} <<{choice}>>{feedback}`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Option labels are drawn per participant, as in Psych-201 (letters that are not words).
LABEL_POOL = tuple(c for c in string.ascii_uppercase if c not in "AIO")


class Trial(BaseModel):
    """One decision: the text up to the response, the options, and task variables."""

    model_config = ConfigDict(frozen=True)
    prompt: str = Field(description="Text shown before the response, e.g. 'Round 3: You choose'.")
    options: tuple[str, ...] = Field(description="Response labels, as written inside << >>.")
    info: dict[str, Any] = Field(default_factory=dict, description="Task variables (payoffs, "
                                 "probabilities, delays) that cognitive models read.")


class Feedback(BaseModel):
    """What follows a response: text written right after '>>', and the reward if any."""

    model_config = ConfigDict(frozen=True)
    text: str = "."
    reward: float | None = None


@runtime_checkable
class Session(Protocol):
    """One participant's run through an experiment."""

    instructions: str

    def next_trial(self) -> Trial | None:
        """The next trial, or None when the session is over."""
        ...

    def respond(self, choice: str) -> Feedback:
        """Record the response to the current trial; return its feedback."""
        ...


@runtime_checkable
class Experiment(Protocol):
    """A programmed experiment: makes a fresh, seeded session per participant."""

    name: str

    def session(self, rng: np.random.Generator) -> Session: ...


@runtime_checkable
class MeasuresBehaviour(Experiment, Protocol):
    """An experiment that also summarises a finished session in named measures (mean
    reward, switch rate, ...), compared between people, synthetic and model agents."""

    def behaviour(self, record: "SessionRecord") -> dict[str, float]: ...


def draw_labels(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    """n distinct option labels, drawn per participant."""
    return tuple(str(x) for x in rng.choice(LABEL_POOL, size=n, replace=False))


class SessionRecord(BaseModel):
    """A finished session: the Psych-201 transcript plus everything needed to replay it."""

    experiment: str
    participant: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    instructions: str
    trials: list[Trial]
    choices: list[str]
    feedback: list[Feedback]
    params: dict[str, float] = Field(default_factory=dict, description="True parameters of a "
                                     "synthetic participant (empty for model agents).")
    agent: str = ""
    person: str | None = Field(None, description="Model agents: the participant whose persona the agent was given.")
    option_logprobs: list[list[float]] = Field(default_factory=list, description="Per trial, "
                                               "log p(option) a model agent chose from.")

    @property
    def text(self) -> str:
        return render(self.instructions, self.trials, self.choices, self.feedback)

    def to_psych201(self) -> dict[str, Any]:
        """The Psych-201 record: text, experiment, participant, metadata fields."""
        return {"text": self.text, "experiment": self.experiment, "participant": self.participant,
                **self.metadata}


def trial_line(trial: Trial, choice: str, feedback: Feedback) -> str:
    return f"{trial.prompt} <<{choice}>>{feedback.text}\n"


def render(instructions: str, trials: Sequence[Trial], choices: Sequence[str],
           feedback: Sequence[Feedback]) -> str:
    lines = "".join(trial_line(t, c, f) for t, c, f in zip(trials, choices, feedback, strict=True))
    return f"{instructions}\n\n{lines}"


def context_before(instructions: str, trials: Sequence[Trial], choices: Sequence[str],
                   feedback: Sequence[Feedback], current: Trial) -> str:
    """The transcript up to (and including) ' <<' of the current trial."""
    return render(instructions, trials, choices, feedback) + f"{current.prompt} <<"


def with_condition(metadata: dict[str, Any], trials: Sequence[Trial]) -> dict[str, Any]:
    """A participant's metadata with their between-subject condition (from the trials' info),
    so that personas, stratified swaps and analyses see it."""
    condition = trials[0].info.get("condition") if trials else None
    return metadata if condition is None else {**metadata, "condition": condition}


class Stepper:
    """Shared session bookkeeping: the current trial, the trial count, the order of calls;
    a session supplies `make_trial` (trial `self.t`, counted from 1) and `outcome`."""

    def __init__(self, n_trials: int):
        self.n_trials, self.t, self.current = n_trials, 0, None

    def next_trial(self) -> Trial | None:
        if self.current is not None:
            raise RuntimeError("respond() to the current trial before asking for the next")
        if self.t >= self.n_trials:
            return None
        self.t += 1
        self.current = self.make_trial()
        return self.current

    def respond(self, choice: str) -> Feedback:
        trial = self.current
        if trial is None:
            raise RuntimeError("no trial is waiting for a response")
        if choice not in trial.options:
            raise ValueError(f"{choice!r} is not one of the options {trial.options}")
        self.current = None
        return self.outcome(trial, trial.options.index(choice))

    def make_trial(self) -> Trial:
        raise NotImplementedError

    def outcome(self, trial: Trial, index: int) -> Feedback:
        raise NotImplementedError


def play(session: Session, choose: Callable[[Trial], int],
         learn: Callable[[Trial, int, Feedback], None] | None = None) -> tuple[list[Trial], list[str], list[Feedback]]:
    """Play a session to its end: `choose` picks each trial's option (an index), the session
    answers with feedback, and `learn` (a learner's update) sees trial, choice and feedback.
    Returns the trials, the chosen options and the feedback, in order."""
    trials: list[Trial] = []
    choices: list[str] = []
    feedback: list[Feedback] = []
    while (trial := session.next_trial()) is not None:
        k = choose(trial)
        fb = session.respond(trial.options[k])
        if learn is not None:
            learn(trial, k, fb)
        trials.append(trial)
        choices.append(trial.options[k])
        feedback.append(fb)
    return trials, choices, feedback
