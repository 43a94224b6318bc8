"""Closed-loop play: a model agent takes part in a programmed experiment.

At each trial the agent scores every option given the history so far (never by parsing
generated text), chooses by sampling or argmax, gets the experiment's feedback, and the
transcript grows. Many simulated participants play in lockstep, one forward pass per trial
for all of them, and each reuses the key/value cache of its own history.

Simulated participant i gets the same traits and the same task randomness (option labels,
payoffs) as synthetic participant i of the same seed, so model agents and synthetic
participants can be compared person by person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ..data import Participant, SourceRef, Transcript
from ..experiments import Experiment, Feedback, SessionRecord, SyntheticSpec, Trial, trial_line
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
    backend: Any,
    n: int,
    *,
    seed: int = 0,
    strategy: PersonaStrategy | None = None,
    spec: SyntheticSpec | None = None,
    policy: Policy = "sample",
    batch_size: int = 16,
    id_prefix: str = "model",
    stats: dict[str, int] | None = None,
) -> list[SessionRecord]:
    """Run n model agents through an experiment, closed loop.

    `backend` is an HF scorer (plain or chat-template); `strategy` renders each simulated
    participant's persona (traits drawn from `spec`). Returns one SessionRecord per agent,
    with the option log-probabilities the agent chose from at every trial. `stats`, if
    given, receives the tokens run through the model and the tokens a fresh pass per trial
    would have run.
    """
    from ..models._incremental import IncrementalChoices

    spec = spec or SyntheticSpec()
    strategy = strategy or NoPersona()
    people = simulated_people(experiment, n, seed=seed, spec=spec, id_prefix=id_prefix)
    conditionings = strategy.render(people)
    if any(c.system for c in conditionings) and not getattr(backend, "chat", False):
        raise ValueError(f"persona strategy {strategy.name!r} needs a chat-template model")
    records: list[SessionRecord] = []
    for start in range(0, n, batch_size):
        rows = [_Row(people[i], experiment.session(np.random.default_rng([seed, i, 1])),
                     conditionings[i].prefix, conditionings[i].system, seed, i)
                for i in range(start, min(n, start + batch_size))]
        state = IncrementalChoices(backend, len(rows))
        while True:
            for row in rows:
                if row.current is None and row.session is not None:
                    row.current = row.session.next_trial()
                    if row.current is None:
                        row.session = None  # finished
            active = [r for r in rows if r.current is not None]
            if not active:
                break
            contexts, options = [], []
            for row in rows:
                if row.current is None:
                    contexts.append(None)
                    options.append(None)
                    continue
                contexts.append(_context_ids(backend, row.with_candidate(row.current.options[0]), row.system))
                options.append([backend.encoder.piece_ids(o) for o in row.current.options])
            logprobs = state.step(contexts, options)
            if stats is not None:
                stats["without_reuse"] = stats.get("without_reuse", 0) + sum(len(c) for c in contexts if c)
            for row, lp in zip(rows, logprobs):
                if lp is None:
                    continue
                probs = np.exp(lp - lp.max())
                probs /= probs.sum()
                k = int(np.argmax(probs)) if policy == "argmax" else int(row.rng.choice(len(probs), p=probs))
                choice = row.current.options[k]
                row.commit(choice, row.session.respond(choice), lp)
        if stats is not None:
            stats["processed"] = stats.get("processed", 0) + state.processed
        for row in rows:
            records.append(SessionRecord(
                experiment=experiment.name, participant=row.person.participant, metadata=row.person.metadata,
                instructions=row.head[len(row.prefix):].removesuffix("\n\n"), trials=row.trials,
                choices=row.choices, feedback=row.feedback, agent=backend.name,
                option_logprobs=row.logprobs))
    return records


def _context_ids(backend: Any, transcript: Transcript, system: str | None) -> list[int]:
    """Canonical tokens before the last response: exactly what scoring the finished
    transcript would condition that response on."""
    enc = backend.encoder.encode(transcript, system)
    last = len(transcript.spans) - 1
    return enc.ids[: int(np.nonzero(enc.response_of == last)[0][0])].tolist()


def agreement_with_replay(records: Sequence[SessionRecord], backend: Any,
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
