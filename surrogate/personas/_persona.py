"""A persona is data: a participant's metadata sorted by what it describes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..data import Participant

# The paper's persona fields and questions, in the paper's order.
PAPER_FIELDS: tuple[tuple[str, str], ...] = (
    ("age", "What is your age?"),
    ("gender", "What is your gender?"),
    ("nationality", "What is your nationality?"),
    ("education", "What is your highest level of education?"),
    ("clinical diagnosis", "Do you have any clinical diagnoses?"),
    ("STICSA-T somatic", "What is your STICSA-T somatic score?"),
    ("STICSA-T cognitive", "What is your STICSA-T cognitive score?"),
    ("STAI-S", "What is your STAI-S score?"),
    ("STAI-T", "What is your STAI-T score?"),
    ("IUS", "What is your IUS score?"),
    ("RRQ", "What is your RRQ score?"),
    ("AUDIT", "What is your AUDIT score?"),
    ("DAST", "What is your DAST score?"),
    ("PSWQ", "What is your PSWQ score?"),
    ("GAD-7", "What is your GAD-7 score?"),
    ("SDS", "What is your SDS score?"),
    ("OCI", "What is your OCI score?"),
    ("PHQ-9", "What is your PHQ-9 score?"),
    ("PHQ-8", "What is your PHQ-8 score?"),
    ("BAS Drive", "What is your BAS Drive score?"),
    ("BAS Fun Seeking", "What is your BAS Fun Seeking score?"),
    ("BAS Reward Responsiveness", "What is your BAS Reward Responsiveness score?"),
    ("BDI-II", "What is your BDI-II score?"),
    ("BIS-11", "What is your BIS-11 score?"),
    ("BIS-10", "What is your BIS-10 score?"),
)
PAPER_QUESTIONS = dict(PAPER_FIELDS)

DEMOGRAPHIC = ("age", "gender", "sex", "nationality", "country", "education", "language",
               "handedness", "income", "occupation")
CLINICAL = ("clinical diagnosis", "diagnosis")
CONDITION = ("condition", "group", "session", "block_condition")
_PAPER_QUESTIONNAIRES = tuple(name for name, _ in PAPER_FIELDS[5:])


def question_for(field: str) -> str:
    """The paper's question for a field, or the same form for fields it did not have."""
    if field in PAPER_QUESTIONS:
        return PAPER_QUESTIONS[field]
    if field in DEMOGRAPHIC:
        return f"What is your {field}?"
    if field in CLINICAL:
        return "Do you have any clinical diagnoses?"
    if field in CONDITION:
        return f"Which {field} were you assigned to?"
    return f"What is your {field} score?"


def paper_order(fields: list[str]) -> list[str]:
    """Paper fields in the paper's order, then the rest in their own order."""
    known = [f for f, _ in PAPER_FIELDS if f in fields]
    return known + [f for f in fields if f not in PAPER_QUESTIONS]


class Persona(BaseModel):
    """One participant's metadata, typed. Values are display text; `values` are parsed.

    Per-trial lists (reaction times) are not part of a persona: they are behaviour, not
    traits. Numeric fields that are neither demographic, clinical nor a condition are
    treated as questionnaire scores (e.g. `FACSIMILE A/D`).
    """

    model_config = ConfigDict(frozen=True)

    demographics: dict[str, str] = {}
    clinical: dict[str, str] = {}
    questionnaires: dict[str, str] = {}
    condition: dict[str, str] = {}
    other: dict[str, str] = {}
    values: dict[str, Any] = {}

    @classmethod
    def from_participant(cls, p: Participant) -> "Persona":
        return cls.from_metadata(p.metadata, p.metadata_text)

    @classmethod
    def from_metadata(cls, values: dict[str, Any], text: dict[str, str] | None = None) -> "Persona":
        text = text if text is not None else {k: str(v) for k, v in values.items()}
        groups: dict[str, dict[str, str]] = {k: {} for k in
                                             ("demographics", "clinical", "questionnaires", "condition", "other")}
        kept: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, list):
                continue
            if key in DEMOGRAPHIC:
                group = "demographics"
            elif key in CLINICAL:
                group = "clinical"
            elif key in CONDITION:
                group = "condition"
            elif key in _PAPER_QUESTIONNAIRES or isinstance(value, (int, float)) and not isinstance(value, bool):
                group = "questionnaires"
            else:
                group = "other"
            groups[group][key] = text[key]
            kept[key] = value
        return cls(values=kept, **groups)

    def fields(self) -> dict[str, str]:
        """All fields, display text, in a stable order (paper order first)."""
        merged = {**self.demographics, **self.clinical, **self.questionnaires, **self.condition,
                  **self.other}
        return {k: merged[k] for k in paper_order(list(merged))}

    @property
    def is_empty(self) -> bool:
        return not self.values
