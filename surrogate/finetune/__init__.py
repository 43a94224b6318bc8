"""Training toward human behaviour: LoRA (`finetune`) and the shared training loop.

The loss falls on the tokens of human responses as the scorer defines them (one encoder for
both), so what is trained is exactly what is scored. Needs the `[finetune]` extra (peft).
"""

import sys

from ._examples import response_windows, with_responses
from ._lora import PROJECTIONS, FinetuneConfig, FinetuneReport, HeldoutNLL, finetune
from ._train import Example, TrainConfig, TrainResult, plan_batches, train

__all__ = [
    "PROJECTIONS", "Example", "FinetuneConfig", "FinetuneReport", "HeldoutNLL", "TrainConfig", "TrainResult",
    "finetune", "plan_batches", "response_windows", "train", "with_responses",
]


class _CallableModule(sys.modules[__name__].__class__):
    """`surrogate.finetune(...)` is the function even after this subpackage is imported (the
    package attribute then names the module, which would shadow the API's function)."""

    def __call__(self, *args, **kwargs):
        return finetune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
