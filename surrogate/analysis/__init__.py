"""Estimators with honest uncertainty: persona decomposition, meta-data benefit, post-training
misalignment, and population- vs individual-level choice prediction."""

from ._choices import ChoicePrediction, choice_prediction
from ._misalignment import Misalignment, ModelPair, post_training_misalignment, read_categories, read_pairs
from ._personas import (
    MetadataBenefit,
    MixedModelResult,
    PersonaDecomposition,
    decompose_personas,
    metadata_benefit,
    mixed_model,
    participant_means,
)
from ._stats import Estimate, cluster_bootstrap, cohens_d, paired_dz, paired_permutation_p

__all__ = [
    "ChoicePrediction", "Estimate", "MetadataBenefit", "Misalignment", "MixedModelResult", "ModelPair",
    "PersonaDecomposition", "choice_prediction", "cluster_bootstrap", "cohens_d", "decompose_personas",
    "metadata_benefit", "mixed_model", "paired_dz", "paired_permutation_p", "participant_means",
    "post_training_misalignment", "read_categories", "read_pairs",
]
