"""Closed-loop play: a model agent takes part in a programmed experiment.

At each trial the agent scores every option given the history so far (never by parsing
generated text), chooses by sampling or argmax, gets the experiment's feedback, and the
transcript grows. Many simulated participants play in lockstep, one forward pass per trial
for all of them, and each reuses the key/value cache of its own history.

Simulated participant i gets the same traits as synthetic participant i of the same seed
(or person i's metadata, given people) and task randomness (option labels, payoffs) of its
own: an agent resembles its person only through the persona, which is what the
individual-level comparison (`compare-agents`) tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..data import Participant, SourceRef, Transcript
from ..experiments import Experiment, Feedback, SessionRecord, SyntheticSpec, Trial, trial_line, with_condition
from ..models import ChoiceBackend, IncrementalScorer
from ..personas import NoPersona, PersonaStrategy

Policy = Literal["sample", "argmax"]


def simulated_people(experiment: Experiment, n: int, *, seed: int, spec: SyntheticSpec,
                     id_prefix: str) -> list[Participant]:
    """Participants with traits drawn as for synthetic participant i (same rng stream)."""
    people = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        traits = {name: t.sample(rng) for name, t in spec.traits.items()}
        people.append(Participant(
            study=experiment.name, experiment=experiment.name, participant=f"{id_prefix}-{i + 1:04d}",
            text="", metadata=traits, metadata_text={k: str(v) for k, v in traits.items()},
            source=SourceRef(file="<simulated>", line=i + 1)))
    return people


class _Row:
    """One simulated participant's session and the transcript it has produced so far."""

    def __init__(self, person: Participant, session: Any, prefix: str, system: str | None, seed: int, index: int):
        self.person, self.session, self.prefix, self.system = person, session, prefix, system
        self.head = prefix + session.instructions + "\n\n"
        self.lines: list[str] = []
        self.spans: list[tuple[int, int]] = []
        self.trials: list[Trial] = []
        self.choices: list[str] = []
        self.feedback: list[Feedback] = []
        self.logprobs: list[list[float]] = []
        self.rng = np.random.default_rng([seed, index, 2])
        self.current: Trial | None = None

    def with_candidate(self, candidate: str) -> Transcript:
        """The transcript so far plus the current prompt answered with `candidate`."""
        body = self.head + "".join(self.lines)
        before = body + f"{self.current.prompt} <<"
        text = before + candidate + ">>"
        spans = [*self.spans, (len(before), len(before) + len(candidate))]
        return Transcript(text=text, spans=tuple(spans), all_responses=tuple(text[s:e] for s, e in spans),
                          prefix_chars=len(self.prefix))

    def finished(self) -> Transcript:
        """The transcript of the trials played, each answered with the choice made."""
        text = self.head + "".join(self.lines)
        return Transcript(text=text, spans=tuple(self.spans),
                          all_responses=tuple(text[s:e] for s, e in self.spans), prefix_chars=len(self.prefix))

    def commit(self, choice: str, feedback: Feedback, logprobs: np.ndarray) -> None:
        body_len = len(self.head) + sum(len(x) for x in self.lines)
        start = body_len + len(self.current.prompt) + 3
        self.spans.append((start, start + len(choice)))
        self.lines.append(trial_line(self.current, choice, feedback))
        self.trials.append(self.current)
        self.choices.append(choice)
        self.feedback.append(feedback)
        self.logprobs.append(logprobs.tolist())
        self.current = None


def play_model(
    experiment: Experiment,
    backend: IncrementalScorer,
    n: int,
    *,
    seed: int = 0,
    strategy: PersonaStrategy | None = None,
    spec: SyntheticSpec | None = None,
    policy: Policy = "sample",
    batch_size: int = 16,
    id_prefix: str = "model",
    stats: dict[str, int] | None = None,
    people: Sequence[Participant] | None = None,
    indices: Sequence[int] | None = None,
    on_batch: Any = None,
) -> list[SessionRecord]:
    """Run n model agents through an experiment, closed loop.

    `backend` is an HF scorer (plain or chat-template); `strategy` renders each simulated
    participant's persona (traits drawn from `spec`). Returns one SessionRecord per agent,
    with the option log-probabilities the agent chose from at every trial.

    Each trial costs the model only the tokens new since the last trial (KV reuse) and the
    tokenizer only a window at the end of the history (GrowingContext). Every agent's
    contexts are checked against one full encoding of its finished transcript; a batch that
    fails the check (a tokenizer whose earlier tokens change as text is appended) is played
    again encoding the whole history every trial, with a warning. `stats`, if given,
    receives the tokens run through the model, the tokens a fresh pass per trial would have
    run, the characters tokenized, and the characters full encodings would have tokenized.
    """
    if not isinstance(backend, IncrementalScorer):
        raise TypeError(f"{backend.name}: this backend cannot play experiments closed loop (it scores whole "
                        "transcripts only; the vLLM backend computes prompt log-probabilities); use the hf backend")
    spec = spec or SyntheticSpec()
    strategy = strategy or NoPersona()
    if people is None:
        people = simulated_people(experiment, n, seed=seed, spec=spec, id_prefix=id_prefix)
    else:  # given people (real participants): agent i takes person i's metadata as its persona
        people = [Participant(study=experiment.name, experiment=experiment.name,
                              participant=f"{id_prefix}-{i + 1:04d}", text="", metadata=dict(p.metadata),
                              metadata_text=dict(p.metadata_text), source=p.source) for i, p in enumerate(people)]
        n = len(people)
    conditionings = strategy.render(people)
    if any(c.system for c in conditionings) and not backend.chat:
        raise ValueError(f"persona strategy {strategy.name!r} needs a chat-template model")
    records: list[SessionRecord] = []
    todo = list(range(n)) if indices is None else sorted(indices)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        counts: dict[str, int] = {}
        recs, exact = _play_batch(experiment, backend, people, conditionings, batch, seed, policy,
                                  window=True, counts=counts)
        if not exact:
            warnings.warn(f"{backend.name}: appending text changed earlier tokens of a history in "
                          f"{experiment.name}; replaying participants {batch[0] + 1}-{batch[-1] + 1} "
                          "with the whole history encoded every trial", stacklevel=2)
            counts["replayed"] = counts.get("replayed", 0) + len(batch)
            recs, _ = _play_batch(experiment, backend, people, conditionings, batch, seed, policy,
                                  window=False, counts=counts)
        records += recs
        if on_batch is not None:
            on_batch(batch, recs)
        if stats is not None:
            for key, value in counts.items():
                stats[key] = stats.get(key, 0) + value
    return records


def _play_batch(experiment, backend, people, conditionings, batch: Sequence[int], seed: int, policy: Policy,
                *, window: bool, counts: dict[str, int]) -> tuple[list[SessionRecord], bool]:
    """One batch of agents in lockstep; also whether every context equals the finished
    transcript's."""
    rows = [_Row(people[i], experiment.session(np.random.default_rng([seed, i, 3])),
                 conditionings[i].prefix, conditionings[i].system, seed, i) for i in batch]
    encodings = [backend.growing_context(window=window) for _ in rows]
    state = backend.incremental_choices(len(rows))
    while True:
        for row in rows:
            if row.current is None and row.session is not None:
                row.current = row.session.next_trial()
                if row.current is None:
                    row.session = None  # finished
        if not any(r.current is not None for r in rows):
            break
        contexts, options = [], []
        for row, growing in zip(rows, encodings):
            if row.current is None:
                contexts.append(None)
                options.append(None)
                continue
            contexts.append(growing.context(row.with_candidate(row.current.options[0]), row.system))
            options.append([backend.option_ids(o) for o in row.current.options])
        logprobs = state.step(contexts, options)
        _add(counts, without_reuse=sum(len(c) for c in contexts if c is not None),
             encoded_chars_without_reuse=sum(len(g.text) for g, c in zip(encodings, contexts) if c is not None))
        for row, lp in zip(rows, logprobs):
            if lp is None:
                continue
            probs = np.exp(lp - lp.max())
            probs /= probs.sum()
            k = int(np.argmax(probs)) if policy == "argmax" else int(row.rng.choice(len(probs), p=probs))
            choice = row.current.options[k]
            row.commit(choice, row.session.respond(choice), lp)
    _add(counts, processed=state.processed, encoded_chars=sum(g.encoded_chars for g in encodings))
    exact = all(g.agrees_with(row.finished(), row.system) for row, g in zip(rows, encodings) if row.trials)
    records = [SessionRecord(
        experiment=experiment.name, participant=row.person.participant,
        metadata=with_condition(row.person.metadata, row.trials),
        instructions=row.head[len(row.prefix):].removesuffix("\n\n"), trials=row.trials,
        choices=row.choices, feedback=row.feedback, agent=backend.name,
        option_logprobs=row.logprobs) for row in rows]
    return records, exact


def _add(counts: dict[str, int], **values: int) -> None:
    for key, value in values.items():
        counts[key] = counts.get(key, 0) + value


def agreement_with_replay(records: Sequence[SessionRecord], backend: ChoiceBackend,
                          strategy: PersonaStrategy | None = None, spec: SyntheticSpec | None = None) -> float:
    """Largest difference between the option log-probabilities seen in play and those from
    scoring the finished transcripts afresh (a check that KV reuse changed nothing)."""
    from ..data import TruncationConfig
    from ._agent import make_agents

    people = [Participant(study=r.experiment, experiment=r.experiment, participant=r.participant, text=r.text,
                          metadata=r.metadata, metadata_text={k: str(v) for k, v in r.metadata.items()},
                          source=SourceRef(file="<simulated>", line=1)) for r in records]
    agents = make_agents(people, backend, strategy, TruncationConfig(max_chars=None, paper_fixes=False))
    worst = 0.0
    for rec, agent in zip(records, agents):
        _, fresh = next(iter(backend.score_choices([agent.request([tr.options for tr in rec.trials])])))
        worst = max(worst, float(np.max(np.abs(np.asarray(fresh.option_logprobs) - np.asarray(rec.option_logprobs)))))
    return worst
