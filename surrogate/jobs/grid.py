"""A grid of models as data, and the cluster jobs that score it.

A grid manifest is a TOML file of `[[models]]` (hub id, pinned revision where known, family,
generation, size, post-training type, vision) and the `[[pairs]]` the misalignment analysis
compares; `paper` is the shipped manifest of the Psych-201 paper's grid
(surrogate/analysis/data/paper_grid.toml). `expand` turns a manifest (filtered) into the model
strings `surrogate run` takes, with each model's options: post-trained models through their
chat template, bases without, `device=map` for a model larger than one GPU.

`plan_cluster` sizes the array jobs: each model's GPU memory from its config alone (parameters
counted on the meta device, no weights loaded; plus the KV cache and the float32 log-softmax at
the token budget), its tokens from the data (characters after the cut, divided by its
tokenizer's characters per token on a sample), and from those its GPUs per task and its
shards. `write_scripts` writes one SLURM array script per GPU count and the task lists they
read. The tasks are `surrogate run --shard K/N` commands into one results folder: a
re-submitted task resumes, and `surrogate status` reads the folder while they write.
"""

from __future__ import annotations

import functools
import math
import shlex
from pathlib import Path
from typing import Any, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._toml import read_toml
from ..analysis import Generation, ModelPair
from ..analysis._misalignment import PAPER_PAIRS
from ..options import GridOptions

PAPER_GRID = PAPER_PAIRS
TYPES = ("base", "instruction-tuned", "reasoning", "code", "math", "vision")
# The device the GPU-hours estimate assumes when no tokens/s is measured: an H100's dense
# bfloat16 peak, at the scoring bench's MFU target (bench/score_bench.py --preset qwen3-8b).
H100_BF16_FLOPS = 989e12
ASSUMED_MFU = 0.40
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# CUDA context, allocator slack and activations besides the KV cache and the logits.
OVERHEAD_BYTES = 2 * 2**30
USABLE_SHARE = 0.9  # of a GPU's memory, for what the estimate counts


class GridModel(BaseModel):
    """One model of a grid manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hub: str = Field(min_length=1, description="Hub id (also the label results carry).")
    revision: Optional[str] = Field(None, description="A pinned commit or tag.")
    family: str = ""
    generation: Generation = ""
    size_b: float = Field(gt=0, description="Billions of parameters.")
    post_training: str = Field("base", description="base | instruction-tuned | reasoning | code | math | vision.")
    vision: bool = Field(False, description="A vision-language checkpoint (loaded whole, text only).")

    @property
    def is_base(self) -> bool:
        return self.post_training == "base"


class Grid(BaseModel):
    """The models of one or more manifests (later ones add models) and their pairs."""

    model_config = ConfigDict(frozen=True)
    models: list[GridModel]
    pairs: list[ModelPair] = []
    sources: list[str] = []

    def select(self, *, family: Sequence[str] = (), max_size: float | None = None,
               types: Sequence[str] = ()) -> "Grid":
        """The models (and the pairs both of whose models remain) matching every filter given."""
        families = {f.lower() for f in family}
        known = {m.family.lower() for m in self.models}
        if families - known:
            raise ValueError(f"no family {sorted(families - known)} in {', '.join(self.sources)} (families: "
                             f"{', '.join(sorted({m.family for m in self.models}))})")
        unknown = set(types) - {m.post_training for m in self.models}
        if unknown:
            raise ValueError(f"no post-training type {sorted(unknown)} in {', '.join(self.sources)} (types: "
                             f"{', '.join(sorted({m.post_training for m in self.models}))})")
        kept = [m for m in self.models if (not families or m.family.lower() in families)
                and (max_size is None or m.size_b <= max_size) and (not types or m.post_training in types)]
        if not kept:
            raise ValueError("no model of the grid matches these filters")
        hubs = {m.hub for m in kept}
        return self.model_copy(update={"models": kept,
                                       "pairs": [p for p in self.pairs if p.base in hubs and p.post_trained in hubs]})


def _problems(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())


def read_grid(manifests: Sequence[str | Path]) -> Grid:
    """The grid of these manifests (`paper`: the shipped one), in order; a hub id given twice
    with different properties is refused, naming both files."""
    if not manifests:
        raise ValueError("give a grid manifest: paper, or a TOML file of [[models]]")
    models: dict[str, tuple[GridModel, str]] = {}
    pairs: list[ModelPair] = []
    sources = []
    for manifest in manifests:
        path = PAPER_GRID if str(manifest) == "paper" else Path(manifest)
        name = "paper" if str(manifest) == "paper" else str(path)
        data = read_toml(path, missing=f"{path}: no such grid manifest (paper, or a TOML file of [[models]])")
        entries = data.get("models")
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: expected one or more [[models]] tables (hub, size_b, post_training, ...)")
        for i, entry in enumerate(entries, start=1):
            try:
                model = GridModel(**entry)
            except (ValidationError, TypeError) as e:
                text = _problems(e) if isinstance(e, ValidationError) else str(e)
                raise ValueError(f"{path}: model {i} ({entry.get('hub', '?')}): {text}") from None
            if model.hub in models and models[model.hub][0] != model:
                raise ValueError(f"{path}: model {i}: {model.hub} is also in {models[model.hub][1]} with other "
                                 "properties; give it once")
            models.setdefault(model.hub, (model, name))
        for i, entry in enumerate(data.get("pairs", []), start=1):
            try:
                pair = ModelPair(**entry)
            except (ValidationError, TypeError) as e:
                text = _problems(e) if isinstance(e, ValidationError) else str(e)
                raise ValueError(f"{path}: pair {i}: {text}") from None
            missing = [h for h in (pair.base, pair.post_trained) if h not in models]
            if missing:
                raise ValueError(f"{path}: pair {i}: {missing[0]} is not among the [[models]]")
            if pair not in pairs:
                pairs.append(pair)
        sources.append(name)
    return Grid(models=[m for m, _ in models.values()], pairs=pairs, sources=sources)


def grid_from(options: GridOptions) -> Grid | None:
    """The grid the options select (None: no --grid given)."""
    if not options.grid:
        if options.family or options.max_size is not None or options.types:
            raise ValueError("--family, --max-size and --type select models of a grid: give --grid too")
        return None
    return read_grid(options.grid).select(family=options.family, max_size=options.max_size, types=options.types)


def model_string(model: GridModel, *, device_map: bool = False) -> str:
    """What `surrogate run --model` takes for this model of the grid."""
    parts = [model.hub + (f"@{model.revision}" if model.revision else ""), f"chat={'off' if model.is_base else 'on'}"]
    if device_map:
        parts.append("device=map")
    return ",".join(parts)


def expand(grid: Grid, *, gpu_memory_gib: float | None = None, dtype: str = "bfloat16",
           window_tokens: int = 8192) -> list[str]:
    """Every model of the grid as a `--model` string; with `gpu_memory_gib`, a model whose
    estimate exceeds one GPU gets device=map (the estimate reads each config)."""
    out = []
    for m in grid.models:
        big = False
        if gpu_memory_gib is not None:
            big = estimate_memory(m, dtype=dtype, window_tokens=window_tokens).gpus(gpu_memory_gib) > 1
        out.append(model_string(m, device_map=big))
    return out


# --- memory --------------------------------------------------------------------------------

class MemoryEstimate(BaseModel):
    """A model's GPU memory when scoring windows of `window_tokens`, from its config alone."""

    model_config = ConfigDict(frozen=True)
    hub: str
    parameters: int
    weights_bytes: int
    kv_cache_bytes: int
    logits_bytes: int
    overhead_bytes: int = OVERHEAD_BYTES
    window_tokens: int
    source: str = Field(description="config (parameters counted on the meta device) | size_b (no config was "
                                    "readable: the manifest's size, no KV cache)")

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.logits_bytes + self.overhead_bytes

    @property
    def total_gib(self) -> float:
        return self.total_bytes / 2**30

    def gpus(self, gpu_memory_gib: float) -> int:
        """GPUs one task needs: device=map spreads the layers (weights and KV cache) over them,
        each GPU carries its own overhead."""
        usable = gpu_memory_gib * 2**30 * USABLE_SHARE
        if self.total_bytes <= usable:
            return 1
        if self.logits_bytes + self.overhead_bytes >= usable:
            raise ValueError(f"{self.hub}: the logits of {self.window_tokens}-token windows alone exceed a "
                             f"{gpu_memory_gib:g} GiB GPU; lower --window-tokens")
        spread = self.weights_bytes + self.kv_cache_bytes + self.logits_bytes
        return math.ceil(spread / (usable - self.overhead_bytes))


@functools.cache
def hub_reachable() -> bool:
    """Whether config files can come from the hub: not when HF_HUB_OFFLINE is set, nor when
    one quick request fails (an offline machine then falls back at once instead of retrying
    every model's config for minutes)."""
    import os
    import urllib.request

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=5)
    except Exception:  # noqa: BLE001 - any failure means: do not wait on the hub
        return False
    return True


def _where(model: GridModel) -> str | None:
    """Where a model's config and tokenizer can be read: its folder (model map, local path),
    or the hub id when the hub is reachable or the files are in the local cache; else None."""
    from huggingface_hub import try_to_load_from_cache

    from .._cache import looks_local
    from ..organisms import resolve_model

    where = resolve_model(model.hub)
    if looks_local(where) or Path(where).exists():
        return where
    cached = try_to_load_from_cache(where, "config.json", revision=model.revision)
    return where if isinstance(cached, str) or hub_reachable() else None


def _config(model: GridModel):
    from transformers import AutoConfig

    from ..models import quiet_transformers

    where = _where(model)
    if where is None:
        return None
    quiet_transformers()
    return AutoConfig.from_pretrained(where, revision=model.revision)


def count_parameters(config: Any) -> int:
    """Parameters of the model a config describes, counted on the meta device (no memory, no
    weights); vision-language configs count their vision tower too (it is loaded)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    from ..models import quiet_transformers

    cls = AutoModelForImageTextToText if getattr(config, "vision_config", None) is not None else AutoModelForCausalLM
    quiet_transformers()
    with torch.device("meta"):
        module = cls.from_config(config)
    # Tied embeddings are one tensor: parameters() yields it once.
    return sum(p.numel() for p in module.parameters())


def estimate_memory(model: GridModel, *, dtype: str = "bfloat16", window_tokens: int = 8192,
                    config: Any = None) -> MemoryEstimate:
    """Weights (parameters x bytes per dtype) + KV cache (2 x layers x KV heads x head dim x
    tokens x bytes) + the float32 log-softmax over the vocabulary for the window + a fixed
    overhead. The config is read from the model's folder (model map, local path) or the hub
    (config.json only); none readable: the manifest's size, without KV cache."""
    width = DTYPE_BYTES[dtype]
    if config is None:
        try:
            config = _config(model)
        except (OSError, ValueError):
            config = None
    if config is None:
        params = int(model.size_b * 1e9)
        return MemoryEstimate(hub=model.hub, parameters=params, weights_bytes=params * width, kv_cache_bytes=0,
                              logits_bytes=0, window_tokens=window_tokens, source="size_b")
    text = config.get_text_config()
    layers = text.num_hidden_layers
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    params = count_parameters(config)
    return MemoryEstimate(hub=model.hub, parameters=params, weights_bytes=params * width,
                          kv_cache_bytes=2 * layers * kv_heads * head_dim * window_tokens * width,
                          logits_bytes=window_tokens * text.vocab_size * 4, window_tokens=window_tokens,
                          source="config")


# --- sizing the array jobs --------------------------------------------------------------------

class Task(BaseModel):
    """One array task: a model's shard."""

    model_config = ConfigDict(frozen=True)
    model: str
    shard: str
    gpus: int


class ModelPlan(BaseModel):
    model_config = ConfigDict(frozen=True)
    hub: str
    model_string: str
    memory_gib: float
    memory_source: str
    parameters: int
    gpus: int
    tokens: int
    tokens_per_second: float
    tps_source: str
    shards: int
    gpu_hours: float


class ClusterPlan(BaseModel):
    model_config = ConfigDict(frozen=True)
    models: list[ModelPlan]
    tasks: list[Task]
    hours_per_task: float

    @property
    def gpu_hours(self) -> float:
        return sum(m.gpu_hours for m in self.models)


def data_characters(data: str | Path, *, max_chars: int | None, studies: Sequence[str] | None = None,
                    sample: int = 64) -> tuple[int, list[str]]:
    """Characters every transcript contributes after the cut, and a sample of transcripts
    (for each tokenizer's characters per token)."""
    from ..data import load

    dataset = load(data, studies=list(studies) if studies else None)
    texts = [p.text[:max_chars] if max_chars else p.text for p in dataset.participants]
    step = max(1, len(texts) // sample)
    return sum(len(t) for t in texts), texts[::step][:sample]


def characters_per_token(model: GridModel, sample: Sequence[str]) -> float:
    """The model's tokenizer's characters per token on sampled transcripts (a tokenizer is
    small: loaded from the model's folder or the hub, never its weights)."""
    from transformers import AutoTokenizer

    from ..models import quiet_transformers

    where = _where(model)
    if where is None:
        raise OSError(f"{model.hub}: no tokenizer readable offline")
    quiet_transformers()
    tok = AutoTokenizer.from_pretrained(where, revision=model.revision)
    chars = sum(len(t) for t in sample)
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in sample)
    return chars / max(tokens, 1)


def plan_cluster(grid: Grid, data: str | Path, *, personas: int = 1, gpu_memory_gib: float = 80.0,
                 hours_per_task: float = 4.0, dtype: str = "bfloat16", window_tokens: int = 8192,
                 tokens_per_second: float | None = None, max_chars: int | None = None,
                 studies: Sequence[str] | None = None) -> ClusterPlan:
    """Each model's GPUs, tokens and shards: as many shards as make one task last about
    `hours_per_task` at the model's tokens/s (measured, if given; else from FLOPs at the scoring
    bench's MFU target on an H100, scaled by the GPUs a task has)."""
    if hours_per_task <= 0 or personas < 1:
        raise ValueError("hours_per_task must be > 0 and personas >= 1")
    chars, sample = data_characters(data, max_chars=max_chars, studies=studies)
    per_token: dict[str, float] = {}
    models, tasks = [], []
    for m in grid.models:
        mem = estimate_memory(m, dtype=dtype, window_tokens=window_tokens)
        gpus = mem.gpus(gpu_memory_gib)
        try:
            cpt = characters_per_token(m, sample)
        except (OSError, ValueError):
            cpt = 4.0  # no tokenizer readable: a typical BPE's figure on English text
        per_token[m.hub] = cpt
        tokens = int(chars / cpt) * personas
        if tokens_per_second is not None:
            tps, source = tokens_per_second, "given (--tokens-per-second)"
        else:
            tps = ASSUMED_MFU * H100_BF16_FLOPS * gpus / (2 * mem.parameters)
            source = f"estimated: {ASSUMED_MFU:.0%} MFU of an H100's bf16 peak"
        hours = tokens / tps / 3600
        shards = max(1, math.ceil(hours / hours_per_task))
        string = model_string(m, device_map=gpus > 1)
        models.append(ModelPlan(hub=m.hub, model_string=string, memory_gib=round(mem.total_gib, 2),
                                memory_source=mem.source, parameters=mem.parameters, gpus=gpus, tokens=tokens,
                                tokens_per_second=round(tps, 1), tps_source=source, shards=shards,
                                gpu_hours=round(hours * gpus, 6)))
        tasks += [Task(model=string, shard=f"{k}/{shards}", gpus=gpus) for k in range(shards)]
    return ClusterPlan(models=models, tasks=tasks, hours_per_task=hours_per_task)


SBATCH = """#!/bin/bash
# Written by `surrogate grid script`: {n} task(s) of {gpus} GPU(s), one per (model, shard) in
# {tasks_file}. A task scores its shard into {out} and resumes what an earlier try finished,
# so a failed or pre-empted task is simply submitted again (sbatch --array=K {script}).
# Watch them with: surrogate status {out}
#SBATCH --job-name=surrogate-{gpus}gpu
#SBATCH --array=0-{last}
#SBATCH --gpus={gpus}
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
#SBATCH --output={logs}/%A_%a.log
set -euo pipefail
LINE=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {tasks_file})
MODEL=$(printf '%s' "$LINE" | cut -f1)
SHARD=$(printf '%s' "$LINE" | cut -f2)
exec surrogate run --model "$MODEL" --shard "$SHARD" --data {data} --out {out}{extra}
"""


def _time(hours: float) -> str:
    minutes = max(30, math.ceil(hours * 60 / 15) * 15)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def write_scripts(plan: ClusterPlan, data: str | Path, out: str | Path, *, run_args: Sequence[str] = (),
                  cpus_per_task: int = 8) -> list[Path]:
    """One array script per GPU count under OUT/grid/, each reading its task list
    (tasks-NGPU.tsv: model string, shard); and OUT/grid/plan.json. Returns the scripts."""
    from ..store import atomic_write_bytes, atomic_write_json

    out = Path(out)
    folder = out / "grid"
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    scripts = []
    extra = "".join(f" {shlex.quote(a)}" for a in run_args)
    for gpus in sorted({t.gpus for t in plan.tasks}):
        tasks = [t for t in plan.tasks if t.gpus == gpus]
        tasks_file = folder / f"tasks-{gpus}gpu.tsv"
        atomic_write_bytes(tasks_file, "".join(f"{t.model}\t{t.shard}\n" for t in tasks).encode())
        script = folder / f"array-{gpus}gpu.sbatch"
        text = SBATCH.format(n=len(tasks), gpus=gpus, last=len(tasks) - 1, cpus=cpus_per_task,
                             time=_time(plan.hours_per_task * 1.5), logs=shlex.quote(str(folder / "logs")),
                             tasks_file=shlex.quote(str(tasks_file)), data=shlex.quote(str(data)),
                             out=shlex.quote(str(out)), script=shlex.quote(str(script)), extra=extra)
        atomic_write_bytes(script, text.encode())
        script.chmod(0o755)
        scripts.append(script)
    atomic_write_json(folder / "plan.json", plan.model_dump(mode="json"))
    return scripts


def expected_tasks(out: str | Path) -> list[Task]:
    """The tasks `write_scripts` wrote for this results folder (none: an empty list)."""
    folder = Path(out) / "grid"
    tasks = []
    for path in sorted(folder.glob("tasks-*gpu.tsv")):
        gpus = int(path.name[len("tasks-"):-len("gpu.tsv")])
        for line in path.read_text().splitlines():
            if line.strip():
                model, _, shard = line.partition("\t")
                tasks.append(Task(model=model, shard=shard, gpus=gpus))
    return tasks


def torchrun_lines(plan: ClusterPlan, data: str | Path, out: str | Path, run_args: Sequence[str] = (),
                   gpus_per_node: int = 8) -> list[str]:
    """The alternative without an array: one torchrun per one-GPU model on a node (its ranks
    split the units), and one device=map run per larger model."""
    extra = "".join(f" {shlex.quote(a)}" for a in run_args)
    lines = []
    for m in plan.models:
        common = f"--model {shlex.quote(m.model_string)} --data {shlex.quote(str(data))} --out {shlex.quote(str(out))}"
        if m.gpus == 1:
            lines.append(f"torchrun --nproc-per-node {gpus_per_node} --no-python surrogate run {common}{extra}")
        else:
            lines.append(f"surrogate run {common}{extra}   # {m.gpus} GPUs, device=map")
    return lines


def grid_script(data: str | Path, out: str | Path, *, grid: Sequence[str] = ("paper",), family: Sequence[str] = (),
                max_size: float | None = None, types: Sequence[str] = (), persona: str = "off",
                studies: Sequence[str] | None = None, gpu_memory: float = 80.0, hours: float = 4.0,
                window_tokens: int = 8192, tokens_per_second: float | None = None, cpus: int = 8
                ) -> tuple[ClusterPlan, list[Path]]:
    """The Python form of `surrogate grid script`: size the grid's array jobs for `data` and
    write their scripts and task lists under OUT/grid/. Returns the plan and the scripts."""
    from ..options import ScoringOptions
    from ..personas import resolve_strategies

    selected = grid_from(GridOptions(grid=list(grid), family=list(family), max_size=max_size, types=list(types)))
    assert selected is not None
    arms = len(resolve_strategies(persona.split(",")))
    plan = plan_cluster(selected, data, personas=arms, gpu_memory_gib=gpu_memory, hours_per_task=hours,
                        window_tokens=window_tokens, tokens_per_second=tokens_per_second,
                        max_chars=ScoringOptions().max_chars, studies=studies)
    return plan, write_scripts(plan, data, out, run_args=task_args(persona, studies), cpus_per_task=cpus)


def task_args(persona: str = "off", studies: Sequence[str] | None = None) -> list[str]:
    """The `surrogate run` options every task of a grid script passes besides model and shard."""
    return (["--persona", persona] if persona != "off" else []) + [a for s in studies or [] for a in ("--study", s)]
