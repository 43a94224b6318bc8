"""Psych-201 data: participants, tokenizer-free transcripts, loaders."""

from ._load import (Dataset, InvalidRecord, discover, from_hf_dataset, limits, load, load_hf, shared_psych201,
                    source_records, study_of)
from ._split import Holdout, Split, split_participants
from ._records import DataError, Participant, SourceRef, is_missing, parse_value, participant_from_record
from ._transcript import (
    CLOSE,
    OPEN,
    MarkerError,
    Transcript,
    TruncationConfig,
    paper_clean,
    parse_spans,
    prepare_transcript,
)

__all__ = [
    "CLOSE", "OPEN", "DataError", "Dataset", "InvalidRecord", "MarkerError", "Participant",
    "SourceRef", "limits", "participant_from_record", "source_records", "Holdout", "Split", "split_participants", "Transcript", "TruncationConfig", "discover", "from_hf_dataset", "is_missing",
    "load", "load_hf", "shared_psych201", "paper_clean", "parse_spans", "parse_value", "prepare_transcript",
    "study_of",
]
