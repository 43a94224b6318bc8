"""Estimators with honest uncertainty: persona decomposition, meta-data benefit, post-training
misalignment and its trends, population- vs individual-level choice prediction, agents
against people, and study planning.

Names are imported on first use (scipy and statsmodels are not light), so importing one
piece, such as `Sesoi`, stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._imports import lazy_exports

_NAMES = {
    "._choices": ["ChoicePrediction", "choice_prediction", "paper_accuracy"],
    "._sesoi": ["DEFAULT_SESOI", "Sesoi"],
    "._inference": ["fmt_p", "MIN_PARTICIPANTS", "Pooled", "adjust", "cluster_mean_estimate", "mean_estimate",
                    "minimum_detectable_effect", "pool", "tost_p"],
    "._plan": ["ExperimentVariance", "PairPlan", "PersonaPlan", "Plan", "design_plan", "plan_pair", "plan_personas"],
    "._misalignment": ["Generation", "Misalignment", "ModelPair", "paper_misalignment_d", "post_training_misalignment",
                       "read_categories", "read_pairs"],
    "._personas": ["BY", "SESSION", "check_by", "unit_column", "Equivalence", "StrategyComparison", "compare_strategies", "MetadataBenefit",
                   "PersonaDecomposition", "decompose_personas", "metadata_benefit", "participant_means",
                   "persona_table", "Verdict", "Multiplicity", "with_multiplicity", "cr2_mean_estimate"],
    "._stats": ["Estimate", "cohens_d"],
    "._trend": ["Trend", "TrendPair", "generation_trend", "size_trend"],
    "._agents": ["AgentComparison", "agent_comparison", "correlation", "index_columns"],
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

if TYPE_CHECKING:
    from ._choices import ChoicePrediction, choice_prediction, paper_accuracy
    from ._sesoi import DEFAULT_SESOI, Sesoi
    from ._inference import MIN_PARTICIPANTS, Pooled, adjust, cluster_mean_estimate, fmt_p, mean_estimate, minimum_detectable_effect, pool, tost_p
    from ._plan import ExperimentVariance, PairPlan, PersonaPlan, Plan, design_plan, plan_pair, plan_personas
    from ._misalignment import Generation, Misalignment, ModelPair, paper_misalignment_d, post_training_misalignment, read_categories, read_pairs
    from ._personas import BY, Equivalence, MetadataBenefit, Multiplicity, PersonaDecomposition, SESSION, StrategyComparison, Verdict, check_by, compare_strategies, cr2_mean_estimate, decompose_personas, metadata_benefit, participant_means, persona_table, unit_column, with_multiplicity
    from ._stats import Estimate, cohens_d
    from ._trend import Trend, TrendPair, generation_trend, size_trend
    from ._agents import AgentComparison, agent_comparison, correlation, index_columns

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
