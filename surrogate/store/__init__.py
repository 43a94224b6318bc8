"""The on-disk contract: result folders (parts, manifests, labels, resumable commits), job
records, and the file primitives every writer uses (atomic replacement, exclusive
temporaries, writer locks). See `_folder` for what a result folder guarantees."""

from ._files import atomic_write_bytes, atomic_write_json, exclusive_file, writer_lock
from ._folder import (CHOICES, IDENTITY, JOB, LABELS, RESPONSES, Entry, ResultFolder, StoreError, UnitIndex, Writer,
                      check_labels, claim_output, file_digest, identity_of, read_choices, read_responses)

__all__ = ["CHOICES", "IDENTITY", "JOB", "LABELS", "RESPONSES", "Entry", "ResultFolder", "StoreError", "UnitIndex",
           "Writer", "atomic_write_bytes", "atomic_write_json", "check_labels", "claim_output", "exclusive_file",
           "file_digest", "identity_of", "read_choices", "read_responses", "writer_lock"]
