"""What model to score, and how."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

ChatMode = Literal["auto", "on", "off"]
DType = Literal["auto", "float32", "bfloat16", "float16"]


class ModelSpec(BaseModel):
    """A Hugging Face causal LM: a local folder or hub id, plus scoring options."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="Local checkpoint folder or Hugging Face hub id.")
    name: str | None = Field(None, description="Label in result tables (default: path).")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    dtype: DType = Field("auto", description="auto: bfloat16 on CUDA, float32 on CPU.")
    device: str = Field("auto", description="auto: CUDA when present, else CPU; map: spread the "
                                            "layers over every GPU (device_map='auto'), for models "
                                            "larger than one GPU.")
    chat: ChatMode = Field("auto", description="Score through the chat template: auto uses it "
                                               "when the tokenizer has one.")
    trust_remote_code: bool = Field(False, description="Run code shipped with the checkpoint.")
    adapter: str | None = Field(None, description="A PEFT (LoRA) adapter folder applied on top.")
    backend: Literal["hf", "vllm"] = Field("hf", description="hf: transformers (any device); vllm: "
                                         "vLLM prompt log-probabilities (GPU, the [vllm] extra).")
    attention: str = Field("auto", description="auto: FlashAttention-2 on CUDA when flash-attn is "
                                               "installed (batches packed without padding), else SDPA "
                                               "(length-bucketed padding); or any transformers "
                                               "attn_implementation (sdpa, eager, flash_attention_2, ...).")
    batch_tokens: int | None = Field(None, ge=1, description="Padded tokens per forward pass "
                                                             "(default: 2048 on CPU; on GPU sized from the "
                                                             "memory free after loading).")
    location: str | None = Field(None, exclude=True, description="Where the checkpoint is, when `path` is a "
                                 "name the caller resolved (a built-in organism); results stay keyed by `path`.")

    @property
    def label(self) -> str:
        return self.name or self.path

    @property
    def where(self) -> str:
        """What to load: the resolved location, or the path itself."""
        return self.location or self.path

    OPTIONS: ClassVar[tuple[str, ...]] = ("adapter", "name", "chat", "dtype", "device", "attention", "revision")

    @classmethod
    def parse(cls, text: str, **options) -> "ModelSpec":
        """`PATH_OR_ID`, `NAME=PATH_OR_ID`, for hub ids `...@REVISION`, and after commas
        `key=value` options: `adapter=DIR` (a PEFT adapter applied on top), `name`, `chat`,
        `dtype`, `device`, `attention`, `revision`: `post=organism-post,adapter=runs/lora`."""
        text, *extras = text.split(",")
        for extra in extras:
            key, eq, value = extra.partition("=")
            key = key.strip()
            if key not in cls.OPTIONS or not eq or not value.strip():
                raise ValueError(f"{extra!r} in model {text!r}: expected key=value with key one of "
                                 f"{', '.join(cls.OPTIONS)} (e.g. adapter=DIR)")
            options = {**options, key: value.strip()}
        name, sep, path = text.partition("=")
        if not (sep and name and "/" not in name):
            name, path = None, text
        path, at, revision = path.partition("@")
        if at and revision and not Path(path + at + revision).exists():
            options = {**options, "revision": revision}
        else:
            path = path + at + revision
        if name is not None:
            options = {"name": name, **{k: v for k, v in options.items() if k != "name"}}
        return cls(path=path, **options)
