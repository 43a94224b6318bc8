"""Small random-weight models of real architectures, with tokenizers trained locally.

They stand in for hub checkpoints where none can be downloaded (tests, benchmarks, the
offline default of `surrogate run`). Their NLLs say nothing about people: the weights are
random. What they do exercise is everything else: the real transformers model classes,
real tokenizer pipelines (byte-level BPE, Metaspace), BOS handling and chat templates.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from ..models import quiet_transformers

TokenizerStyle = Literal["qwen", "llama", "metaspace"]
Arch = Literal["qwen3", "llama", "qwen2", "olmo3"]  # qwen2: Qwen1.5/2/2.5 and R1-Distill-Qwen

# GPT-4-style split: letters (with one leading non-letter), single digits, punctuation
# runs, newlines, spaces.
_QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA_SPLIT = _QWEN_SPLIT.replace(r"|\p{N}|", r"|\p{N}{1,3}|")

# Chat templates written for these models, shaped like the families they are named after.
QWEN_CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}{%- endif -%}"
)
LLAMA_CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim"
    " + '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{%- endif -%}"
)

_SPECIALS: dict[str, dict[str, Any]] = {
    "qwen": {"special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
             "bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>", "template": QWEN_CHAT_TEMPLATE},
    "llama": {"special": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                          "<|end_header_id|>", "<|eot_id|>"],
              "bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "pad": "<|end_of_text|>",
              "template": LLAMA_CHAT_TEMPLATE},
    "metaspace": {"special": ["<unk>", "<s>", "</s>"], "bos": "<s>", "eos": "</s>", "pad": "</s>",
                  "template": None},
}


def train_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 4000,
    style: TokenizerStyle = "qwen",
    chat_template: bool = False,
    isolate_close_marker: bool | None = None,
) -> Any:
    """Train a BPE tokenizer locally and wrap it as a transformers fast tokenizer.

    `style` picks the pipeline of a model family: "qwen" (byte-level, no BOS), "llama"
    (byte-level, BOS added), "metaspace" (SentencePiece-like '▁' spaces with byte fallback,
    BOS added). `chat_template` attaches the family's chat template. `isolate_close_marker`
    keeps '>>' a token of its own, so the paper's naive marker search works everywhere (by
    default on for "llama"; "qwen" merges '>>.' like many real tokenizers, which breaks that
    search).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = _SPECIALS[style]
    if style == "metaspace":
        tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        alphabet = [f"<0x{i:02X}>" for i in range(256)]
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=spec["special"] + alphabet,
                                      show_progress=False)
    else:
        tok = Tokenizer(models.BPE())
        split = _QWEN_SPLIT if style == "qwen" else _LLAMA_SPLIT
        isolate = style == "llama" if isolate_close_marker is None else isolate_close_marker
        if isolate:
            split = ">>|" + split
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=spec["special"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
    tok.train_from_iterator(texts, trainer)
    bos = spec["bos"]
    if bos is not None:
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    elif style != "metaspace":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=spec["eos"],
        pad_token=spec["pad"],
        unk_token="<unk>" if style == "metaspace" else None,
        chat_template=spec["template"] if chat_template else None,
        model_max_length=1 << 20,
    )


def build_model(
    tokenizer: Any,
    *,
    arch: Arch = "qwen3",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    head_dim: int | None = None,
    vocab_size: int | None = None,
    max_position_embeddings: int = 32768,
    tie_word_embeddings: bool = False,
    seed: int = 0,
) -> Any:
    """A random-weight causal LM of a real architecture, sized for CPU tests.

    `vocab_size` may exceed the tokenizer's (padded embedding rows, as real checkpoints have).
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Olmo3Config, Qwen2Config, Qwen3Config

    common = dict(
        vocab_size=max(vocab_size or 0, len(tokenizer)),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim or hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if arch == "olmo3":
        # OLMo-3 interleaves sliding-window and full attention; a short window makes the
        # sliding layers matter on test transcripts.
        config = Olmo3Config(**common, sliding_window=48,
                             layer_types=[("full" if (i + 1) % 2 == 0 else "sliding") + "_attention"
                                          for i in range(num_layers)])
    else:
        config = {"qwen3": Qwen3Config, "qwen2": Qwen2Config, "llama": LlamaConfig}[arch](**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # Default initialisation gives near-uniform predictions; a larger output scale makes
    # the NLLs vary across tokens, which makes equality tests meaningful.
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, 1.0 / hidden_size**0.5 * 4)
    return model.eval()


# qwen3_5: Qwen3.5 checkpoints are image-text-to-text models whose language model mixes
# gated-delta-net (linear attention) and full-attention layers.
VisionLanguage = Literal["qwen2_5_vl", "qwen3_vl", "qwen3_5", "mllama"]


def build_vision_language_model(tokenizer: Any, family: VisionLanguage, *, hidden_size: int = 64,
                                num_layers: int = 2, seed: int = 0) -> Any:
    """A random-weight vision-language checkpoint (the image-text-to-text class the hub
    checkpoints use), with a tiny vision tower; surrogate scores its text path."""
    import torch
    from transformers import AutoModelForImageTextToText, MllamaConfig, Qwen2_5_VLConfig, Qwen3_5Config, Qwen3VLConfig

    text = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=32768, tie_word_embeddings=False,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    section = [hidden_size // 32, hidden_size // 64 * 3 // 2 + 1, hidden_size // 64 * 3 // 2 + 1]
    section[0] = hidden_size // 8 - section[1] - section[2]  # mrope sections sum to head_dim / 2
    if family == "qwen2_5_vl":
        config = Qwen2_5_VLConfig(text_config=dict(text, rope_scaling={"type": "mrope", "mrope_section": section}),
                                  vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2,
                                                     out_hidden_size=hidden_size))
    elif family == "qwen3_vl":
        config = Qwen3VLConfig(text_config=dict(text, head_dim=hidden_size // 4,
                                                rope_scaling={"rope_type": "default", "mrope_section": section,
                                                              "mrope_interleaved": True}),
                               vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2,
                                                  out_hidden_size=hidden_size, deepstack_visual_indexes=[0]))
    elif family == "qwen3_5":
        config = Qwen3_5Config(text_config=dict(text, head_dim=hidden_size // 4,
                                                layer_types=["linear_attention", "full_attention"] * (num_layers // 2),
                                                linear_num_key_heads=2, linear_num_value_heads=4,
                                                linear_key_head_dim=16, linear_value_head_dim=16,
                                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                 "partial_rotary_factor": 0.25,
                                                                 "mrope_section": [1, 1, 0], "mrope_interleaved": True}),
                               vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2,
                                                  out_hidden_size=hidden_size))
    else:
        config = MllamaConfig(text_config=dict(text, cross_attention_layers=[num_layers - 1]),
                              vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                 num_global_layers=1, attention_heads=2, image_size=56,
                                                 patch_size=14, vision_output_dim=hidden_size))
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, 1.0 / hidden_size**0.5 * 4)
    return model.eval()


def save_tiny(
    out: str | Path,
    texts: Iterable[str],
    *,
    arch: Arch = "qwen3",
    style: TokenizerStyle = "qwen",
    chat_template: bool = False,
    vocab_size: int = 4000,
    seed: int = 0,
    tokenizer: Any = None,
    isolate_close_marker: bool | None = None,
    **model_kwargs: Any,
) -> Path:
    """Train a tokenizer (unless given), build a model, save both as a checkpoint folder."""
    quiet_transformers()
    out = Path(out)
    if tokenizer is None:
        tokenizer = train_tokenizer(texts, vocab_size=vocab_size, style=style,
                                    chat_template=chat_template,
                                    isolate_close_marker=isolate_close_marker)
    model = build_model(tokenizer, arch=arch, seed=seed, **model_kwargs)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(
        f"# Random-weight {arch} model built by surrogate.testing.tiny\n\n"
        "Its weights are random: its predictions say nothing about people.\n")
    return out
