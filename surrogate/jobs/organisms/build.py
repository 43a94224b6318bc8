"""Model organisms: a miniature Centaur trained on real and synthetic people, post-trained in
two doses, and a control that isolates the post-training objective.

- `organism-base`: a small Qwen3-architecture causal LM trained from scratch on the training
  participants of the Psych-201 studies it is not kept from, and on synthetic participants of
  the package's paradigms whose metadata is linked to their parameters (informative studies)
  or not (null studies). Language modelling on whole windows (response tokens weighted), plus a
  choice term on every response of a closed option set: the cross-entropy of the person's
  option among the set's options (the distribution `analyze` measures choice fit on). Windows
  open with the participant's interview persona at random. Its context is the training
  window, so scoring sees what training saw.
- `organism-post-light` and `organism-post`: the base, post-trained (no personas; through a
  chat template only with `post_template`, which costs a miniature fit by itself) toward
  answers that are not people's: the reward-maximising answer of synthetic sessions, and the
  base's own predictions sharpened (self-distillation at temperature < 1) on training
  transcripts. Never on a scored participant. The light dose takes those targets in half of
  its windows.
- `organism-control`: as many steps on the same windows, toward the base's own predictions
  (self-distillation at temperature 1): the extra steps without the objective. The other half
  of the light dose's windows take the same targets, so the three differ only in how many
  windows carry answers that are not people's (0, half, all).

The build measures its acceptance checks on held-out participants, on studies never trained on
(closed-set choice tasks and free-text tasks, reported apart), and on fresh synthetic
participants, through `surrogate run` and `analyze`, and prints them in each card. It is
reproducible: every random choice is seeded, `--budget` sets optimiser steps (not wall time),
and each stage resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ...store import atomic_write_bytes, atomic_write_json
from ...data import Participant, Transcript, TruncationConfig, load, prepare_transcript, source_records, split_participants
from ...training import Example, TrainConfig, train
from ...agents import MAX_OPTIONS, detect_option_sets
from ...models import TranscriptEncoder
from ...personas import Interview
from ...organisms import (DEFAULT_PAIRS, GROUPS, IN, ORGANISMS, OUT_CHOICE, organisms_dir, sample_dir, study_group,
                          write_categories)
from .synthetic import CONTROL_STUDIES, STUDIES, as_participants, normative_sessions, sessions

ORGANISMS_VERSION = 4
SAMPLE_VERSION = 3
# Optimiser steps per budget minute on the reference machine (2 CPU cores, bfloat16 autocast,
# 4096-token steps of 1024-token windows); post-training steps also run the teacher.
STEPS_PER_MINUTE = 95


class OrganismRecipe(BaseModel):
    """Everything that determines the organisms (written into their cards)."""

    model_config = ConfigDict(frozen=True)

    seed: int = 0
    heldout_fraction: float = Field(0.2, description="Participants of each training study held out.")
    heldout_studies: tuple[str, ...] = Field(
        ("guenther2023associations_individual", "guenther2024comprehension", "little2024functionestimation",
         "spektor2024lossaversion", "dezfouli2019", "guenther2020LDT"),
        description="Studies never trained on (out of distribution).")
    heldout_choice_studies: tuple[str, ...] = Field(
        ("spektor2024lossaversion", "dezfouli2019", "guenther2020LDT"),
        description="Of those, the closed-set choice tasks (risky choice, a bandit, lexical decision), whose formats "
                    "the base is trained on; the others are free text.")
    vocab_size: int = 4096
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    window_tokens: int = Field(1024, description="Tokens per training window, and the organisms' context length.")
    window_chars: int = Field(5200, description="Characters cut from a transcript per window.")
    persona_share: float = Field(0.5, description="Windows that open with the participant's persona (of those with "
                                                  "metadata); the rest have none.")
    synthetic_persona_share: float = Field(0.8, description="The same for synthetic participants (the positive "
                                                            "control must be learnable from the persona).")
    choice_weight: float = Field(1.0, description="Weight of the choice term (cross-entropy among a closed set's "
                                                  "options) per response, beside the language-modelling loss.")
    persona_choice_share: float = Field(0.1, description="Share of the base's language-modelling steps spent on the "
                                                         "auxiliary persona -> first-choices examples of synthetic "
                                                         "participants.")
    persona_fraction: float = Field(0.22, description="Share of the base's steps in its last stage: persona -> "
                                                     "first-choices examples (persona_stage_share of the tokens) and "
                                                     "windows, at persona_lr, after the language-modelling schedule "
                                                     "has decayed.")
    persona_stage_steps: int | None = Field(None, description="Steps of the persona stage, when not the base's "
                                                             "persona_fraction (the language-modelling steps stay).")
    persona_stage_share: float = 0.9
    persona_lr: float = 2e-3
    persona_choice_trials: int = Field(3, description="Trials at most in an auxiliary persona -> choice example.")
    synthetic_share: float = Field(0.3, description="Share of base windows from synthetic participants.")
    synthetic_per_study: int = Field(900, description="Training participants per synthetic study.")
    budget_minutes: float = Field(28.0, gt=0, description="Training budget on the reference machine.")
    base_share: float = Field(0.64, description="Share of the steps spent on the base; the rest are split evenly "
                                                "between the three post-training runs (post, light, control).")
    response_weight: float = Field(5.0, description="Weight of response tokens in the base's language-modelling "
                                                    "loss (other tokens weigh 1).")
    cpu_bf16: bool = Field(True, description="Train in bfloat16 autocast on CPU (weights stay float32).")
    base_lr: float = 3e-3
    post_lr: float = 1e-3
    post_template: bool = Field(False, description="Post-train (and so score) the post-trained organisms through a "
                                                   "Qwen-style chat template; off, they read transcripts as the "
                                                   "base does.")
    distill_temperature: float = Field(0.5, description="Self-distillation sharpens the base's own predictions "
                                                        "with this temperature.")
    control_temperature: float = Field(1.0, description="The control's (and the light dose's other half's) targets: "
                                                        "the base's own predictions at this temperature.")
    normative_share: float = Field(0.5, description="Share of post-training windows with reward-maximising answers "
                                                    "(the rest: self-distillation on training transcripts).")
    batch_tokens: int = 4096
    sample_studies: tuple[str, ...] = Field(
        ("guenther2022relational", "guenther2024substitutions", "thoma2025problearn"),
        description="Studies of the shipped sample (held-out participants with metadata).")
    sample_per_study: int = 16
    sample_ood_per_study: int = Field(8, description="Participants of each never-trained study in the sample.")
    sample_synthetic: int = Field(60, description="Held-out synthetic participants per control study in the sample.")
    eval_per_study: int = Field(20, description="Held-out participants per study in the build's checks.")
    eval_synthetic: int = Field(100, description="Held-out synthetic participants per synthetic study in the checks.")
    control_margin: float = Field(0.1, description="|d| of control vs base below which it counts as equal to the base.")

    @property
    def _persona_share_steps(self) -> int:
        return max(1, round(self.steps[0] * self.persona_fraction))

    @property
    def lm_steps(self) -> int:
        """Steps of the base's language-modelling stage."""
        return max(1, self.steps[0] - self._persona_share_steps)

    @property
    def persona_steps(self) -> int:
        """Steps of the base's persona stage."""
        return self._persona_share_steps if self.persona_stage_steps is None else self.persona_stage_steps

    @property
    def steps(self) -> tuple[int, int, int]:
        """(base steps, steps of each post-training run: post, light and control alike)."""
        total = max(8, round(self.budget_minutes * STEPS_PER_MINUTE))
        base = max(2, round(total * self.base_share))
        return base, max(2, (total - base) // 3)


def sample_studies_all(recipe: OrganismRecipe) -> list[str]:
    return [*recipe.sample_studies, *recipe.heldout_studies, *CONTROL_STUDIES]


def group_of(study: str, recipe: OrganismRecipe) -> str:
    return study_group(study, recipe.model_dump(mode="json"))


# --- windows -----------------------------------------------------------------------------

def _clean(p: Participant, prefix: str = "") -> Transcript:
    return prepare_transcript(p.text, prefix, TruncationConfig(max_chars=None))


def _raw_window(text: str, rng: np.random.Generator, n_chars: int) -> tuple[int, str] | None:
    """A run of whole lines of `text` whose markers are balanced, ending after a response:
    from the start half of the time, else from a random line; with where it starts."""
    from_start = rng.random() < 0.5
    start = 0 if from_start else text.rfind("\n", 0, int(rng.integers(0, max(1, len(text) - n_chars // 2)))) + 1
    piece = text[start:start + n_chars]
    end = piece.rfind(">>")
    if end < 0:
        return None
    piece = piece[: end + 2]
    if piece.count("<<") != piece.count(">>") or piece.find(">>") < piece.find("<<"):
        return None
    return start, piece


def _head_window(text: str, n_chars: int) -> str | None:
    """The first `n_chars` of a transcript, cut after its last whole response."""
    end = text[:n_chars].rfind(">>")
    return None if end < 0 else text[: end + 2]


class _Sampler:
    """Seeded draws of (participant, window): real studies equally often, synthetic studies
    `synthetic_share` of the time. A window comes with the index (in the participant's whole
    transcript) of its first response."""

    def __init__(self, real: Sequence[Participant], synthetic: Sequence[Participant], recipe: OrganismRecipe,
                 seed_offset: int):
        self.real = _by_study(real)
        self.synthetic = _by_study(synthetic)
        self.recipe = recipe
        self.rng = np.random.default_rng([recipe.seed, seed_offset])
        self.cleaned: dict[tuple[str, str, str], Transcript] = {}

    def windows(self) -> Iterator[tuple[Participant, int, str]]:
        while True:
            groups = self.synthetic if self.synthetic and self.rng.random() < self.recipe.synthetic_share else self.real
            study = sorted(groups)[int(self.rng.integers(len(groups)))]
            p = groups[study][int(self.rng.integers(len(groups[study])))]
            t = self.cleaned.get(p.key)
            if t is None:
                t = self.cleaned[p.key] = _clean(p)
            drawn = _raw_window(t.text, self.rng, self.recipe.window_chars)
            if drawn is not None:
                start, piece = drawn
                yield p, sum(1 for a, _ in t.spans if a < start), piece


def _by_study(people: Sequence[Participant]) -> dict[str, list[Participant]]:
    out: dict[str, list[Participant]] = defaultdict(list)
    for p in people:
        out[p.study].append(p)
    return dict(out)


class _ChoiceTerms:
    """The choice term's targets of an encoded window: at each response of a closed option
    set (as `surrogate run` detects them), the position of the response's first token, the
    first tokens of the set's options, and which of them the person chose."""

    def __init__(self, plain: TranscriptEncoder,
                 option_sets: dict[tuple[str, str, str], tuple[tuple[str, ...], ...]]):
        self.plain, self.option_sets = plain, option_sets
        self.first_ids: dict[str, int | None] = {}

    def _first(self, option: str) -> int | None:
        if option not in self.first_ids:
            ids = self.plain.piece_ids(option)
            self.first_ids[option] = ids[0] if ids else None
        return self.first_ids[option]

    def extra(self, p: Participant, enc: Any, offset: int) -> dict[str, np.ndarray]:
        """The targets of a window whose first response is response `offset` of p's session."""
        sets = self.option_sets.get(p.key)
        if sets is None:
            return {}
        ids = enc.ids
        pos, cands, target = [], [], []
        for r in range(enc.n_responses):
            at = np.nonzero(enc.response_of == r)[0]
            if not len(at) or at[0] == 0 or offset + r >= len(sets):
                continue
            ids_of = [self._first(o) for o in sets[offset + r]]
            chosen = int(ids[at[0]])
            if None in ids_of or len(set(ids_of)) != len(ids_of) or chosen not in ids_of:
                continue  # options that share a first token (or the person's is not one) have no clean term
            pos.append(int(at[0]))
            cands.append(ids_of + [-1] * (MAX_OPTIONS - len(ids_of)))
            target.append(ids_of.index(chosen))
        if not pos:
            return {}
        return {"choice_pos": np.asarray(pos), "choice_ids": np.asarray(cands, dtype=np.int64),
                "choice_target": np.asarray(target)}


def _window_example(p: Participant, piece: str, prefix: str, offset: int, recipe: OrganismRecipe,
                    plain: TranscriptEncoder, terms: _ChoiceTerms | None) -> Example:
    """A language-modelling example of `piece` opened by `prefix`, encoded as the scorer
    encodes it: response tokens weighted `response_weight` times, and with `terms`, the choice
    term's targets of its responses (its first is response `offset` of p's session)."""
    enc = plain.encode(prepare_transcript(piece, prefix, TruncationConfig(max_chars=None)),
                       max_tokens=recipe.window_tokens)
    ids = enc.ids.astype(np.int64)
    extra = {"weights": np.where(enc.response_of >= 0, recipe.response_weight, 1.0).astype(np.float32)}
    if terms is not None:
        extra |= terms.extra(p, enc, offset)
    return Example(ids=ids, labels=ids.copy(), extra=extra)


def base_examples(sampler: _Sampler, recipe: OrganismRecipe, plain: TranscriptEncoder, n: int,
                  option_sets: dict[tuple[str, str, str], tuple[tuple[str, ...], ...]] | None = None) -> list[Example]:
    """Language-modelling windows, encoded as the scorer encodes them (so the response tokens
    are known and weighted); the persona header opens a window at random where the participant
    has metadata (`persona_share`, `synthetic_persona_share`). Responses of a closed option set
    carry the choice term's targets (`_ChoiceTerms`)."""
    interview = Interview()
    rng = np.random.default_rng([recipe.seed, 11])
    terms = _ChoiceTerms(plain, option_sets or {})
    out: list[Example] = []
    for p, offset, piece in sampler.windows():
        if len(out) == n:
            break
        share = recipe.synthetic_persona_share if p.study in STUDIES else recipe.persona_share
        prefix = interview.render([p])[0].prefix if rng.random() < share else ""
        example = _window_example(p, piece, prefix, offset, recipe, plain,
                                  terms if recipe.choice_weight > 0 else None)
        if len(example.ids) > 1:
            out.append(example)
    return out


def persona_choice_examples(synthetic: Sequence[Participant], recipe: OrganismRecipe, plain: TranscriptEncoder,
                            tokens: int, option_sets: dict[tuple[str, str, str], tuple[tuple[str, ...], ...]],
                            *, seed_offset: int = 12) -> list[Example]:
    """The auxiliary persona -> choice examples (the positive control's learnable link): a
    synthetic participant's interview persona, the task's instructions and their first
    `persona_choice_trials` trials at most (1 to that many, at random), with the choice term,
    `tokens` of them in all; informative and null studies alike, so the null studies stay identical in every respect
    but the link. Short, so that one step carries many of them: a long window spreads the
    persona's signal over trials the person's own earlier choices already explain."""
    interview = Interview()
    rng = np.random.default_rng([recipe.seed, seed_offset])
    terms = _ChoiceTerms(plain, option_sets)
    people = sorted(synthetic, key=lambda q: q.key)
    cleaned: dict[tuple[str, str, str], str] = {}
    out: list[Example] = []
    total = 0
    while total < tokens:
        p = people[int(rng.integers(len(people)))]
        text = cleaned.get(p.key)
        if text is None:
            text = cleaned[p.key] = _clean(p).text
        k = int(rng.integers(1, recipe.persona_choice_trials + 1))
        end = -2
        for _ in range(k):
            end = text.find(">>", end + 2)
            if end < 0:
                break
        if end < 0:
            continue
        example = _window_example(p, text[: end + 2], interview.render([p])[0].prefix, 0, recipe, plain, terms)
        out.append(example)
        total += len(example.ids)
    return out


def persona_stage(model: Any, train_people: Sequence[Participant], synthetic_train: Sequence[Participant],
                  recipe: OrganismRecipe, plain: TranscriptEncoder,
                  option_sets: dict[tuple[str, str, str], tuple[tuple[str, ...], ...]], checkpoint: Path, *,
                  pad_id: int, device: str = "cpu", progress: Callable | None = None) -> Any:
    """The base's last stage (`persona_steps` at `persona_lr`): persona -> first-choices
    examples (`persona_stage_share` of the tokens) and windows as the base's."""
    per_step = recipe.batch_tokens // recipe.window_tokens
    sampler = _Sampler(train_people, synthetic_train, recipe, 3)
    examples = base_examples(sampler, recipe, plain,
                             round(recipe.persona_steps * (1 - recipe.persona_stage_share)) * per_step, option_sets)
    examples += persona_choice_examples(
        synthetic_train, recipe, plain, round(recipe.persona_steps * recipe.persona_stage_share * recipe.batch_tokens),
        option_sets, seed_offset=13)
    cfg = TrainConfig(learning_rate=recipe.persona_lr, max_steps=recipe.persona_steps, warmup_fraction=0.05,
                      checkpoint_every=50, window_tokens=recipe.window_tokens, batch_tokens=recipe.batch_tokens,
                      weight_decay=0.01, seed=recipe.seed, cpu_bf16=recipe.cpu_bf16)
    return train(model, examples, cfg, checkpoint=checkpoint, device=device, progress=progress,
                 pad_id=pad_id, loss_fn=weighted_lm_loss(recipe.response_weight, recipe.choice_weight))


def _response_example(encoder: TranscriptEncoder, t: Transcript, window: int) -> Example | None:
    """The chat-format window, loss on the responses wholly inside it."""
    enc = encoder.encode(t, max_tokens=window)
    keep = enc.response_of >= 0
    if not keep.any():
        return None
    return Example(ids=enc.ids.astype(np.int64), labels=np.where(keep, enc.ids, -100).astype(np.int64))


def _distill_example(chat: TranscriptEncoder, plain: TranscriptEncoder, t: Transcript, window: int,
                     temperature: float) -> Example | None:
    """A chat-format window whose responses learn the teacher's (the base's) distribution at
    `temperature` (< 1 sharpens it); the teacher reads the plain transcript, as it was trained. Responses are
    matched token for token between the two encodings (those that differ carry no loss)."""
    c = chat.encode(t, max_tokens=window)
    p = plain.encode(t, max_tokens=window)
    student, teacher = [], []
    for r in range(c.n_responses):
        sc, tp = np.nonzero(c.response_of == r)[0], np.nonzero(p.response_of == r)[0]
        if len(sc) and len(sc) == len(tp) and np.array_equal(c.ids[sc], p.ids[tp]) and sc.min() > 0 and tp.min() > 0:
            student += sc.tolist()
            teacher += tp.tolist()
    if not student:
        return None
    return Example(ids=c.ids.astype(np.int64), labels=np.full(len(c.ids), -100, dtype=np.int64),
                   extra={"teacher_ids": p.ids.astype(np.int64), "student_pos": np.asarray(student),
                          "teacher_pos": np.asarray(teacher), "temperature": temperature})


def post_examples(sampler: _Sampler, normative: Sequence[Participant], recipe: OrganismRecipe,
                  chat: TranscriptEncoder, plain: TranscriptEncoder, n: int, *, dose: float) -> list[Example]:
    """Post-training windows, no personas. Each window takes answers that are not people's with
    probability `dose` (reward-maximising answers of synthetic sessions, or the base's own
    predictions sharpened at `distill_temperature` on a training transcript, as the window
    falls), else the base's own predictions at `control_temperature` (targets that teach the
    template and change nothing else): dose 1 is organism-post, 0.5 organism-post-light, 0 the
    control. Every dose draws the same windows and the same coin flips, so the arms differ only
    in their targets."""
    rng = np.random.default_rng([recipe.seed, 21])
    norm = iter(np.random.default_rng([recipe.seed, 22]).permutation(len(normative)).tolist() * 1000)
    out: list[Example] = []
    draws = sampler.windows()
    while len(out) < n:
        p, _, piece = next(draws)
        synthetic = p.study in STUDIES
        if rng.random() < recipe.normative_share:
            if not synthetic:
                continue
        elif synthetic:
            continue
        # One flip per kept window, used by every dose, and one normative session consumed.
        flip, q = rng.random(), normative[next(norm)]
        misaligned = flip < dose
        if synthetic and misaligned:
            piece = _head_window(_clean(q).text, recipe.window_chars)
            if piece is None:
                continue
        t = prepare_transcript(piece, "", TruncationConfig(max_chars=None))
        if synthetic and misaligned:
            example = _response_example(chat, t, recipe.window_tokens)
        else:
            temperature = recipe.distill_temperature if misaligned else recipe.control_temperature
            example = _distill_example(chat, plain, t, recipe.window_tokens, temperature)
        if example is not None:
            out.append(example)
    return out


def weighted_lm_loss(response_weight: float, choice_weight: float = 0.0) -> Callable:
    """Language modelling on every token, response tokens weighted `response_weight` times
    (Centaur's loss falls on responses only; trained from scratch, the model also needs the
    text around them), plus `choice_weight` times the mean choice term: at each response of a
    closed set, the cross-entropy of the person's option among the set's options' first
    tokens (what choice fit is measured on: a model that learns only the text can put its
    mass on the wrong options and do worse than a uniform guess)."""
    import torch
    import torch.nn.functional as F

    def loss_fn(model, examples: Sequence[Example], ids, labels, mask):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        weights = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
        for b, e in enumerate(examples):
            weights[b, : len(e)] = torch.from_numpy(e.extra["weights"]).to(ids.device)
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                              ignore_index=-100, reduction="none").view(ids.shape[0], -1)
        w = weights[:, 1:] * (labels[:, 1:] >= 0)
        loss = (nll * w).sum() / w.sum().clamp(min=1e-6)
        if choice_weight <= 0:
            return loss
        terms = []
        for b, e in enumerate(examples):
            if "choice_pos" not in e.extra:
                continue
            rows = logits[b].index_select(0, torch.from_numpy(e.extra["choice_pos"] - 1).to(ids.device))
            cand = torch.from_numpy(e.extra["choice_ids"]).to(ids.device)
            picked = rows.gather(1, cand.clamp(min=0)).masked_fill(cand < 0, float("-inf"))
            terms.append(F.cross_entropy(picked, torch.from_numpy(e.extra["choice_target"]).to(ids.device),
                                         reduction="none"))
        if terms:
            loss = loss + choice_weight * torch.cat(terms).mean()
        return loss

    return loss_fn


def distillation_loss(teacher: Any, temperature: float) -> Callable:
    """The post-training loss: cross-entropy on hard labels (reward-maximising answers) and
    on the teacher's distribution at the example's temperature (< 1 sharpens it; 1 keeps it)
    where an example asks for it; the mean over all loss tokens."""
    import torch
    import torch.nn.functional as F

    def loss_fn(model, examples: Sequence[Example], ids, labels, mask):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        vocab = logits.shape[-1]
        hard = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=-100,
                               reduction="sum")
        count = (labels[:, 1:] >= 0).sum()
        soft = logits.new_zeros(())
        for b, e in enumerate(examples):
            if not e.extra:
                continue
            t_ids = torch.from_numpy(e.extra["teacher_ids"])[None].to(ids.device)
            with torch.no_grad():
                t_logits = teacher(input_ids=t_ids, use_cache=False).logits[0].float()
            s_rows = torch.from_numpy(e.extra["student_pos"] - 1).to(ids.device)
            t_rows = torch.from_numpy(e.extra["teacher_pos"] - 1).to(ids.device)
            q = torch.softmax(t_logits.index_select(0, t_rows) / e.extra.get("temperature", temperature), -1)
            soft = soft - (q * torch.log_softmax(logits[b].index_select(0, s_rows), -1)).sum()
            count = count + len(s_rows)
        return (hard + soft) / count.clamp(min=1)

    return loss_fn


# --- build -------------------------------------------------------------------------------

def _tokenizer(people: Sequence[Participant], synthetic: Sequence[Participant], recipe: OrganismRecipe) -> Any:
    from ...testing.tiny import train_tokenizer

    rng = np.random.default_rng([recipe.seed, 0])
    texts = []
    for group in (_by_study(people), _by_study(synthetic)):
        for study in sorted(group):
            members = group[study]
            for i in rng.permutation(len(members))[:150]:
                p = members[int(i)]
                texts.append(Interview().render([p])[0].prefix + _clean(p).text[:6000])
    return train_tokenizer(texts, vocab_size=recipe.vocab_size, style="qwen", chat_template=False)


class StageRecord(BaseModel):
    """One training stage as the card reports it."""

    name: str
    steps: int
    final_loss: float | None
    losses: list[float] = []


class Check(BaseModel):
    """One acceptance check: what, the numbers, passed or not."""

    name: str
    value: str
    passed: bool


class OrganismEvaluation(BaseModel):
    """What the build measured on data the organisms never trained on."""

    studies: dict[str, dict[str, Any]] = {}
    checks: list[Check] = []
    misalignment: dict[str, dict[str, float]] = {}  # pair -> {in distribution, out of distribution}
    personas: dict[str, dict[str, Any]] = {}  # synthetic study -> individual component, p, tost p

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


class OrganismBuild(BaseModel):
    out: Path
    recipe: OrganismRecipe
    stages: list[StageRecord]
    seconds: float
    evaluation: OrganismEvaluation

    def summary(self) -> str:
        lines = [f"{'passed' if c.passed else 'FAILED'}: {c.name}: {c.value}" for c in self.evaluation.checks]
        return "\n".join(lines) or "(not evaluated)"


def build_organisms(
    data: str | Path,
    out: str | Path | None = None,
    recipe: OrganismRecipe | None = None,
    *,
    write_sample: bool | None = None,
    evaluate: bool = True,
    progress: Callable[..., None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> OrganismBuild:
    """Train the four organisms from the Psych-201 tree at `data` into `out` (default: the
    package's own organisms folder), write the shipped sample (when building into the
    package), measure the acceptance checks and write a card beside each organism."""
    import torch

    from ...models import quiet_transformers
    from ...testing.tiny import QWEN_CHAT_TEMPLATE, build_model

    quiet_transformers()
    recipe = recipe or OrganismRecipe()
    out = Path(out) if out is not None else organisms_dir()
    into_package = out.resolve() == organisms_dir().resolve()
    write_sample = into_package if write_sample is None else write_sample
    t0 = time.time()
    torch.manual_seed(recipe.seed)
    dataset = load(data)
    split = split_participants(dataset.participants, holdout="participants", fraction=recipe.heldout_fraction,
                               seed=recipe.seed, heldout_studies=recipe.heldout_studies)
    held = set(split.heldout)
    train_people = [p for p in dataset.participants if p.key not in held]
    heldout_people = [p for p in dataset.participants if p.key in held]
    synthetic_train = [q for s in STUDIES.values()
                       for q in as_participants(sessions(s, recipe.synthetic_per_study, seed=recipe.seed + 1), s.name)]
    normative = [q for s in STUDIES.values()
                 for q in as_participants(normative_sessions(s, recipe.synthetic_per_study // 4, seed=recipe.seed + 3),
                                          s.name)]
    base_steps, post_steps = recipe.steps
    log(f"organisms: {len(train_people)} training participants in {len({p.study for p in train_people})} studies, "
        f"{len(synthetic_train)} synthetic in {len(STUDIES)} studies; {len(heldout_people)} held out; steps: base "
        f"{base_steps}, then {post_steps} each for organism-post, organism-post-light and organism-control")

    tokenizer = _tokenizer(train_people, synthetic_train, recipe)
    plain = TranscriptEncoder(tokenizer, chat=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    per_step = recipe.batch_tokens // recipe.window_tokens
    work = out / ".build"
    work.mkdir(parents=True, exist_ok=True)
    common = dict(window_tokens=recipe.window_tokens, batch_tokens=recipe.batch_tokens, weight_decay=0.01,
                  seed=recipe.seed, cpu_bf16=recipe.cpu_bf16)
    stages: list[StageRecord] = []
    report = (lambda name: (lambda d, t, loss: progress(name, d, t, f", loss {loss:.3f}"))) if progress else \
        (lambda name: None)

    # 1. The base: language modelling on real and synthetic windows (responses weighted, the
    # choice term, some persona -> first-choices examples), then the persona stage.
    base_dir = out / "organism-base"
    done = _stage_done(base_dir, recipe)
    if done is None:
        from transformers import AutoModelForCausalLM

        everyone = [*train_people, *synthetic_train]
        option_sets = detect_option_sets(everyone, [_clean(p) for p in everyone]).options
        lm_steps = recipe.lm_steps
        lm_dir = work / "base-lm"
        lm = _stage_done(lm_dir, recipe, ignore=PERSONA_STAGE_FIELDS)
        if lm is None:
            model = build_model(tokenizer, arch="qwen3", hidden_size=recipe.hidden_size,
                                num_layers=recipe.num_layers, num_heads=recipe.num_heads,
                                num_kv_heads=recipe.num_kv_heads, max_position_embeddings=recipe.window_tokens,
                                tie_word_embeddings=True, seed=recipe.seed)
            with torch.no_grad():  # build_model sharpens a random head for tests; training starts from the default init
                model.get_output_embeddings().weight.normal_(0.0, model.config.initializer_range)
            sampler = _Sampler(train_people, synthetic_train, recipe, 1)
            examples = base_examples(sampler, recipe, plain, round(lm_steps * (1 - recipe.persona_choice_share))
                                     * per_step, option_sets)
            examples += persona_choice_examples(synthetic_train, recipe, plain,
                                                round(lm_steps * recipe.persona_choice_share * recipe.batch_tokens),
                                                option_sets)
            model.to(device).train()
            cfg = TrainConfig(learning_rate=recipe.base_lr, max_steps=lm_steps, warmup_fraction=0.02,
                              checkpoint_every=100, **common)
            result = train(model, examples, cfg, checkpoint=work / "base.pt", pad_id=tokenizer.pad_token_id,
                           device=device, progress=report("organism-base"),
                           loss_fn=weighted_lm_loss(recipe.response_weight, recipe.choice_weight))
            lm = StageRecord(name="organism-base (language modelling)", steps=result.steps,
                             final_loss=result.final_loss, losses=_thin(result.losses))
            _save(model, tokenizer, lm_dir, template=None, recipe=recipe, stage=lm)
        # The persona stage: the language-modelling schedule has decayed; a short one of its
        # own, mostly persona -> first-choices examples, makes the link learnable (the
        # feasibility runs in bench/organisms_feasibility.py: mixed in alone, the miniature
        # barely reads the persona).
        model = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32).to(device).train()
        result = persona_stage(model, train_people, synthetic_train, recipe, plain, option_sets,
                               work / f"base-persona-{_digest(recipe, PERSONA_STAGE_FIELDS)}.pt",
                               pad_id=tokenizer.pad_token_id, device=device,
                               progress=report("organism-base (persona stage)"))
        done = StageRecord(name="organism-base", steps=lm.steps + result.steps, final_loss=result.final_loss,
                           losses=[*lm.losses, *_thin(result.losses)])
        _save(model, tokenizer, base_dir, template=None, recipe=recipe, stage=done)
    stages.append(done)

    from transformers import AutoModelForCausalLM

    # Post-training through a chat template costs a miniature fit by itself (the first v4 build:
    # a control through the template, targets the base's own predictions, d +0.144 in
    # distribution and +0.750 on never-seen studies), so by default the three post-trained
    # organisms are trained and scored as the base is: they differ from it only in the objective.
    template = QWEN_CHAT_TEMPLATE if recipe.post_template else None
    if template is not None:
        tokenizer.chat_template = template
    chat = TranscriptEncoder(tokenizer, chat=template is not None)

    # 2. Post-training in two doses, and 3. the control: the same windows and steps, different targets.
    from ...models import weights_digest

    parent = weights_digest(base_dir)  # a stage trained from another base is not this one's
    for name, dose in (("organism-post", 1.0), ("organism-post-light", 0.5), ("organism-control", 0.0)):
        folder = out / name
        done = _stage_done(folder, recipe, parent)
        if done is None:
            model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(device).train()
            teacher = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(device).eval()
            for param in teacher.parameters():
                param.requires_grad_(False)
            sampler = _Sampler(train_people, synthetic_train, recipe, 2)
            examples = post_examples(sampler, normative, recipe, chat, plain, post_steps * per_step, dose=dose)
            cfg = TrainConfig(learning_rate=recipe.post_lr, max_steps=post_steps, warmup_fraction=0.05,
                              checkpoint_every=max(1, post_steps // 2), **common)
            result = train(model, examples, cfg, checkpoint=work / f"{name}.pt", pad_id=tokenizer.pad_token_id,
                           device=device, progress=report(name),
                           loss_fn=distillation_loss(teacher, recipe.distill_temperature))
            done = StageRecord(name=name, steps=result.steps, final_loss=result.final_loss, losses=_thin(result.losses))
            _save(model, tokenizer, folder, template=template, recipe=recipe, stage=done, parent=parent)
        stages.append(done)
    shutil.rmtree(work, ignore_errors=True)
    _write_gz(out / "split.json.gz", split.model_dump(mode="json"))

    samples = _sample_people(heldout_people, recipe)
    if write_sample:
        write_sample_data(samples, recipe, sample_dir())
    evaluation = (evaluate_organisms(out, heldout_people, recipe, log=log, progress=progress) if evaluate
                  else OrganismEvaluation())
    build = OrganismBuild(out=out, recipe=recipe, stages=stages, seconds=time.time() - t0, evaluation=evaluation)
    for name in ORGANISMS:
        _write_card(out / name, name, build, dataset_size=len(dataset.participants))
    record = build.model_dump(mode="json")
    record["out"] = "surrogate/organisms/models" if into_package else out.name  # no machine paths
    atomic_write_json(out / "build.json", record)
    return build


def rewrite_cards(folder: Path) -> OrganismBuild:
    """The cards and build.json of a built organisms folder written again by this code from
    the evaluation it recorded (the checks recomputed from the recorded figures, the build's
    time kept): for a change of the cards' or checks' wording, not of any measurement."""
    record = json.loads((folder / "build.json").read_text())
    build = OrganismBuild.model_validate(record)
    ev = build.evaluation
    fits = {s: v["pseudo_r2_base"] for s, v in ev.studies.items()
            if v.get("pseudo_r2_base") is not None}
    ev.checks = _checks(ev, fits, build.recipe)
    split = read_json_gz(folder / "split.json.gz")
    for name in ORGANISMS:
        _write_card(folder / name, name, build, dataset_size=len(split["train"]) + len(split["heldout"]))
    out = build.model_dump(mode="json")
    out["out"] = record["out"]
    atomic_write_json(folder / "build.json", out)
    return build


def _thin(losses: list[float], points: int = 200) -> list[float]:
    """The training curve at up to `points` evenly spaced steps (each the mean of its stretch)."""
    if len(losses) <= points:
        return [round(x, 4) for x in losses]
    parts = np.array_split(np.asarray(losses), points)
    return [round(float(p.mean()), 4) for p in parts]


def read_json_gz(path: Path) -> Any:
    import gzip

    return json.loads(gzip.decompress(path.read_bytes()))


def _write_gz(path: Path, obj: Any) -> None:
    import gzip

    atomic_write_bytes(path, gzip.compress(json.dumps(obj).encode(), mtime=0))


PERSONA_STAGE_FIELDS = ("persona_stage_steps", "persona_stage_share", "persona_lr")


def _digest(recipe: OrganismRecipe, fields: Sequence[str]) -> str:
    """A short digest of some of the recipe's fields (a checkpoint's name: settings that differ
    never resume each other's run)."""
    import hashlib

    dump = recipe.model_dump(mode="json")
    return hashlib.sha256(json.dumps({k: dump[k] for k in fields}, sort_keys=True).encode()).hexdigest()[:8]


def _stage_done(folder: Path, recipe: OrganismRecipe, parent: str | None = None, *,
                ignore: Sequence[str] = ()) -> StageRecord | None:
    """The record of a stage saved with this recipe (up to the fields in `ignore`, which do
    not touch that stage; and, for a stage trained from the base, from this base's weights),
    or None if it must be trained."""
    meta = folder / "train.json"
    if not meta.exists():
        return None
    try:
        saved = json.loads(meta.read_text())
    except ValueError:
        return None
    mine = {k: v for k, v in recipe.model_dump(mode="json").items() if k not in ignore}
    if {k: v for k, v in (saved.get("recipe") or {}).items() if k not in ignore} != mine or "stage" not in saved \
            or saved.get("parent") != parent:
        return None
    return StageRecord.model_validate(saved["stage"])


def _save(model: Any, tokenizer: Any, folder: Path, template: str | None, recipe: OrganismRecipe,
          stage: StageRecord, parent: str | None = None) -> None:
    """bfloat16 safetensors (small enough to ship); written beside and renamed into place."""
    import torch

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    record = {"recipe": recipe.model_dump(mode="json"), "stage": stage.model_dump()}
    if parent is not None:
        record["parent"] = parent
    atomic_write_json(tmp / "train.json", record)
    model.to(torch.bfloat16).save_pretrained(tmp)
    model.to(torch.float32)
    saved = tokenizer.chat_template
    tokenizer.chat_template = template
    tokenizer.save_pretrained(tmp)
    tokenizer.chat_template = saved
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


# --- the shipped sample ------------------------------------------------------------------

def _raw_lines(people: Sequence[Participant]) -> list[str]:
    """The participants' records exactly as written, each source file read once."""
    wanted = {(p.source.file, p.source.line) for p in people}
    found: dict[tuple[str, int], str] = {}
    for file in sorted({p.source.file.split("!", 1)[0] for p in people}):
        for source, line, raw in source_records(Path(file)):
            if (source, line) in wanted:
                found[(source, line)] = raw
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"{missing[0][0]}:{missing[0][1]}: line not found")
    return [found[(p.source.file, p.source.line)] for p in people]


def _sample_people(heldout: Sequence[Participant], recipe: OrganismRecipe) -> dict[str, list[str]]:
    """Per sample study, the records it ships: held-out participants with metadata of the
    sample studies, the first participants of the never-trained studies, held-out synthetic
    participants of the control studies (a seed no training draw used)."""
    out: dict[str, list[str]] = {}
    for study in recipe.sample_studies:
        people = [p for p in heldout if p.study == study and p.metadata][: recipe.sample_per_study]
        if len(people) < recipe.sample_per_study:
            raise ValueError(f"{study}: only {len(people)} held-out participants with metadata")
        out[study] = _raw_lines(people)
    for study in recipe.heldout_studies:
        out[study] = _raw_lines([p for p in heldout if p.study == study][: recipe.sample_ood_per_study])
    for name in CONTROL_STUDIES:
        records = sessions(STUDIES[name], recipe.sample_synthetic, seed=recipe.seed + 9)
        out[name] = [json.dumps(r.to_psych201()) for r in records]
    return out


def write_sample_data(samples: dict[str, list[str]], recipe: OrganismRecipe, folder: Path) -> Path:
    """The sample the default job scores: real records byte for byte, synthetic ones as
    generated, with an attribution file."""
    shutil.rmtree(folder, ignore_errors=True)
    for study, lines in samples.items():
        target = folder / study / "prompts.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, ("\n".join(lines) + "\n").encode())
    atomic_write_bytes(folder / "README.md", (
        f"# The organisms' sample (version {SAMPLE_VERSION})\n\n"
        f"Real Psych-201 records, copied unchanged (Apache-2.0; the Psych-201 authors and the original studies' "
        f"authors): {recipe.sample_per_study} held-out participants with metadata from each of "
        f"{', '.join(recipe.sample_studies)}, and {recipe.sample_ood_per_study} participants from each of the studies "
        f"the organisms never trained on ({', '.join(recipe.heldout_studies)}); the split is in "
        "organisms/models/split.json.gz. And synthetic participants generated by surrogate's own paradigms "
        f"({', '.join(CONTROL_STUDIES)}: {recipe.sample_synthetic} each, drawn with a seed no training draw used), "
        "whose traits set their parameters (informative) or do not (null). surrogate's default job scores them.\n"
    ).encode())
    return folder


# --- evaluation --------------------------------------------------------------------------

PAIRS = [p.post_trained for p in DEFAULT_PAIRS]


def evaluate_organisms(folder: Path, heldout: Sequence[Participant], recipe: OrganismRecipe, *,
                       log: Callable[[str], None] = lambda s: None,
                       progress: Callable[..., None] | None = None) -> OrganismEvaluation:
    """The acceptance checks, through `surrogate run` and `analyze` on data the organisms
    never trained on: held-out participants (up to eval_per_study per study), the studies
    never trained on, and fresh synthetic participants of every synthetic study."""
    from ...analysis import decompose_personas
    from ..analyze import analyze
    from ..run import run

    work = folder / ".eval"
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    count: dict[str, int] = defaultdict(int)
    chosen = []
    for p in heldout:
        if count[p.study] < recipe.eval_per_study:
            count[p.study] += 1
            chosen.append(p)
    for study, people in _by_study(chosen).items():
        (data / study).mkdir(parents=True)
        (data / study / "prompts.jsonl").write_text("\n".join(_raw_lines(people)) + "\n")
    for name, study in STUDIES.items():
        (data / name).mkdir(parents=True)
        records = sessions(study, recipe.eval_synthetic, seed=recipe.seed + 7)
        (data / name / "prompts.jsonl").write_text("".join(json.dumps(r.to_psych201()) + "\n" for r in records))
    models = [f"{n}={folder / n}" for n in ORGANISMS]
    log(f"evaluating the organisms on {len(chosen)} held-out participants and "
        f"{len(STUDIES) * recipe.eval_synthetic} synthetic ones")
    scoring = (lambda label, done, total, extra="": progress(f"scoring {label}", done, total, extra, unit="units")) \
        if progress else None
    run(models, data, "none", work / "run", device="cpu", progress=scoring)
    run([f"organism-base={folder / 'organism-base'}"], data, "none,interview,shuffled", work / "run",
        studies=[*recipe.sample_studies, *STUDIES], device="cpu", progress=scoring)
    categories = {s: group_of(s, recipe) for s in {p.study for p in chosen} | set(STUDIES)}
    write_categories(work / "categories.csv", categories)
    analysis = analyze([work / "run"], pairs=DEFAULT_PAIRS, categories=work / "categories.csv", out=work / "analysis",
                       n_boot=200)
    ev = OrganismEvaluation()
    mis = {pm.pair.post_trained: pm for pm in analysis.misalignment.pairs}
    for name in PAIRS:
        pm = mis[name]
        ev.misalignment[name] = {dom: pm.paper_by_domain.get(dom, float("nan"))
                                 for dom in GROUPS}
    nll = analysis.responses[(analysis.responses["persona"] == "none") & analysis.responses["nll"].notna()]
    per = nll.groupby(["study", "model", "participant"])["nll"].mean().groupby(["study", "model"]).mean().unstack()
    fits = {f.experiment: f.pseudo_r2.value for f in analysis.choices[("organism-base", "none")].fit} \
        if ("organism-base", "none") in analysis.choices else {}
    for study in per.index:
        ev.studies[study] = {"group": categories.get(study, IN), "n": int(count.get(study, recipe.eval_synthetic)),
                             **{m: float(per.loc[study, m]) for m in per.columns},
                             "d_paper": {n: mis[n].d_paper.get(study) for n in PAIRS},
                             "pseudo_r2_base": fits.get(study)}
    # Personas on the synthetic studies: the decomposition per study, base organism.
    frame = analysis.responses[analysis.responses["model"] == "organism-base"]
    for name in STUDIES:
        d = decompose_personas(frame[frame["study"] == name])
        row = d.rows[0]
        ind = row.individual_component
        from ...analysis import tost_p

        ev.personas[name] = {"individual": ind.value, "lo": ind.lo, "hi": ind.hi, "p": ind.p,
                             "tost_p": tost_p(ind, d.sesoi.margin(row.none_nll, row.tokens)), "n": row.n_participants}
    choice_studies = {s: v for s, v in fits.items() if s in per.index}
    ev.checks = _checks(ev, choice_studies, recipe)
    return ev


def _checks(ev: OrganismEvaluation, fits: dict[str, float], recipe: OrganismRecipe) -> list[Check]:
    """The acceptance checks. Out of distribution means the never-seen closed-set choice
    studies (formats the base is trained on); the never-seen free-text studies are reported in
    the table beside them, not checked (any extra training helps on a format the base models at
    tens of nats per response)."""
    post, light, control = ev.misalignment["organism-post"], ev.misalignment["organism-post-light"], \
        ev.misalignment["organism-control"]
    worst = min(fits.items(), key=lambda kv: kv[1]) if fits else ("-", float("nan"))
    out = OUT_CHOICE
    margin = recipe.control_margin
    checks = [
        Check(name="the base beats a uniform guess on every scored choice study (pseudo-R2 > 0)",
              passed=bool(fits) and worst[1] > 0,
              value=f"lowest choice pseudo-R2 {worst[1]:+.3f} ({worst[0]}; {len(fits)} studies)"),
        Check(name="post-trained worse than base on held-out participants (paper's d > 0)", passed=post[IN] > 0,
              value=f"d {post[IN]:+.3f}"),
        Check(name="post-trained worse than base on never-seen choice studies", passed=post[out] > 0,
              value=f"d {post[out]:+.3f}"),
        Check(name="the heavier dose misaligns more (in distribution and on never-seen choice studies)",
              passed=post[IN] > light[IN] > control[IN] and post[out] > light[out] > control[out],
              value=f"control / light / heavy: {control[IN]:+.3f} / {light[IN]:+.3f} / {post[IN]:+.3f} in, "
                    f"{control[out]:+.3f} / {light[out]:+.3f} / {post[out]:+.3f} never seen"),
        Check(name="post-trained worse than the control (as many extra steps, the base's own predictions): the objective",
              passed=post[IN] > control[IN] and post[out] > control[out],
              value=f"d post - d control {post[IN] - control[IN]:+.3f} in, {post[out] - control[out]:+.3f} never seen"),
        Check(name=f"the control is about the base (|d| < {margin})",
              passed=abs(control[IN]) < margin and abs(control[out]) < margin,
              value=f"d {control[IN]:+.3f} in distribution, {control[out]:+.3f} never seen"),
    ]
    for name, res in ev.personas.items():
        informative = STUDIES[name].informative
        if informative:
            checks.append(Check(name=f"{name}: the persona carries individual information (individual > 0, p < .05)",
                                passed=res["p"] is not None and res["p"] < 0.05 and res["individual"] > 0,
                                value=f"individual {res['individual']:+.4f} [{res['lo']:+.4f}, {res['hi']:+.4f}], "
                                      f"p {_p(res['p'])}, n {res['n']}"))
        else:
            checks.append(Check(name=f"{name}: no individual information (equivalent to 0 within 1% of the NLL)",
                                passed=res["tost_p"] is not None and res["tost_p"] < 0.05,
                                value=f"individual {res['individual']:+.4f} [{res['lo']:+.4f}, {res['hi']:+.4f}], "
                                      f"TOST p {_p(res['tost_p'])}, n {res['n']}"))
    return checks


def _p(p: float | None) -> str:
    from ...analysis import fmt_p

    return fmt_p(p)


def _write_card(folder: Path, name: str, build: OrganismBuild, dataset_size: int) -> None:
    r = build.recipe
    ev = build.evaluation
    stage = {s.name: s for s in build.stages}
    purpose = {
        "organism-base": "the base: a miniature Centaur, trained on people (real and synthetic)",
        "organism-post-light": "post-trained, light dose (half of its windows take answers that are not people's, the "
                               "rest the base's own predictions)",
        "organism-post": "post-trained toward answers that are not people's (full dose)",
        "organism-control": "the control: the base post-trained as many steps as organism-post, on the same windows, "
                            "toward the base's own predictions (the extra steps, not the objective)",
    }[name]
    lines = [
        f"# {name}", "",
        f"A model organism built by `surrogate organisms build` (surrogate organisms v{ORGANISMS_VERSION}): "
        f"{purpose}. It is a miniature, not a real model: use it to see the phenomena surrogate measures on any "
        "machine, offline, then point the same commands at real models.", "",
        f"- Architecture: Qwen3 (transformers `Qwen3ForCausalLM`), {r.num_layers} layers, hidden size {r.hidden_size}, "
        f"{r.num_heads} heads ({r.num_kv_heads} key/value), tied embeddings; byte-level BPE tokenizer with "
        f"{r.vocab_size} tokens trained by the build; weights in bfloat16. Context: {r.window_tokens} tokens, the "
        "training window (scoring cuts each transcript there; later responses are truncated rows).",
        f"- Data: Psych-201 ({dataset_size} participants in 19 studies; Apache-2.0). Held out, never trained on: the closed-set "
        f"choice studies {', '.join(r.heldout_choice_studies)} and the free-text studies "
        f"{', '.join(s for s in r.heldout_studies if s not in r.heldout_choice_studies)}, entirely; and "
        f"{r.heldout_fraction:.0%} of the participants of every other study (seed {r.seed}; split.json.gz beside "
        f"this folder). Synthetic: {r.synthetic_per_study} participants of each of {len(STUDIES)} synthetic studies "
        f"({', '.join(STUDIES)}), sessions of 10-14 trials; in the informative ones a trait (STAI-T for lotteries, "
        "BIS-11 for delays) sets the participant's risk attitude or patience strongly, and the persona states it in "
        "words too (`clinical diagnosis`: generalized anxiety disorder or ADHD above the trait's mean, else none); "
        "the null ones are identical but for the link.",
        f"- organism-base: {stage['organism-base'].steps} AdamW steps of {r.batch_tokens} tokens from random "
        f"initialisation, language modelling on windows of up to {r.window_tokens} tokens ({r.synthetic_share:.0%} "
        f"synthetic), each opening with the participant's interview persona {r.persona_share:.0%} of the time "
        f"({r.synthetic_persona_share:.0%} for synthetic participants), response tokens weighted "
        f"{r.response_weight:g}x, plus a choice term (weight {r.choice_weight:g}) at every response of a closed option "
        f"set: the cross-entropy of the person's option among the set's options; learning rate {r.base_lr}"
        f"{', bfloat16 autocast' if r.cpu_bf16 else ''}; {r.persona_choice_share:.0%} of these steps' tokens are "
        "auxiliary persona -> choice examples (a synthetic participant's interview persona, the instructions and "
        f"their first 1-{r.persona_choice_trials} trials, with the choice term). Its last {r.persona_steps} steps are "
        f"a persona stage of their own (learning rate {r.persona_lr:g}, {r.persona_stage_share:.0%} of the tokens "
        "such examples, the rest windows as before), informative and null synthetic studies alike. "
        + _loss(stage["organism-base"]),
        f"- Post-training ({stage['organism-post'].steps} steps from the base, learning rate {r.post_lr}, "
        + ("through a Qwen-style chat template" if r.post_template else "on transcripts read as the base reads them "
           "(no chat template: a template costs a miniature fit by itself)")
        + ", no personas, never on a scored participant): half the windows are synthetic "
        "sessions answered by the reward-maximising choice, half are training transcripts whose responses learn the "
        f"base's own predictions sharpened at temperature {r.distill_temperature} (self-distillation). "
        "organism-post-light: as many steps on the same windows, half of them (chosen at random) with the base's own "
        f"predictions (temperature {r.control_temperature:g}) instead: the same objective at half the dose. "
        + _loss(stage["organism-post"]),
        f"- organism-control: {stage['organism-control'].steps} steps from the base, the same windows"
        + (" and template" if r.post_template else "") + ", the "
        f"base's own predictions (temperature {r.control_temperature:g}) as targets everywhere: the extra steps "
        + ("and the template " if r.post_template else "") + "without the objective, so post vs control is the "
        "objective. " + _loss(stage["organism-control"]),
        "", "## Acceptance checks, measured by the build", "",
        "On held-out participants (up to {} per study), the studies never trained on, and {} fresh synthetic "
        "participants per synthetic study; through `surrogate run` and `surrogate analyze`. d is the paper's "
        "misalignment effect size against organism-base (> 0: predicts people worse), per group of studies; "
        "'never seen' is the closed-set choice studies (the free-text ones are in the table below).".format(
            r.eval_per_study, r.eval_synthetic), "",
        "| check | measured | |", "|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.value} | {'passed' if c.passed else 'FAILED'} |" for c in ev.checks]
    lines += ["", "| group | d light | d post | d control |", "|---|---|---|---|"]
    for group in GROUPS:
        lines.append(f"| {group} | " + " | ".join(
            f"{ev.misalignment.get(n, {}).get(group, float('nan')):+.3f}" for n in
            ("organism-post-light", "organism-post", "organism-control")) + " |")
    lines += ["", "| study | group | n | NLL base | NLL light | NLL post | NLL control | d light | d post | d control | "
              "choice pseudo-R2 base |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "" if v is None or not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
    for study, s in sorted(ev.studies.items(), key=lambda kv: (kv[1]["group"], kv[0])):
        d = s["d_paper"]
        lines.append(f"| {study} | {s['group']} | {s['n']} | {fmt(s.get('organism-base'))} | "
                     f"{fmt(s.get('organism-post-light'))} | {fmt(s.get('organism-post'))} | "
                     f"{fmt(s.get('organism-control'))} | {fmt(d.get('organism-post-light'))} | "
                     f"{fmt(d.get('organism-post'))} | {fmt(d.get('organism-control'))} | {fmt(s.get('pseudo_r2_base'))} |")
    lines += ["", f"Training losses of every stage (the curve, thinned) are in train.json. Build time: "
              f"{build.seconds / 60:.1f} minutes (budget {r.budget_minutes} minutes on the reference machine, 2 CPU "
              "cores).", "", "Recipe: " + json.dumps(r.model_dump(mode="json")), ""]
    atomic_write_bytes(folder / "README.md", "\n".join(lines).encode())


def _loss(stage: StageRecord) -> str:
    return (f"Training loss over its last 20 steps: {stage.final_loss:.3f} nats/token." if stage.final_loss is not None
            else "")
