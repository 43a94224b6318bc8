"""Estimators with honest uncertainty: persona decomposition, meta-data benefit, post-training
misalignment, and population- vs individual-level choice prediction."""

from ._choices import ChoicePrediction, choice_prediction, paper_accuracy
from ._inference import (
    DEFAULT_SESOI,
    Sesoi,
    fmt_p,
    MIN_PARTICIPANTS,
    Pooled,
    adjust,
    cluster_mean_estimate,
    mean_estimate,
    minimum_detectable_effect,
    pool,
    tost_p,
)
from ._plan import PairPlan, PersonaPlan, Plan, plan, plan_pair, plan_personas
from ._misalignment import Misalignment, ModelPair, post_training_misalignment, read_categories, read_pairs
from ._personas import (
    Equivalence,
    StrategyComparison,
    compare_strategies,
    MetadataBenefit,
    PersonaDecomposition,
    decompose_personas,
    metadata_benefit,
    participant_means,
    persona_table,
)
from ._stats import Estimate, cohens_d

__all__ = [
    "DEFAULT_SESOI", "PairPlan", "PersonaPlan", "Plan", "plan", "plan_pair", "plan_personas", "Equivalence", "Sesoi", "StrategyComparison", "compare_strategies", "fmt_p", "MIN_PARTICIPANTS", "ChoicePrediction", "Estimate", "MetadataBenefit", "Misalignment",
    "ModelPair", "PersonaDecomposition", "Pooled", "adjust", "choice_prediction", "cohens_d",
    "decompose_personas", "cluster_mean_estimate", "mean_estimate", "metadata_benefit",
    "minimum_detectable_effect", "paper_accuracy", "participant_means", "persona_table", "pool", "post_training_misalignment",
    "read_categories", "read_pairs", "tost_p",
]
