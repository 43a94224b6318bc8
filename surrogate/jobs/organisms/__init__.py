"""`surrogate organisms build`: the model organisms, trained reproducibly from Psych-201 and
synthetic participants, evaluated, with their cards."""

from .build import OrganismBuild, OrganismRecipe, build_organisms, evaluate_organisms, read_json_gz, write_sample_data

__all__ = ["OrganismBuild", "OrganismRecipe", "build_organisms", "evaluate_organisms", "read_json_gz",
           "write_sample_data"]
