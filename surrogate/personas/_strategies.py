"""Persona strategies: how a persona becomes conditioning for a model.

A strategy renders a whole group of participants at once, because the controls need the
group: `shuffled` gives each participant someone else's persona, `population` gives everyone
the group's pooled persona. Strategies are selected by name from an explicit mapping
(`builtin_strategies()`, extendable by the caller), or as `module:attribute` import paths.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from .._imports import load_object
from ..data import Participant, parse_value
from ._persona import PAPER_FIELDS, Persona, paper_order, question_for


class Conditioning(BaseModel):
    """What a strategy gives one participant: text before the transcript and/or a system
    message, the persona fields it used, and whose persona it was (None: their own)."""

    model_config = ConfigDict(frozen=True)
    prefix: str = ""
    system: str | None = None
    fields: tuple[str, ...] = ()
    donor: str | None = None


@runtime_checkable
class PersonaStrategy(Protocol):
    """Renders conditioning for participants; one Conditioning per participant, in order."""

    @property
    def name(self) -> str: ...

    def render(self, participants: Sequence[Participant]) -> list[Conditioning]: ...


# --- renderings of one persona -----------------------------------------------------------

def interview_text(fields: Mapping[str, str]) -> str:
    """One "Interviewer: ... / Interviewee: ..." exchange per field, as in the paper."""
    return "".join(f"Interviewer: {question_for(k)}\nInterviewee: {v}\n\n" for k, v in fields.items())


def _gender_noun(value: str) -> str | None:
    v = value.strip().lower()
    if v in ("female", "woman", "f", "w"):
        return "woman"
    if v in ("male", "man", "m"):
        return "man"
    return None


def _article(word: str) -> str:
    """'an' before words read with a leading vowel sound (8, 11, 18, 80s, vowels)."""
    if re.match(r"(8|11(\D|$)|18(\D|$)|[aeiou])", word.lower()):
        return "an"
    return "a"


def describe(persona: Persona, *, second_person: bool = False) -> str:
    """A short description, e.g. "The participant is a 34-year-old woman from Germany."""
    subj, poss, be = ("You", "Your", "are") if second_person else ("The participant", "Their", "is")
    they = "You" if second_person else "They"
    d = persona.demographics
    sentences = []
    if {"age", "gender", "nationality", "country"} & d.keys():
        noun = _gender_noun(d["gender"]) if "gender" in d else None
        age = f"{d['age']}-year-old " if "age" in d else ""
        who = noun or "person"
        first = f"{subj} {be} {_article(age or who)} {age}{who}"
        if "gender" in d and noun is None:
            first += f" (gender: {d['gender']})"
        if "nationality" in d or "country" in d:
            first += f" from {d.get('nationality') or d.get('country')}"
        sentences.append(first + ".")
    for key, value in d.items():
        if key not in ("age", "gender", "nationality", "country"):
            label = "highest level of education" if key == "education" else key
            sentences.append(f"{poss} {label} is {value}.")
    for value in persona.clinical.values():
        sentences.append(f"{they} have been diagnosed with {value}.")
    if persona.questionnaires:
        scores = ", ".join(f"{k} {v}" for k, v in persona.questionnaires.items())
        sentences.append(f"{poss} questionnaire scores are: {scores}.")
    for key, value in persona.condition.items():
        sentences.append(f"{they} took part in the {value} {key}.")
    for key, value in persona.other.items():
        sentences.append(f"{poss} {key} is {value}.")
    return " ".join(sentences)


# --- per-participant strategies ----------------------------------------------------------

class _PerParticipant:
    name = "base"

    def render(self, participants: Sequence[Participant]) -> list[Conditioning]:
        return [self.render_persona(Persona.from_participant(p)) for p in participants]

    def render_persona(self, persona: Persona) -> Conditioning:
        raise NotImplementedError


class NoPersona(_PerParticipant):
    """No conditioning: the transcript alone."""

    name = "none"

    def render_persona(self, persona: Persona) -> Conditioning:
        return Conditioning()


class Interview(_PerParticipant):
    """The paper's persona prompt: its fields, its questions, its order. Byte-identical to
    the reference's `--persona`; metadata outside the paper's fields is not shown."""

    name = "interview"

    def render_persona(self, persona: Persona) -> Conditioning:
        all_fields = persona.fields()
        used = {k: all_fields[k] for k, _ in PAPER_FIELDS if k in all_fields}
        return Conditioning(prefix=interview_text(used), fields=tuple(used))


@dataclass(frozen=True)
class FieldsInterview(_PerParticipant):
    """Interview format over one group of fields (all of them, not only the paper's)."""

    group: str = "demographics"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.group

    def render_persona(self, persona: Persona) -> Conditioning:
        fields = getattr(persona, self.group)
        ordered = {k: fields[k] for k in paper_order(list(fields))}
        return Conditioning(prefix=interview_text(ordered), fields=tuple(ordered))


class Narrative(_PerParticipant):
    """A short third-person description before the transcript."""

    name = "narrative"

    def render_persona(self, persona: Persona) -> Conditioning:
        if persona.is_empty:
            return Conditioning()
        fields = tuple(persona.fields())
        return Conditioning(prefix=f"Participant description: {describe(persona)}\n\n", fields=fields)


class SystemPersona(_PerParticipant):
    """The persona as a system message (chat-template scoring only)."""

    name = "system"

    def render_persona(self, persona: Persona) -> Conditioning:
        if persona.is_empty:
            return Conditioning()
        text = ("You are a participant in a psychology experiment. "
                + describe(persona, second_person=True))
        return Conditioning(system=text, fields=tuple(persona.fields()))


# --- group controls ----------------------------------------------------------------------

def _control_name(kind: str, base: _PerParticipant) -> str:
    """`shuffled` / `population` over the paper's interview, else `shuffled-narrative` etc."""
    return kind if isinstance(base, Interview) else f"{kind}-{base.name}"


def _groups(participants: Sequence[Participant]) -> list[list[int]]:
    """Indices by (study, experiment); an experiment with one participant joins its study."""
    by_exp: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(participants):
        by_exp[(p.study, p.experiment)].append(i)
    by_study: dict[str, list[int]] = defaultdict(list)
    out = []
    for (study, _), idx in by_exp.items():
        (out.append(idx) if len(idx) > 1 else by_study[study].extend(idx))
    out.extend(by_study.values())
    return out


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random derangement made of swaps: participants are paired at random and exchange
    personas (with one 3-cycle when n is odd). Each persona is then received by its owner and
    by exactly one other participant, and each pair (or triple) is a closed cycle, so a
    persona's own effect cancels within it and the cycles are independent units for the
    individual-level test (see surrogate.analysis)."""
    if n < 2:
        raise ValueError("a derangement needs at least two participants")
    order = rng.permutation(n)
    perm = np.empty(n, dtype=int)
    stop = n - 3 if n % 2 else n
    for k in range(0, stop, 2):
        a, b = order[k], order[k + 1]
        perm[a], perm[b] = b, a
    if n % 2:
        a, b, c = order[n - 3:]
        perm[a], perm[b], perm[c] = b, c, a
    return perm


def _seed(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass(frozen=True)
class Shuffled:
    """Each participant with metadata gets the persona of another participant with metadata
    from the same experiment (a seeded derangement of random swaps: nobody keeps their own).
    The control for individual-level information. Participants whose persona would be empty
    are left out of the derangement *before* it is drawn and get no persona (so they are not
    donors either); an experiment with fewer than two such participants gives everyone an
    empty persona. `stratify` names a metadata field (e.g. `condition`): swaps then happen
    within its levels. Experiments with a single participant are pooled within their study."""

    base: _PerParticipant = field(default_factory=Interview)
    seed: int = 0
    stratify: str | None = None
    replicate: int = 0  # k > 0: an independent pairing, labelled `shuffled.{k + 1}`

    @property
    def name(self) -> str:
        name = _control_name("shuffled", self.base)
        return name if self.replicate == 0 else f"{name}.{self.replicate + 1}"

    def render(self, participants: Sequence[Participant]) -> list[Conditioning]:
        out: list[Conditioning] = [Conditioning() for _ in participants]
        own = [self.base.render_persona(Persona.from_participant(p)) for p in participants]
        for idx in _groups(participants):
            with_fields = [i for i in idx if own[i].fields]
            strata: dict[str, list[int]] = defaultdict(list)
            for i in with_fields:
                level = participants[i].metadata.get(self.stratify) if self.stratify else None
                strata[str(level)].append(i)
            for level, members in sorted(strata.items()):
                if len(members) < 2:
                    continue  # nobody to swap with: an empty persona, excluded by the analysis
                p0 = participants[members[0]]
                key = f"{p0.study}/{p0.experiment}" + (f"/{self.stratify}={level}" if self.stratify else "") \
                    + (f"/replicate={self.replicate}" if self.replicate else "")
                perm = derangement(len(members), _seed(self.seed, key))
                for i, j in zip(members, perm):
                    donor = participants[members[j]]
                    out[i] = own[members[j]].model_copy(update={"donor": donor.participant})
        return out


def _pooled_value(values: list) -> str:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(values):
        m = statistics.median(numbers)
        return str(int(m)) if float(m).is_integer() else f"{m:.4g}"
    counts = Counter(str(v) for v in values)
    top = max(counts.values())
    return min(k for k, c in counts.items() if c == top)  # ties: alphabetical, deterministic


def pooled_persona(participants: Sequence[Participant]) -> Persona:
    """Median (numbers) or mode (text) of each field at least half the group has."""
    personas = [Persona.from_participant(p) for p in participants]
    counts = Counter(k for pe in personas for k in pe.values)
    text = {key: _pooled_value([pe.values[key] for pe in personas if key in pe.values])
            for key, n in counts.items() if n * 2 >= len(personas)}
    return Persona.from_metadata({k: parse_value(v) for k, v in text.items()}, text)


@dataclass(frozen=True)
class Population:
    """Everyone in an experiment gets one persona pooled from its metadata (median or mode).
    The control for what any persona does at the population level."""

    base: _PerParticipant = field(default_factory=Interview)

    @property
    def name(self) -> str:
        return _control_name("population", self.base)

    def render(self, participants: Sequence[Participant]) -> list[Conditioning]:
        out: list[Conditioning | None] = [None] * len(participants)
        for idx in _groups(participants):
            c = self.base.render_persona(pooled_persona([participants[i] for i in idx]))
            for i in idx:
                out[i] = c.model_copy(update={"donor": "population"})
        return out  # type: ignore[return-value]



PLACEBO_ANSWER = "I would rather not say."


@dataclass(frozen=True)
class Placebo:
    """The same interview questions as the participant's own persona, each answered "I would
    rather not say.": a prefix of the same shape and length class that carries no
    information. Separates what *any* persona-shaped prefix does from what population-level
    information does (population - placebo)."""

    base: _PerParticipant = field(default_factory=Interview)

    @property
    def name(self) -> str:
        return _control_name("placebo", self.base)

    def render(self, participants: Sequence[Participant]) -> list[Conditioning]:
        out = []
        for p in participants:
            c = self.base.render_persona(Persona.from_participant(p))
            if not c.fields:
                out.append(Conditioning())
                continue
            out.append(Conditioning(prefix=interview_text({k: PLACEBO_ANSWER for k in c.fields}),
                                    fields=c.fields))
        return out


# --- selection by name -------------------------------------------------------------------

ALIASES = {"on": ["interview"], "off": ["none"], "both": ["none", "interview"]}


def builtin_strategies(seed: int = 0, stratify: str | None = None) -> dict[str, Callable[[], PersonaStrategy]]:
    """The built-in strategies by name (`seed` draws the shuffled derangement). Copy and
    extend this mapping to add your own."""
    return {
        "none": NoPersona,
        "interview": Interview,
        "narrative": Narrative,
        "demographics": lambda: FieldsInterview("demographics"),
        "questionnaires": lambda: FieldsInterview("questionnaires"),
        "system": SystemPersona,
        "shuffled": lambda: Shuffled(seed=seed, stratify=stratify),
        "population": Population,
        "placebo": Placebo,
    }


def resolve_strategies(
    spec: str | Sequence[str],
    registry: Mapping[str, Callable[[], PersonaStrategy]] | None = None,
    *,
    seed: int = 0,
    stratify: str | None = None,
    derangements: int = 1,
) -> list[PersonaStrategy]:
    """Strategies from names: `interview,shuffled`, `on`/`off`/`both`, `module:Class` or
    `file.py:Class`. `derangements` > 1 adds independent shuffled pairings (`shuffled.2`, ...)."""
    registry = builtin_strategies(seed, stratify) if registry is None else registry
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    out: list[PersonaStrategy] = []
    for name in names:
        for n in ALIASES.get(name, [name]):
            if n == "shuffled" and registry is not None and derangements > 1:
                out += [Shuffled(seed=seed, stratify=stratify, replicate=k) for k in range(derangements)]
            elif n in registry:
                out.append(registry[n]())
            elif ":" in n:
                obj = load_object(n)
                strategy = obj() if isinstance(obj, type) else obj
                if not isinstance(strategy, PersonaStrategy):
                    raise TypeError(f"{n} is not a persona strategy (needs .name and .render)")
                out.append(strategy)
            else:
                raise ValueError(f"unknown persona strategy {n!r}; known: "
                                 f"{', '.join([*registry, *ALIASES])}, or module:Class")
    labels = [s.name for s in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"persona strategies repeat: {labels}")
    return out

