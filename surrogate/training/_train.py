"""One training loop for every kind of training surrogate does (LoRA, the organisms).

Examples are token windows with labels (-100: no loss). Batches are planned once from the
seed (length-bucketed, at most `batch_tokens` padded tokens each), so the run is a fixed
sequence of steps: a checkpoint needs only the step number, the trainable weights and the
optimiser, and a resumed run takes exactly the steps an uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """The optimisation. Defaults suit LoRA on a causal LM."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    learning_rate: float = Field(2e-4, gt=0, allow_inf_nan=False, description="Peak learning rate (AdamW).")
    epochs: float = Field(1.0, gt=0, description="Passes over the training windows.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps (overrides epochs).")
    window_tokens: int = Field(2048, ge=16, description="Tokens per training window; longer "
                                                     "transcripts are split into consecutive windows.")
    batch_tokens: int = Field(8192, ge=16, description="Padded tokens per optimiser step.")
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="Linear warm-up, then cosine decay.")
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0, description="Gradient-norm clip.")
    seed: int = Field(0, description="Batch order, dropout and initialisation.")
    checkpoint_every: int = Field(50, ge=1, description="Steps between resumable checkpoints.")
    cpu_bf16: bool = Field(False, description="bfloat16 autocast on CPU as well as on CUDA (about 1.7x faster on "
                                              "CPUs with native bfloat16, AVX512-BF16 or AMX; slow elsewhere).")


@dataclass(frozen=True)
class Example:
    """One training window: token ids and per-token labels (-100 where there is no loss);
    `extra` carries what a custom loss needs (a teacher's input, say)."""

    ids: np.ndarray
    labels: np.ndarray
    extra: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class TrainResult:
    steps: int
    complete: bool  # False when stop_after ended the run before its last step
    resumed_from: int
    final_loss: float
    losses: list[float]


def plan_batches(lengths: Sequence[int], config: TrainConfig) -> list[list[int]]:
    """Every step's example indices, fixed by the seed: each epoch shuffles, sorts within
    chunks of similar length (little padding), packs to batch_tokens, shuffles batches."""
    n = len(lengths)
    if n == 0:
        raise ValueError("no training examples")
    too_long = [i for i, L in enumerate(lengths) if L > config.batch_tokens]
    if too_long:
        raise ValueError(f"{len(too_long)} windows are longer than batch_tokens={config.batch_tokens}; "
                         "raise batch_tokens or lower window_tokens")
    steps: list[list[int]] = []
    epoch = 0
    target = None
    while True:
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(n)
        chunk = 64
        batches: list[list[int]] = []
        for c in range(0, n, chunk):
            part = sorted(order[c:c + chunk].tolist(), key=lambda i: lengths[i])
            cur: list[int] = []
            for i in part:  # ascending lengths: the newest is the longest of its batch
                if cur and (len(cur) + 1) * lengths[i] > config.batch_tokens:
                    batches.append(cur)
                    cur = []
                cur.append(i)
            if cur:
                batches.append(cur)
        batches = [batches[k] for k in rng.permutation(len(batches))]
        if target is None:
            target = config.max_steps or max(1, math.ceil(len(batches) * config.epochs))
        steps.extend(batches)
        epoch += 1
        if len(steps) >= target:
            return steps[:target]


def _collate(examples: Sequence[Example], pad_id: int, torch: Any, device: str):
    T = max(len(e) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for r, e in enumerate(examples):
        ids[r, : len(e)] = torch.from_numpy(e.ids)
        labels[r, : len(e)] = torch.from_numpy(e.labels)
        mask[r, : len(e)] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def examples_digest(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(e.ids.astype(np.int64).tobytes())
        h.update(e.labels.astype(np.int64).tobytes())
        for key, value in sorted((e.extra or {}).items()):
            h.update(key.encode())
            h.update(np.asarray(value).astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def train(
    model: Any,
    examples: Sequence[Example],
    config: TrainConfig,
    *,
    checkpoint: Path,
    pad_id: int,
    device: str = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
    stop_after: int | None = None,
    loss_fn: Callable[..., Any] | None = None,
) -> TrainResult:
    """Train the parameters of `model` that require grad; resume from `checkpoint` if it
    holds a checkpoint of this same run (same config, same examples), refuse if it holds
    another. `stop_after` ends early after that many steps (as if killed: for tests, and for a
    dose taken half-way). `loss_fn(model, examples, ids, labels, mask)` replaces the model's own
    language-modelling loss."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    plan = plan_batches([len(e) for e in examples], config)
    run_id = hashlib.sha256(json.dumps({"config": config.model_dump(), "examples": examples_digest(examples)},
                                       sort_keys=True).encode()).hexdigest()[:16]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    params = [p for _, p in named]
    torch.manual_seed(config.seed)
    optim = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    sched = get_cosine_schedule_with_warmup(optim, int(config.warmup_fraction * len(plan)), len(plan))
    start, losses = 0, []
    for stale in checkpoint.parent.glob(f".{checkpoint.name}.*.tmp"):  # a write a kill cut short
        stale.unlink(missing_ok=True)
    if checkpoint.exists():
        state = load_checkpoint(checkpoint)
        if state["run_id"] != run_id:
            raise ValueError(f"{checkpoint} belongs to another training run (different data or "
                             "settings); use another --out or delete it")
        with torch.no_grad():
            for n, p in named:
                p.copy_(state["trainable"][n])
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start, losses = state["step"], list(state["losses"])
    model.train()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
                else torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.cpu_bf16))
    for step in range(start, len(plan)):
        if stop_after is not None and step - start >= stop_after:
            break
        batch = [examples[i] for i in plan[step]]
        ids, labels, mask = _collate(batch, pad_id, torch, device)
        with autocast:
            if loss_fn is None:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
            else:
                loss = loss_fn(model, batch, ids, labels, mask)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(
                f"the training loss became {float(loss.detach())} at step {step + 1} of {len(plan)} (learning rate "
                f"{config.learning_rate:g}): training diverged, and nothing was saved; lower --learning-rate or check "
                "the base weights for NaN")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        done = step + 1
        if progress:
            progress(done, len(plan), losses[-1])
        if done % config.checkpoint_every == 0 and done < len(plan):
            _save_checkpoint(checkpoint, torch, run_id=run_id, step=done, losses=losses,
                             trainable={n: p.detach().cpu().clone() for n, p in named},
                             optimizer=optim.state_dict(), scheduler=sched.state_dict(),
                             rng=torch.get_rng_state())
    model.eval()
    return TrainResult(steps=len(losses), complete=len(losses) == len(plan), resumed_from=start,
                       final_loss=float(np.mean(losses[-20:])) if losses else float("nan"), losses=losses)


class NonFiniteLoss(ValueError):
    """Training diverged (NaN or infinite loss)."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint: tensors, numbers, strings and containers only. Loaded with
    torch's weights-only unpickler, so a planted file cannot run code; anything else in it
    is refused."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path} is not a surrogate training checkpoint (it holds objects a checkpoint never "
                         f"has, or is damaged: {first}); it was not loaded. Delete it to start over") from None


def _save_checkpoint(path: Path, torch: Any, **state: Any) -> None:
    """Written to a fresh unpredictable name beside (exclusive create, no links) and renamed
    over: a crash mid-write leaves the previous checkpoint."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
