"""Model organisms: the small models surrogate trained on real people, shipped with the
package with their cards and a sample of participants they never saw; and the built-in
names that find them (`organism-*`, and `demo-*`, random-weight models built locally on
first use). Jobs resolve these names to folders (`resolve_model`) before a model is loaded;
the build that makes the organisms is the `organisms build` job (surrogate.jobs.organisms).
"""

from __future__ import annotations

from ._defaults import (BASE, DEFAULT_MODELS, DEFAULT_PAIRS, DEFAULT_PERSONAS, GROUPS, IN, ORGANISM_NOTICE, OUT,
                        OUT_CHOICE, OUT_TEXT, SYNTHETIC, default_data, sample_groups, study_group, write_categories,
                        write_pairs)
from ._names import (DEMO_MODELS, MODEL_MAP, ORGANISMS, is_builtin, model_map, organisms_dir, resolve_model, resolved,
                     sample_dir,
                     trained_participants)

__all__ = ["BASE", "DEFAULT_PAIRS", "GROUPS", "IN", "OUT", "OUT_CHOICE", "OUT_TEXT", "SYNTHETIC", "sample_groups",
           "study_group", "write_categories",
           "write_pairs", "DEFAULT_MODELS", "DEFAULT_PERSONAS", "DEMO_MODELS", "ORGANISMS", "ORGANISM_NOTICE", "default_data",
           "MODEL_MAP", "is_builtin", "model_map", "organisms_dir", "resolve_model", "resolved", "sample_dir", "trained_participants"]
