"""The options of surrogate's commands, declared once.

Each group is a pydantic model: its fields (name, type, default, range, help) are the keyword
arguments of the Python functions (`surrogate.run(..., chat="off", studies=[...])`) and, through
`cli_options`, the command line's options (`--chat off --studies ...`), so the two can never
drift. A bad value is refused where it is parsed, by the field's name: `chat` in Python,
`--chat` on the command line. `ScoringArgs` and `AnalysisArgs` mirror the models for type
checkers and IDEs (a test keeps them equal).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._errors import OptionError
from .analysis import BY, DEFAULT_SESOI, Sesoi
from .data import TruncationConfig
from .models import ChatMode, DType
from .personas import MAX_DERANGEMENTS, Stratify

_PAPER_CUT = TruncationConfig.model_fields["max_chars"].default


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """`K/N` with 0 <= K < N (a SLURM array task's share of the units)."""
    if text is None or isinstance(text, tuple):
        return text
    k, sep, n = str(text).partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 0 <= shard[0] < shard[1]:
        raise OptionError("shard", text, "expected K/N with 0 <= K < N (e.g. 0/4)")
    return shard


def parse_option_sets(items: dict[str, list[str]] | list[str] | None) -> dict[str, list[str]]:
    """Declared closed option sets: {study: options}, or `STUDY=a,b,c` strings."""
    if items is None:
        return {}
    pairs = items.items() if isinstance(items, dict) else [_option_set(item) for item in items]
    out = {}
    for study, values in pairs:
        values = [str(v).strip() for v in values if str(v).strip()]
        if len(set(values)) < 2:
            raise OptionError("option_sets", f"{study}={','.join(values)}", "a closed option set needs at least "
                                                                            "two options, all different")
        out[str(study)] = values
    return out


def _option_set(item: str) -> tuple[str, list[str]]:
    study, sep, values = item.partition("=")
    if not sep or not study.strip():
        raise OptionError("option_sets", item, "expected STUDY=a,b,c")
    return study.strip(), values.split(",")


class ScoringOptions(BaseModel):
    """How `run`, `compare-personas` and the default job score: which models how, which
    participants, what each transcript is, how personas are shuffled, how the run is split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # how models are loaded and scored
    chat: ChatMode = Field("auto", description="Score through the chat template: auto (when the tokenizer has one) "
                                               "| on | off.")
    dtype: DType = Field("auto", description="auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps | map (device_map=auto: a model larger "
                                            "than one GPU).")
    backend: Literal["hf", "vllm"] = Field("hf", description="hf (transformers) | vllm (prompt log-probabilities; "
                                                             "GPU, the [vllm] extra).")
    batch_tokens: Optional[int] = Field(None, ge=1, description="Tokens per forward pass (default: 2048 on CPU; on "
                                        "GPU sized from free memory). Longer transcripts run in chunks.")
    attention: str = Field("auto", description="auto (FlashAttention-2 with packed batches on CUDA when flash-attn "
                                               "is installed, else SDPA) | sdpa | eager | flash_attention_2.")
    trust_remote_code: bool = Field(False, description="Run code shipped with a checkpoint (never unless asked).")
    # which participants
    studies: Optional[list[str]] = Field(None, description="Only these studies (repeatable).",
                                         json_schema_extra={"cli": ["--studies", "--study"]})
    max_participants: Optional[int] = Field(None, ge=1, description="Per study, in file order.")
    skip_invalid: bool = Field(False, description="Write bad records to OUT/invalid.jsonl and go on (default: stop at "
                                                  "the first, naming file, line and participant).")
    # what each transcript is
    max_chars: Optional[int] = Field(_PAPER_CUT, ge=0, description="Character cut per transcript (the paper's; 0: "
                                                                   "none).")
    max_tokens: Optional[int] = Field(None, ge=2, description="Token budget per transcript: responses past it are "
                                      "truncated rows (default: the model's context length).")
    persona_outside_cut: bool = Field(False, description="Cut the transcript alone, so every persona scores the "
                                                         "same responses (the paper counts the persona towards the "
                                                         "cut).")
    # how personas are shuffled
    seed: int = Field(0, description="Seed of the shuffled-persona swaps.")
    stratify: Optional[str] = Field(None, description="Swap shuffled personas only within the levels of this metadata "
                                    "field (condition), or within K bins of equal count of a numeric one (age:5).")
    derangements: int = Field(1, ge=1, le=MAX_DERANGEMENTS, description="Independent shuffled pairings; the first is "
                              "the primary one, the others a sensitivity range.")
    # the run
    choices: bool = Field(True, description="Score every option of closed-set experiments (choices.parquet).")
    option_sets: dict[str, list[str]] = Field(default_factory=dict, description="Declare a study's closed option set: "
                                              "STUDY=a,b,c (repeatable).",
                                              json_schema_extra={"cli": ["--option-set", "--options"],
                                                                 "cli_type": list[str]})
    shard: Optional[str] = Field(None, description="K/N: score only the K-th of N deterministic shares of the units "
                                                   "(SLURM arrays; torchrun ranks shard themselves).")
    heldout_only: bool = Field(False, description="Leave out participants a model was trained on (the organisms' "
                                                  "split; an adapter's split.json).")
    checkpoint_seconds: float = Field(30.0, ge=0, allow_inf_nan=False, description="Write finished units to disk at "
                                      "least this often.")

    @field_validator("max_chars")
    @classmethod
    def _zero_is_none(cls, v: int | None) -> int | None:
        return None if v == 0 else v

    @field_validator("option_sets", mode="before")
    @classmethod
    def _option_sets(cls, v: Any) -> dict[str, list[str]]:
        return parse_option_sets(v)

    @field_validator("stratify")
    @classmethod
    def _stratify(cls, v: str | None) -> str | None:
        return None if v is None else str(Stratify.parse(v))

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str | None) -> str | None:
        return None if v is None else "{}/{}".format(*parse_shard(v))

    @property
    def truncation(self) -> TruncationConfig:
        return TruncationConfig(max_chars=self.max_chars, max_tokens=self.max_tokens,
                                count_prefix=not self.persona_outside_cut)

    @property
    def model_options(self) -> dict[str, Any]:
        """What a ModelSpec takes of these options."""
        return self.model_dump(include={"chat", "dtype", "device", "batch_tokens", "attention", "trust_remote_code",
                                        "backend"})


class GridOptions(BaseModel):
    """Which models of a grid manifest (`surrogate run --grid`, `surrogate grid`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grid: list[str] = Field(default_factory=list, description="A grid manifest: paper (the paper's grid, shipped) or "
                            "a TOML file of [[models]] in its format (repeatable; later files add models).")
    family: list[str] = Field(default_factory=list, description="Only these families (repeatable), e.g. Qwen.")
    max_size: Optional[float] = Field(None, gt=0, description="Only models of at most this many billion parameters.")
    types: list[str] = Field(default_factory=list, description="Only these post-training types (repeatable): base, "
                             "instruction-tuned, reasoning, code, math, vision.",
                             json_schema_extra={"cli": ["--type"]})


class AnalysisOptions(BaseModel):
    """How `analyze`, `compare-personas`, `report` and `plan` estimate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["study", "experiment", "study-person"] = Field("study", description=(
        "study: experiments pooled by study, each session (study, experiment, participant id) a participant (Psych-201 "
        "numbers participants per experiment) | experiment | study-person: as study, an id repeated across a study's "
        "experiments one person (sessions clustered)."))
    matched: Optional[str] = Field(None, description="The matched persona strategy, or a comma list "
                                   "(interview,narrative) each against its own shuffled control (default: interview, "
                                   "where it was scored).")
    control: Optional[str] = Field(None, description="The control (default: the matched strategy's own shuffled "
                                                     "control, shuffled-X; population-X is biased by persona "
                                                     "completeness).")
    sesoi: str = Field(str(DEFAULT_SESOI), description="Smallest individual effect of interest for the equivalence "
                       "test: a per cent of the experiment's no-persona NLL per response (1%), nats per response "
                       "(0.01) or nats per token (0.002/token).")
    weight: Literal["participant", "response"] = Field("participant", description="participant: each participant "
                                                       "counts once; response: the per-response scale, each swap "
                                                       "cycle weighted by its members' mean number of responses.")
    n_boot: int = Field(2000, ge=0, description="Bootstrap resamples (choice analysis, the paper's d).")
    resample_seed: int = Field(0, description="Seed of the bootstrap resamples and permutations.")
    separate_labels: bool = Field(False, description="Where one model label names different models in different "
                                                     "folders, read it as LABEL@FOLDER in all but the first (default: "
                                                     "refuse to pool them).")

    @field_validator("sesoi")
    @classmethod
    def _sesoi(cls, v: str) -> str:
        return str(Sesoi.parse(v))


assert set(BY) == set(get_args(AnalysisOptions.model_fields["by"].annotation))


class ScoringArgs(TypedDict, total=False):
    """ScoringOptions as keyword arguments (for type checkers and IDEs)."""

    chat: ChatMode
    dtype: DType
    device: str
    backend: Literal["hf", "vllm"]
    batch_tokens: Optional[int]
    attention: str
    trust_remote_code: bool
    studies: Optional[list[str]]
    max_participants: Optional[int]
    skip_invalid: bool
    max_chars: Optional[int]
    max_tokens: Optional[int]
    persona_outside_cut: bool
    seed: int
    stratify: Optional[str]
    derangements: int
    choices: bool
    option_sets: dict[str, list[str]]
    shard: Optional[str]
    heldout_only: bool
    checkpoint_seconds: float


class AnalysisArgs(TypedDict, total=False):
    """AnalysisOptions as keyword arguments (for type checkers and IDEs)."""

    by: Literal["study", "experiment", "study-person"]
    matched: Optional[str]
    control: Optional[str]
    sesoi: str
    weight: Literal["participant", "response"]
    n_boot: int
    resample_seed: int
    separate_labels: bool


def split_options(kwargs: dict[str, Any], *groups: type[BaseModel]) -> tuple[BaseModel, ...]:
    """Each group's model from the keyword arguments it names; a name no group has is refused
    (by name, as Python spells it)."""
    known = {name for g in groups for name in g.model_fields}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; the options are "
                        f"{', '.join(sorted(known))}")
    return tuple(g(**{k: v for k, v in kwargs.items() if k in g.model_fields}) for g in groups)


def finite(value: float, option: str) -> float:
    if not math.isfinite(value):
        raise OptionError(option, value, "must be a finite number")
    return value
