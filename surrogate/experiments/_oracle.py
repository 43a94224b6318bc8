"""An oracle scorer: the cognitive model's own likelihood, conditioned on the persona.

It plugs into everything a language model plugs into (runs, agents, compare-personas), so
estimators can be checked against ground truth. Given a request, it finds the simulated
session the transcript came from, reads the persona's traits from the conditioning text
(interview format: `Interviewer: ... / Interviewee: value`), predicts the parameters those
traits imply under its assumed trait links (absent traits: the population mean), and
scores each recorded choice by -log p(choice | parameters).

With a true trait link the matched persona carries individual-level information the
shuffled one lacks; without one it cannot, whatever links the oracle assumes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..data import TruncationConfig, parse_value, prepare_transcript
from ..models import ChoiceRequest, ChoiceResult, ScoreRequest, ScoreResult
from ..personas import question_for
from ._base import SessionRecord
from ._synthetic import SyntheticSpec

_EXCHANGE = re.compile(r"Interviewer: (.*?)\nInterviewee: (.*?)\n\n")


class OracleBackend:
    """ScorerBackend (and ChoiceBackend) from known sessions and a cognitive model."""

    chat = True  # a system-message persona is read like any other

    def __init__(self, sessions: Sequence[SessionRecord], model_cls: Any, spec: SyntheticSpec,
                 name: str = "oracle", truncation: TruncationConfig | None = None):
        self._name, self.model_cls, self.spec = name, model_cls, spec
        truncation = truncation or TruncationConfig()
        self.sessions = {prepare_transcript(s.text, config=truncation).text: s for s in sessions}
        self.questions = {question_for(t): t for t in spec.traits}

    @property
    def name(self) -> str:
        return self._name

    def fingerprint(self) -> dict[str, Any]:
        return {"model": f"oracle:{self.model_cls.__name__}", "spec": self.spec.model_dump(mode="json")}

    def describe(self) -> dict[str, Any]:
        return {"device": None, "dtype": None}

    def traits(self, conditioning: str) -> dict[str, Any]:
        """Traits stated in interview-format conditioning (others are ignored)."""
        out = {}
        for question, answer in _EXCHANGE.findall(conditioning):
            trait = self.questions.get(question)
            if trait is not None:
                out[trait] = parse_value(answer)
        return out

    def _session(self, request: ScoreRequest) -> tuple[SessionRecord, np.ndarray]:
        t = request.transcript
        body = t.text[t.prefix_chars:]
        session = self.sessions.get(body)
        if session is None:
            raise ValueError(f"{self._name}: the transcript is not one of its {len(self.sessions)} sessions")
        params = self.spec.linked_params(self.model_cls, self.traits(t.text[: t.prefix_chars] + (request.system or "")))
        model = self.model_cls(**params)
        probs = []
        for trial, choice, fb in zip(session.trials, session.choices, session.feedback):
            p = model.probs(trial)
            probs.append(p)
            model.observe(trial, trial.options.index(choice), fb)
        return session, probs

    def score(self, requests: Sequence[ScoreRequest]) -> Iterator[tuple[int, ScoreResult]]:
        for i, req in enumerate(requests):
            session, probs = self._session(req)
            n = len(req.transcript.spans)
            nll = [float(-np.log(p[tr.options.index(c)]))
                   for p, tr, c in zip(probs[:n], session.trials, session.choices)]
            yield i, ScoreResult(nll=nll, n_tokens=[1] * n, n_input_tokens=len(req.transcript.text))

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> Iterator[tuple[int, ChoiceResult]]:
        for i, req in enumerate(requests):
            session, probs = self._session(req)
            n = len(req.transcript.spans)
            rows, nll = [], []
            for p, tr, c, opts in zip(probs[:n], session.trials, session.choices, req.options):
                rows.append([float(np.log(p[tr.options.index(o)])) if o in tr.options else float("-inf")
                             for o in opts])
                nll.append(float(-np.log(p[tr.options.index(c)])))
            yield i, ChoiceResult(nll=nll, n_tokens=[1] * n, n_input_tokens=len(req.transcript.text),
                                  option_logprobs=rows)
