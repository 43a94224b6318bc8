"""Run the last decoder layer only at the rows that are scored.

Scoring reads the final hidden state only at positions whose next token is a response
token. Every layer but the last must still run everywhere (its keys and values feed the
next layer), but in the last layer the query projection, attention output, output
projection and MLP are needed only at those rows. Keys and values are still computed for
every position, so the result is exact.

This applies to decoder layers shaped like Llama's (`self_attn.q_proj`, `self_attn.o_proj`,
`mlp`, attention looked up through transformers' AttentionInterface), which covers Llama,
Qwen2/3, Mistral and most current open models. It is installed by overriding `forward` on
those module instances, so weights and state dicts are untouched, and it is checked against
the model's own logits before use (see HFScorer._check_fast_path).
"""

from __future__ import annotations

import copy
import types
from typing import Any

ATTENTION_NAME = "surrogate_scored_rows"


class RowSelection:
    """Which rows the last layer must produce; None means all (normal behaviour)."""

    def __init__(self) -> None:
        self.flat: Any = None  # LongTensor of b * T + t
        self.per_batch: list[Any] | None = None  # LongTensor of t, per batch item
        self.undo: list[Any] = []  # callables that remove the installation

    def set(self, flat: Any, per_batch: list[Any]) -> None:
        self.flat, self.per_batch = flat, per_batch

    def clear(self) -> None:
        self.flat, self.per_batch = None, None


def _rows_forward(inner_forward, sel: RowSelection):
    def forward(self, x, *args, **kwargs):
        if sel.flat is None:
            return inner_forward(x, *args, **kwargs)
        flat = x.reshape(-1, x.shape[-1])
        picked = inner_forward(flat.index_select(0, sel.flat), *args, **kwargs)
        out = picked.new_zeros(flat.shape[0], picked.shape[-1])
        out.index_copy_(0, sel.flat, picked)
        return out.reshape(*x.shape[:-1], picked.shape[-1])

    return forward


def _make_attention(sel: RowSelection):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        if sel.flat is None or attention_mask is not None:
            return sdpa_attention_forward(module, query, key, value, attention_mask,
                                          scaling=scaling, dropout=dropout, **kwargs)
        B, Hq, T, d = query.shape
        rep = Hq // key.shape[1]
        out = query.new_zeros(B, T, Hq, d)
        for b, ts in enumerate(sel.per_batch):
            if ts.numel() == 0:
                continue
            kmax = int(ts.max()) + 1
            k = key[b, :, :kmax].repeat_interleave(rep, dim=0)
            v = value[b, :, :kmax].repeat_interleave(rep, dim=0)
            mask = torch.arange(kmax, device=ts.device)[None, :] <= ts[:, None]
            o = torch.nn.functional.scaled_dot_product_attention(
                query[b][:, ts], k, v, attn_mask=mask, scale=scaling)
            out[b, ts] = o.transpose(0, 1)
        return out, None

    return attention


def install(body: Any) -> RowSelection | None:
    """Install row-restricted computation on the last decoder layer, if it is Llama-shaped."""
    from transformers import AttentionInterface

    layers = getattr(body, "layers", None)
    if layers is None or len(layers) == 0:
        return None
    last = layers[-1]
    attn = getattr(last, "self_attn", None)
    parts = [getattr(attn, "q_proj", None), getattr(attn, "o_proj", None), getattr(last, "mlp", None)]
    config = getattr(attn, "config", None)
    if None in parts or config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return None
    if getattr(attn, "sliding_window", None) or getattr(config, "attn_logit_softcapping", None):
        return None
    sel = RowSelection()
    name = f"{ATTENTION_NAME}_{id(sel)}"  # one registration per installation, never shared
    AttentionInterface.register(name, _make_attention(sel))
    for module in parts:
        module.forward = types.MethodType(_rows_forward(module.forward, sel), module)
        sel.undo.append(lambda m=module: m.__dict__.pop("forward", None))
    attn.config = copy.copy(config)  # only this layer looks up the row-restricted attention
    attn.config._attn_implementation = name
    sel.undo.append(lambda: setattr(attn, "config", config))
    return sel


def uninstall(sel: RowSelection) -> None:
    for undo in sel.undo:
        undo()
    sel.undo.clear()
