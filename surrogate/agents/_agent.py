"""Participant agents: a participant, a model, and a persona strategy's conditioning.

Base, post-trained, persona-conditioned and fine-tuned agents are one type configured
differently: the model (a ScorerBackend, whose spec may carry a chat template or a LoRA
adapter) and the conditioning its persona strategy rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..data import DataError, MarkerError, Participant, Transcript, TruncationConfig, prepare_transcript
from ..models import ChoiceBackend, ChoiceRequest, ChoiceResult, ScoreRequest, ScorerBackend, score_all
from ..personas import Conditioning, NoPersona, PersonaStrategy


@dataclass(frozen=True)
class ParticipantAgent:
    """One participant as simulated by one model under one persona."""

    participant: Participant
    backend: ScorerBackend
    conditioning: Conditioning
    persona: str = "none"
    truncation: TruncationConfig = TruncationConfig()

    @cached_property
    def transcript(self) -> Transcript:
        """The cleaned transcript with the conditioning prefix (computed once)."""
        try:
            return prepare_transcript(self.participant.text, self.conditioning.prefix, self.truncation)
        except MarkerError as e:
            p = self.participant
            raise DataError(p.source.file, p.source.line, p.participant, str(e)) from None

    def request(self, options: Sequence[Sequence[str]] | None = None) -> ScoreRequest:
        """The scoring request for this agent (with option sets: a choice request)."""
        t = self.transcript
        common = dict(transcript=t, system=self.conditioning.system, max_tokens=self.truncation.max_tokens)
        if options is None:
            return ScoreRequest(**common)
        return ChoiceRequest(**common, options=tuple(tuple(o) for o in options[: len(t.spans)]))

    def replay(self) -> pd.DataFrame:
        """Score the recorded responses trial by trial (one teacher-forced pass)."""
        return replay_agents([self])

    def choices(self, options: Sequence[Sequence[str]]) -> pd.DataFrame:
        """The model's choice distribution at every response over its closed option set."""
        return choice_table([self], [options])


def make_agents(
    participants: Sequence[Participant],
    backend: ScorerBackend,
    strategy: PersonaStrategy | None = None,
    truncation: TruncationConfig | None = None,
) -> list[ParticipantAgent]:
    """Agents for a group of participants (group strategies such as `shuffled` need it)."""
    strategy = strategy or NoPersona()
    conditionings = strategy.render(participants)
    return [ParticipantAgent(p, backend, c, strategy.name, truncation or TruncationConfig())
            for p, c in zip(participants, conditionings, strict=True)]


class ScoringError(ValueError):
    """A model produced a score that is not a number (NaN or infinite weights, an overflow)."""


def response_rows(agent: ParticipantAgent, result, model: str) -> list[dict]:
    """One row per response of the uncut transcript; responses that were cut (characters or
    token budget) have NaN NLL, 0 tokens and truncated=True. A response that was scored
    (it has tokens) but got a non-finite NLL is an error, never a truncation."""
    p, transcript = agent.participant, agent.transcript
    cut = set(result.token_truncated)
    rows = []
    for r, text in enumerate(transcript.all_responses):
        if r < len(transcript.spans) and r not in cut and result.n_tokens[r] > 0 and not np.isfinite(result.nll[r]):
            raise ScoringError(
                f"model {model!r} gave a non-finite NLL ({result.nll[r]}) for participant {p.participant} "
                f"({p.study}, {p.source.file}:{p.source.line}), response {r}: its weights may hold NaN or "
                "infinite values, or the dtype overflowed (try --dtype float32); no result was written for it")
        scored = r < len(transcript.spans) and not np.isnan(result.nll[r])
        rows.append({"study": p.study, "experiment": p.experiment, "participant": p.participant,
                     "response_index": r, "response_text": text, "model": model, "persona": agent.persona,
                     "nll": float(result.nll[r]) if scored else float("nan"),
                     "n_tokens": int(result.n_tokens[r]) if scored else 0, "truncated": not scored,
                     "top1": float(result.top1[r]) if scored and result.top1 is not None else float("nan")})
    return rows


def replay_agents(agents: Sequence[ParticipantAgent]) -> pd.DataFrame:
    """Per-response NLL rows for agents sharing one backend, scored in batches."""
    backend = agents[0].backend
    if any(a.backend is not backend for a in agents):
        raise ValueError("replay_agents scores agents of one backend at a time")
    results = score_all(backend, [a.request() for a in agents])
    return pd.DataFrame([row for a, res in zip(agents, results)
                         for row in response_rows(a, res, backend.name)])


def _tie_share(probs: np.ndarray, k: int) -> float:
    """1 if option k is the model's single most probable option, 1/m if it ties with m - 1
    others (the expected accuracy of breaking the tie at random), else 0."""
    top = np.flatnonzero(probs == probs.max())
    return float(k in top) / len(top)


def choice_rows(agent: ParticipantAgent, result: ChoiceResult, options: Sequence[Sequence[str]],
                model: str, unit_key: str = "") -> list[dict]:
    """One row per scored response: options, normalised choice probabilities, accuracy."""
    p, t = agent.participant, agent.transcript
    condition = p.metadata.get("condition")
    rows = []
    for r, said in enumerate(t.responses):
        lp = np.asarray(result.option_logprobs[r][: len(options[r])], dtype=float)
        if np.isnan(lp).any():
            continue  # cut by the token budget
        probs = np.exp(lp - lp.max())
        probs /= probs.sum()
        k = list(options[r]).index(said)
        rows.append({
            "study": p.study, "experiment": p.experiment, "participant": p.participant,
            "response_index": r, "model": model, "persona": agent.persona,
            "options": list(options[r]), "chosen": said, "probs": probs.tolist(),
            "p_chosen": float(probs[k]), "correct": _tie_share(probs, k),
            "nll_choice": float(-np.log(probs[k])), "nll_uniform": float(np.log(len(probs))),
            "condition": None if condition is None else str(condition), "unit_key": unit_key,
        })
    return rows


def choice_table(agents: Sequence[ParticipantAgent], options: Sequence[Sequence[Sequence[str]]]) -> pd.DataFrame:
    rows = []
    for agent, opts in zip(agents, options):
        backend = agent.backend
        if not isinstance(backend, ChoiceBackend):
            raise TypeError(f"{backend.name} cannot score option sets (no score_choices)")
        _, result = next(iter(backend.score_choices([agent.request(opts)])))
        rows += choice_rows(agent, result, opts, backend.name)
    return pd.DataFrame(rows)
