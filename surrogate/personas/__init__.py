"""Personas (participant metadata as typed data) and strategies that render them."""

from ._persona import PAPER_FIELDS, Persona, paper_order, question_for
from ._strategies import (
    ALIASES,
    Conditioning,
    FieldsInterview,
    Interview,
    Narrative,
    NoPersona,
    PersonaStrategy,
    Placebo,
    Population,
    Shuffled,
    SystemPersona,
    MAX_DERANGEMENTS,
    Stratify,
    builtin_strategies,
    control_renders,
    derangement,
    matched_control,
    root_strategy,
    swap_pairing,
    describe,
    interview_text,
    pooled_persona,
    resolve_strategies,
)

__all__ = [
    "ALIASES", "Conditioning", "FieldsInterview", "Interview", "Narrative", "NoPersona",
    "PAPER_FIELDS", "Persona", "PersonaStrategy", "Placebo", "Population", "Shuffled", "SystemPersona",
    "MAX_DERANGEMENTS", "Stratify", "builtin_strategies", "control_renders", "derangement", "matched_control",
    "root_strategy", "swap_pairing", "describe", "interview_text", "paper_order",
    "pooled_persona", "question_for", "resolve_strategies",
]
