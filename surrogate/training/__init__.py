"""Training toward human behaviour: the shared training loop, training windows whose loss
falls on the tokens of human responses as the scorer defines them (one encoder for both,
so what is trained is exactly what is scored), the losses, and LoRA's settings and report.
The jobs that train are `surrogate finetune` (LoRA, needs the `[finetune]` extra: peft) and
`surrogate organisms build`."""

from ._examples import response_windows, with_responses
from ._lora import PROJECTIONS, FinetuneConfig, FinetuneReport, HeldoutNLL
from ._train import Example, TrainConfig, TrainResult, plan_batches, train

__all__ = [
    "PROJECTIONS", "Example", "FinetuneConfig", "FinetuneReport", "HeldoutNLL", "TrainConfig", "TrainResult",
    "plan_batches", "response_windows", "train", "with_responses",
]
