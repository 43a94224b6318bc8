"""Participant agents: replay recorded sessions, score closed option sets, play experiments."""

from ._agent import ParticipantAgent, ScoringError, choice_rows, choice_table, make_agents, replay_agents, response_rows
from ._options import MAX_CHARS, MAX_OPTIONS, OptionSets, detect_option_sets, slots
from ._play import agreement_with_replay, play_model, simulated_people

__all__ = [
    "MAX_CHARS", "MAX_OPTIONS", "OptionSets", "ParticipantAgent", "ScoringError", "agreement_with_replay", "choice_rows",
    "choice_table", "detect_option_sets", "make_agents", "play_model", "replay_agents", "response_rows",
    "simulated_people", "slots",
]
