"""Estimators with honest uncertainty: persona decomposition, meta-data benefit, post-training
misalignment, population- vs individual-level choice prediction, and study planning.

Names are imported on first use (scipy and statsmodels are not light), so importing one
piece, such as `Sesoi`, stays fast."""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "._choices": ["ChoicePrediction", "choice_prediction", "paper_accuracy"],
    "._sesoi": ["DEFAULT_SESOI", "Sesoi"],
    "._inference": ["fmt_p", "MIN_PARTICIPANTS", "Pooled", "adjust", "cluster_mean_estimate", "mean_estimate",
                    "minimum_detectable_effect", "pool", "tost_p"],
    "._plan": ["ExperimentVariance", "PairPlan", "PersonaPlan", "Plan", "plan", "plan_pair", "plan_personas"],
    "._misalignment": ["Misalignment", "ModelPair", "paper_misalignment_d", "post_training_misalignment",
                       "read_categories", "read_pairs"],
    "._personas": ["BY", "check_by", "Equivalence", "StrategyComparison", "compare_strategies", "MetadataBenefit",
                   "PersonaDecomposition", "decompose_personas", "metadata_benefit", "participant_means",
                   "persona_table", "Verdict", "Multiplicity", "with_multiplicity"],
    "._stats": ["Estimate", "cohens_d"],
    "._trend": ["Trend", "TrendPair", "generation_trend", "size_trend"],
    "._agents": ["AgentComparison", "compare_agents", "correlation", "index_columns"],
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'surrogate.analysis' has no attribute {name!r}")
