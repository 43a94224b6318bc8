"""Persona strategies: how a persona becomes conditioning for a model.

A strategy renders a whole group of participants at once, because the controls need the
group: `shuffled` gives each participant someone else's persona, `population` gives everyone
the group's pooled persona. Strategies are selected by name from an explicit mapping
(`builtin_strategies()`, extendable by the caller), or as `module:attribute` import paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from .._errors import OptionError
from .._imports import load_object
from ..data import Participant, parse_value
from ._persona import PAPER_FIELDS, Persona, paper_order, question_for


class Conditioning(BaseModel):
    """What a strategy gives one participant: text before the transcript and/or a system
    message, the persona fields it used, and whose persona it was (None: their own): the
    donor's participant id and experiment (participant ids repeat across the experiments of
    some studies, so the id alone does not say who)."""

    model_config = ConfigDict(frozen=True)
    prefix: str = ""
    system: str | None = None
    fields: tuple[str, ...] = ()
    donor: str | None = None
    donor_experiment: str | None = None


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

WITHHELD_INTERVIEW = "I would rather not say."
WITHHELD = "[withheld]"


class _PerParticipant:
    """A strategy that renders each participant's own persona on its own. `withheld` is what
    its placebo (the same form, values withheld) writes in place of each value."""

    name = "base"
    withheld = WITHHELD

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
    withheld = WITHHELD_INTERVIEW

    def render_persona(self, persona: Persona) -> Conditioning:
        all_fields = persona.fields()
        used = {k: all_fields[k] for k, _ in PAPER_FIELDS if k in all_fields}
        return Conditioning(prefix=interview_text(used), fields=tuple(used))


@dataclass(frozen=True)
class FieldsInterview(_PerParticipant):
    """Interview format over one group of fields (all of them, not only the paper's)."""

    group: str = "demographics"
    withheld = WITHHELD_INTERVIEW

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


def _withheld(persona: Persona, answer: str) -> Persona:
    """The same persona (same fields, same groups) with every value replaced by `answer`."""
    groups = ("demographics", "clinical", "questionnaires", "condition", "other")
    return persona.model_copy(update={g: {k: answer for k in getattr(persona, g)} for g in groups})


@dataclass(frozen=True)
class Placebo(_PerParticipant):
    """The participant's own persona in the base strategy's form with every value withheld
    (`placebo`: the paper's interview questions, each answered "I would rather not say."):
    a prefix of the same shape and fields that carries no information. N - placebo is what
    any persona-shaped prefix does; it is also the own half of the form-matched control
    (`shuffled-placebo` is the swap partner's half)."""

    base: _PerParticipant = field(default_factory=Interview)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "placebo" if isinstance(self.base, Interview) else f"placebo-{self.base.name}"

    def render_persona(self, persona: Persona) -> Conditioning:
        own = self.base.render_persona(persona)
        if not own.fields:
            return Conditioning()
        form = self.base.render_persona(_withheld(persona, self.base.withheld))
        return form.model_copy(update={"fields": own.fields})


def root_strategy(strategy: _PerParticipant) -> _PerParticipant:
    """The strategy whose fields decide who has a persona: the base of a placebo."""
    return strategy.base if isinstance(strategy, Placebo) else strategy


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


class Stratify(BaseModel):
    """`FIELD` (swap within its levels) or `FIELD:K` (a numeric field cut into K bins of equal
    count within each experiment, e.g. `age:5` for quintiles)."""

    model_config = ConfigDict(frozen=True)
    field: str
    bins: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Stratify":
        name, sep, k = text.rpartition(":")
        if not sep:
            name, k = text, ""
        if not name.strip():
            raise OptionError("stratify", text, "expected FIELD or FIELD:K")
        if not sep:
            return cls(field=name.strip())
        if not k.strip().isdigit() or int(k) < 2:
            raise OptionError("stratify", text, "K (the number of bins) must be an integer >= 2")
        return cls(field=name.strip(), bins=int(k))

    def __str__(self) -> str:
        return self.field if self.bins is None else f"{self.field}:{self.bins}"

    def lacking(self, people: Sequence[Participant]) -> list[Participant]:
        """Participants without the field: they have no level, so nobody to swap with."""
        return [p for p in people if p.metadata.get(self.field) is None]

    def levels(self, people: Sequence[Participant]) -> list[str | None]:
        """Each participant's level; None for a participant who lacks the field (never a
        level of its own: such participants stay unpaired and are counted)."""
        values = [p.metadata.get(self.field) for p in people]
        if self.bins is None:
            return [None if v is None else str(v) for v in values]
        present = [(i, v) for i, v in enumerate(values) if v is not None]
        bad = next(((i, v) for i, v in present if not isinstance(v, (int, float)) or isinstance(v, bool)), None)
        if bad is not None:
            p = people[bad[0]]
            raise OptionError("stratify", str(self), f"participant {p.participant} ({p.study}, {p.experiment}) has a "
                             f"non-numeric {self.field!r} ({bad[1]!r}); bins need numbers")
        out: list[str | None] = [None] * len(values)
        if present:
            # Equal-count bins by rank (ties broken by order), so every bin holds n/K participants.
            numbers = np.asarray([v for _, v in present], dtype=float)
            ranks = np.argsort(np.argsort(numbers, kind="stable"), kind="stable")
            for (i, _), r in zip(present, ranks):
                out[i] = f"bin{int(r * self.bins // len(present)) + 1}of{self.bins}"
        return out


def swap_pairing(participants: Sequence[Participant], eligible: Sequence[bool], *, seed: int = 0,
                 stratify: Stratify | None = None, replicate: int = 0) -> list[int | None]:
    """Whose persona each participant receives (an index), or None: the seeded swaps of
    `Shuffled`, drawn per experiment (and per stratum) among the eligible participants only.
    Participants alone in their stratum stay unpaired (None), as do the ineligible and, under
    `stratify`, those who lack its field."""
    donor: list[int | None] = [None] * len(participants)
    for idx in _groups(participants):
        members = [i for i in idx if eligible[i]]
        strata: dict[str, list[int]] = defaultdict(list)
        levels = stratify.levels([participants[i] for i in members]) if stratify else ["all"] * len(members)
        for i, level in zip(members, levels):
            if level is not None:
                strata[level].append(i)
        for level, group in sorted(strata.items()):
            if len(group) < 2:
                continue  # nobody to swap with: unpaired, excluded by the analysis and counted there
            p0 = participants[group[0]]
            key = f"{p0.study}/{p0.experiment}" + (f"/{stratify}={level}" if stratify else "") \
                + (f"/replicate={replicate}" if replicate else "")
            perm = derangement(len(group), _seed(seed, key))
            for i, j in zip(group, perm):
                donor[i] = group[j]
    return donor


@dataclass(frozen=True)
class Shuffled:
    """Each participant with metadata gets the persona of another participant with metadata
    from the same experiment, rendered by the same strategy (`shuffled`: the paper's interview;
    `shuffled-narrative`, `shuffled-placebo`, ...: that strategy): a seeded derangement of
    random swaps, nobody keeps their own. The control for individual-level information.

    Participants whose persona would be empty (under the base strategy, and under every
    strategy in `basis`) are left out *before* the swaps are drawn and get no persona (so
    they are not donors either). Every shuffled control of one run shares `basis` (the
    strategies of all its shuffled controls), hence one pairing: strategies are compared on
    the same swap cycles, and `shuffled-placebo` swaps the same partners as `shuffled`.
    `stratify` swaps only within a field's levels (or bins); a participant alone in a level
    stays unpaired. Experiments with a single participant are pooled within their study."""

    base: _PerParticipant = field(default_factory=Interview)
    seed: int = 0
    stratify: Stratify | str | None = None
    replicate: int = 0  # k > 0: an independent pairing, labelled `shuffled.{k + 1}`
    basis: tuple[_PerParticipant, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.stratify, str):  # `Shuffled(stratify="age:5")` reads like the option
            object.__setattr__(self, "stratify", Stratify.parse(self.stratify))

    @property
    def name(self) -> str:
        name = _control_name("shuffled", self.base)
        return name if self.replicate == 0 else f"{name}.{self.replicate + 1}"

    def render(self, participants: Sequence[Participant]) -> list[Conditioning]:
        personas = [Persona.from_participant(p) for p in participants]
        own = [self.base.render_persona(pe) for pe in personas]
        roots = self.basis or (root_strategy(self.base),)
        eligible = [all(r.render_persona(pe).fields for r in roots) for pe in personas]
        if self.stratify is not None and not any(self.stratify.field in p.metadata for p in participants):
            present = sorted({k for p in participants for k in p.metadata})
            raise OptionError("stratify", self.stratify.field, "no participant has this metadata field; "
                             f"fields present: {', '.join(present) or 'none'}")
        donors = swap_pairing(participants, eligible, seed=self.seed, stratify=self.stratify,
                              replicate=self.replicate)
        return [Conditioning() if d is None else own[d].model_copy(
                    update={"donor": participants[d].participant, "donor_experiment": participants[d].experiment})
                for d in donors]


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


PLACEBO_ANSWER = WITHHELD_INTERVIEW


# --- selection by name -------------------------------------------------------------------

ALIASES = {"on": ["interview"], "off": ["none"], "both": ["none", "interview"]}
MAX_DERANGEMENTS = 100
_KINDS = ("shuffled", "population", "placebo")
_REPLICATE = re.compile(r"^(.*)\.(\d+)$")


def builtin_strategies(seed: int = 0, stratify: str | Stratify | None = None
                       ) -> dict[str, Callable[[], PersonaStrategy]]:
    """The built-in strategies by name (`seed` draws the shuffled derangement). Copy and
    extend this mapping to add your own. Controls of other strategies are named
    `shuffled-X`, `population-X`, `placebo-X` and `shuffled-placebo[-X]` (see
    `resolve_strategies`)."""
    strat = Stratify.parse(stratify) if isinstance(stratify, str) else stratify
    return {
        "none": NoPersona,
        "interview": Interview,
        "narrative": Narrative,
        "demographics": lambda: FieldsInterview("demographics"),
        "questionnaires": lambda: FieldsInterview("questionnaires"),
        "system": SystemPersona,
        "shuffled": lambda: Shuffled(seed=seed, stratify=strat),
        "population": Population,
        "placebo": Placebo,
    }


def matched_control(matched: str, kind: str = "shuffled") -> str:
    """The name of `kind`'s control for a matched strategy: `shuffled` for interview,
    `shuffled-narrative` for narrative, `shuffled-placebo` for placebo, ..."""
    return kind if matched == "interview" else f"{kind}-{matched}"


def control_renders(control: str) -> tuple[str, str] | None:
    """(kind, strategy) a control's name says it renders: `shuffled.2` -> (shuffled,
    interview), `shuffled-narrative` -> (shuffled, narrative); None for other names."""
    m = _REPLICATE.match(control)
    name = m.group(1) if m else control
    for kind in ("shuffled", "population"):
        if name == kind:
            return kind, "interview"
        if name.startswith(kind + "-"):
            return kind, name[len(kind) + 1:]
    return None


def resolve_strategies(
    spec: str | Sequence[str],
    registry: Mapping[str, Callable[[], PersonaStrategy]] | None = None,
    *,
    seed: int = 0,
    stratify: str | Stratify | None = None,
    derangements: int = 1,
) -> list[PersonaStrategy]:
    """Strategies from names: `interview,shuffled`, `on`/`off`/`both`, `module:Class` or
    `file.py:Class`, and controls of any per-participant strategy X: `shuffled-X`,
    `population-X`, `placebo-X`, `shuffled-placebo-X` (X = interview is written without the
    suffix: `shuffled`, `placebo`, `shuffled-placebo`). `derangements` > 1 adds independent
    pairings of every shuffled control (`shuffled.2`, ...). All shuffled controls share one
    pairing (see `Shuffled`)."""
    if not 1 <= derangements <= MAX_DERANGEMENTS:
        raise OptionError("derangements", derangements, f"expected 1 to {MAX_DERANGEMENTS} independent pairings")
    strat = Stratify.parse(stratify) if isinstance(stratify, str) else stratify
    registry = builtin_strategies(seed, strat) if registry is None else registry
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise OptionError("persona", "", "no persona strategy given (e.g. none,interview,shuffled)")

    def per_participant(name: str) -> _PerParticipant | None:
        for kind in ("placebo",):
            if name == kind:
                return Placebo()
            if name.startswith(kind + "-"):
                inner = per_participant(name[len(kind) + 1:])
                return None if inner is None or isinstance(inner, Placebo) else Placebo(inner)
        if name in registry and name not in _KINDS and name != "none":
            made = registry[name]()
            return made if isinstance(made, _PerParticipant) else None
        return None

    def one(name: str) -> list[PersonaStrategy]:
        m = _REPLICATE.match(name)
        replicate = int(m.group(2)) - 1 if m and int(m.group(2)) >= 2 else 0
        bare = m.group(1) if m and replicate else name
        for kind in ("shuffled", "population"):
            if bare == kind or bare.startswith(kind + "-"):
                inner = Interview() if bare == kind else per_participant(bare[len(kind) + 1:])
                if inner is None:
                    break
                if kind == "population":
                    return [Population(inner)]
                if replicate:
                    return [Shuffled(inner, seed=seed, stratify=strat, replicate=replicate)]
                return [Shuffled(inner, seed=seed, stratify=strat, replicate=k) for k in range(derangements)]
        if name in registry and name not in _KINDS:
            return [registry[name]()]
        own = per_participant(name)
        if own is not None:
            return [own]
        if ":" in name:
            obj = load_object(name)
            strategy = obj() if isinstance(obj, type) else obj
            if not isinstance(strategy, PersonaStrategy):
                raise TypeError(f"{name} is not a persona strategy (needs .name and .render)")
            return [strategy]
        known = [k for k in registry if k not in _KINDS]
        raise ValueError(f"unknown persona strategy {name!r}; known: {', '.join([*registry, *ALIASES])}, the "
                         f"controls shuffled-X, population-X, placebo-X, shuffled-placebo-X of any of "
                         f"{', '.join(known)}, or module:Class")

    out: list[PersonaStrategy] = []
    for name in names:
        for n in ALIASES.get(name, [name]):
            out += one(n)
    # One pairing for every shuffled control: eligibility under all their strategies.
    roots: dict[str, _PerParticipant] = {}
    for s in out:
        if isinstance(s, Shuffled):
            r = root_strategy(s.base)
            roots.setdefault(r.name, r)
    if len(roots) > 1:
        basis = tuple(roots.values())
        out = [dataclasses.replace(s, basis=basis) if isinstance(s, Shuffled) else s for s in out]
    labels = [s.name for s in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"persona strategies repeat: {labels}")
    return out
