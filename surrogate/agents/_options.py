"""Which responses come from a small closed set, and what the set is.

Psych-201 writes one trial per line. A *slot* is a response's position within its line
(the two-step task has two per line: first stage, second stage), and a slot's options are
the distinct responses seen there. A slot is closed when it has few, short distinct
responses: across the whole experiment when labels are fixed (`left/down/right`), else per
participant when labels are randomised per participant (`J/F` for one, `R/W` for another).
Labels count as fixed when at least half of the participants use every option of the union.
Declared option sets override detection.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from ..data import Participant, Transcript

MAX_OPTIONS = 6
MAX_CHARS = 16


class OptionSets(BaseModel):
    """Per participant (by key), the option set of each response, or the reason there is none."""

    model_config = ConfigDict(frozen=True)
    options: dict[tuple[str, str, str], tuple[tuple[str, ...], ...]]
    skipped: dict[tuple[str, str, str], str]
    shared: dict[tuple[str, str], bool]  # (study, experiment) -> labels fixed across participants

    def for_participant(self, p: Participant) -> tuple[tuple[str, ...], ...] | None:
        return self.options.get(p.key)


def slots(transcript: Transcript) -> list[int]:
    """Each response's index within its line."""
    out, line_start, k = [], -1, 0
    for s, _ in transcript.spans:
        start = transcript.text.rfind("\n", 0, s)
        k = k + 1 if start == line_start else 0
        line_start = start
        out.append(k)
    return out


def _numeric(text: str) -> bool:
    """Quantities ('10', '10 coins') are values on a scale, not labels."""
    return any(ch.isdigit() for ch in text)


def _closed(values: set[str], max_options: int, max_chars: int) -> bool:
    return 2 <= len(values) <= max_options and all(len(v) <= max_chars for v in values)


def detect_option_sets(
    participants: Sequence[Participant],
    transcripts: Sequence[Transcript],
    *,
    declared: Mapping[str, Sequence[str]] | None = None,
    max_options: int = MAX_OPTIONS,
    max_chars: int = MAX_CHARS,
) -> OptionSets:
    """Option sets for closed-set experiments. `declared` maps a study name to its options
    (applied to every response of that study)."""
    declared = declared or {}
    by_exp: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(participants):
        by_exp[(p.study, p.experiment)].append(i)
    options: dict = {}
    skipped: dict = {}
    shared: dict = {}
    for (study, exp), idx in by_exp.items():
        if study in declared:
            opts = tuple(declared[study])
            for i in idx:
                t, p = transcripts[i], participants[i]
                bad = [r for r in t.responses if r not in opts]
                if bad:
                    skipped[p.key] = f"response {bad[0]!r} is not among the declared options {opts}"
                else:
                    options[p.key] = (opts,) * len(t.spans)
            shared[(study, exp)] = True
            continue
        slot_of = [slots(transcripts[i]) for i in idx]
        union: dict[int, set[str]] = defaultdict(set)
        for i, sl in zip(idx, slot_of):
            for k, r in zip(sl, transcripts[i].responses):
                union[k].add(r)
        # Fixed labels: a small union that most participants use in full. (Randomised labels
        # make a union that no single participant uses.)
        users_of_all = sum(
            all({r for k2, r in zip(sl, transcripts[i].responses) if k2 == k} == v for k, v in union.items())
            for i, sl in zip(idx, slot_of))
        fixed = (bool(union) and all(_closed(v, max_options, max_chars) for v in union.values())
                 and 2 * users_of_all >= len(idx))
        shared[(study, exp)] = fixed
        for i, sl in zip(idx, slot_of):
            p, t = participants[i], transcripts[i]
            if fixed:
                sets = {k: tuple(sorted(v)) for k, v in union.items()}
            else:
                own: dict[int, set[str]] = defaultdict(set)
                for k, r in zip(sl, t.responses):
                    own[k].add(r)
                # Randomised labels: every slot closed for this participant, each label used
                # repeatedly (a free-text task repeats few of its answers), and labels rather
                # than quantities (a participant's few amounts on a scale are not the scale).
                if not own or not all(_closed(v, max_options, max_chars) for v in own.values()) \
                        or len(t.responses) < 3 * sum(len(v) for v in own.values()) \
                        or any(_numeric(r) for v in own.values() for r in v):
                    skipped[p.key] = "responses are not from a small closed set"
                    continue
                sets = {k: tuple(sorted(v)) for k, v in own.items()}
            options[p.key] = tuple(sets[k] for k in sl)
    return OptionSets(options=options, skipped=skipped, shared=shared)
