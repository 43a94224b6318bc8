"""LoRA toward human behaviour: its settings and the report of a trained adapter (the job that
trains and evaluates one is surrogate.jobs.finetune)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..data import Holdout
from ..models import ChatMode
from ._train import TrainConfig

# Every attention and MLP projection of the common decoder families (Llama, Qwen, OLMo,
# Mistral, Gemma); modules a model does not have are simply absent from its match.
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class FinetuneConfig(TrainConfig):
    """LoRA, split and evaluation settings (the optimisation settings are TrainConfig's)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    rank: int = Field(16, ge=1, description="LoRA rank r.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling alpha (update scale alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: tuple[str, ...] = Field(PROJECTIONS, description="Module names to adapt: all "
                                            "attention and MLP projections by default.")
    holdout: Holdout = Field("participants", description="Hold out participants (of every study) "
                             "or whole experiments (studies).")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="Share held out (by a seeded hash).")
    chat: ChatMode = Field("auto", description="Train through the chat template: auto when the "
                                               "tokenizer has one (as the scorer scores it).")
    eval_per_study: int | None = Field(100, ge=1, description="Held-out participants scored per "
                                       "study for report.json (None: all).")


class HeldoutNLL(BaseModel):
    """Mean NLL per response (nats) over held-out participants, each participant weighted once."""

    study: str
    n_participants: int
    n_responses: int
    before: float
    after: float
    reference: float | None = None
    recovery: float | None = Field(None, description="(before - after) / (before - reference)")


class FinetuneReport(BaseModel):
    model: str
    adapter: str
    reference: str | None
    data: str
    steps: int
    resumed_from: int
    final_train_loss: float
    n_train_participants: int
    n_train_windows: int
    n_train_response_tokens: int
    heldout: list[HeldoutNLL] = Field(description="Per study, then the 'all' row (studies pooled "
                                                  "over participants).")
    config: dict[str, Any]

    @property
    def overall(self) -> HeldoutNLL:
        return next(h for h in self.heldout if h.study == "all")


