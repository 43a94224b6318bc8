"""Programmable experiments, generative cognitive models and synthetic participants."""

from ._base import (
    LABEL_POOL,
    Experiment,
    MeasuresBehaviour,
    Feedback,
    Session,
    SessionRecord,
    Trial,
    context_before,
    draw_labels,
    play,
    render,
    trial_line,
    with_condition,
)
from ._declarative import COGNITIVE_MODELS, DeclarativeExperiment, ExperimentSpec, load_experiment_spec
from ._fit import fit_session
from ._indices import delay_indices, learning_indices, lottery_indices
from ._cognitive import CognitiveModel, HyperbolicDiscounter, ParamSpec, ProspectTheory, QLearner, softmax
from ._oracle import OracleBackend
from ._paradigms import BUILTIN, IntertemporalChoice, MixedLotteries, RestlessBandit, switch_rate
from ._tables import behaviour_rows, session_index, summarize_behaviour, trial_rows
from ._synthetic import (
    DEFAULT_TRAITS,
    SyntheticSpec,
    TraitLink,
    TraitSpec,
    choice_nlls,
    records_to_jsonl,
    simulate_synthetic,
)

__all__ = [
    "BUILTIN", "DEFAULT_TRAITS", "play", "LABEL_POOL", "CognitiveModel", "Experiment", "MeasuresBehaviour", "Feedback",
    "HyperbolicDiscounter", "IntertemporalChoice", "OracleBackend", "switch_rate", "MixedLotteries", "ParamSpec", "ProspectTheory",
    "QLearner", "RestlessBandit", "Session", "SessionRecord", "SyntheticSpec", "TraitLink",
    "TraitSpec", "Trial", "choice_nlls", "context_before", "draw_labels", "records_to_jsonl",
    "render", "simulate_synthetic", "softmax", "trial_line", "with_condition", "COGNITIVE_MODELS",
    "DeclarativeExperiment", "ExperimentSpec", "load_experiment_spec", "fit_session", "delay_indices",
    "learning_indices", "lottery_indices", "behaviour_rows", "session_index", "summarize_behaviour", "trial_rows",
]
