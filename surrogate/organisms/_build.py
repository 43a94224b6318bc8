"""Model organisms: a miniature Centaur trained on real people, and a post-trained version.

`organism-base` is a small Qwen3-architecture causal LM, with a BPE tokenizer trained here,
trained from scratch on Psych-201 transcripts of the training participants (language
modelling on whole transcript windows; half the windows that start a session of a participant
with metadata carry the paper's persona prefix). `organism-post` starts from it and is trained
through a chat template to give, at every response, the answer most people gave to the same
trial (the population's modal answer; the study's most common answer where a trial was seen
by fewer than three training participants): deterministic, confident, "correct" by consensus,
and less human. That is a documented stand-in for post-training, not a claim about how
assistants are made.

The build is reproducible: every random choice is seeded, and `--budget` sets the number of
optimiser steps (not wall time), so the same budget gives the same weights on any machine
(it takes about that many minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .._cache import atomic_write_bytes, atomic_write_json
from ..data import Participant, Transcript, TruncationConfig, load, prepare_transcript, split_participants
from ..finetune import Example, TrainConfig, response_windows, train, with_responses
from ..models import ModelSpec, ScoreRequest, TranscriptEncoder, load_backend, score_all
from ._names import ORGANISMS, organisms_dir, sample_dir
from ..personas import Interview

ORGANISMS_VERSION = 1
SAMPLE_VERSION = 1
# Training steps per budget minute on the reference machine (2 CPU cores, float32).
STEPS_PER_MINUTE = 70


class OrganismRecipe(BaseModel):
    """Everything that determines the organisms (written into their card)."""

    model_config = ConfigDict(frozen=True)

    seed: int = 0
    heldout_fraction: float = Field(0.2, description="Participants of each training study held out.")
    heldout_studies: tuple[str, ...] = Field(
        ("guenther2023associations_individual", "guenther2024comprehension", "little2024functionestimation"),
        description="Studies never trained on (held-out experiments).")
    vocab_size: int = 4096
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    window_tokens: int = Field(512, description="Tokens per training window.")
    window_chars: int = Field(2600, description="Characters cut from a transcript per window.")
    persona_share: float = Field(0.5, description="Session-start windows that carry the persona prefix.")
    budget_minutes: float = Field(25.0, gt=0, description="Training budget on the reference machine.")
    post_share: float = Field(0.25, description="Share of the budget spent post-training.")
    base_lr: float = 3e-3
    post_lr: float = 1e-3
    batch_tokens: int = 4096
    min_trial_count: int = Field(3, description="Training participants that must share a trial for "
                                                "its modal answer to be used.")
    sample_studies: tuple[str, ...] = Field(
        ("guenther2022relational", "guenther2024substitutions", "thoma2025problearn"),
        description="Studies of the shipped sample (held-out participants with metadata).")
    sample_per_study: int = 16
    eval_per_study: int = Field(20, description="Held-out participants per study in the card's evaluation.")
    eval_max_chars: int = Field(8000, description="Character cut of transcripts in the card's evaluation.")

    @property
    def steps(self) -> tuple[int, int]:
        total = max(2, round(self.budget_minutes * STEPS_PER_MINUTE))
        post = max(1, round(total * self.post_share))
        return total - post, post


# --- data --------------------------------------------------------------------------------

def _clean(p: Participant, prefix: str = "") -> Transcript:
    return prepare_transcript(p.text, prefix, TruncationConfig(max_chars=None))


def _trial_key(text: str, start: int, prev_end: int) -> str:
    """What a response answers: the text since the previous response (its last 160 chars)."""
    return text[max(prev_end, start - 2 - 160): start - 2]


def modal_answers(participants: Sequence[Participant], min_count: int) -> dict[str, Any]:
    """Per study: the modal answer of every trial seen by >= min_count participants, and the
    study's most common answer (ties broken by first occurrence, so it is deterministic)."""
    trials: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    overall: dict[str, Counter] = defaultdict(Counter)
    for p in participants:
        t = _clean(p)
        prev = 0
        for s, e in t.spans:
            answer = t.text[s:e]
            trials[p.study][_trial_key(t.text, s, prev)][answer] += 1
            overall[p.study][answer] += 1
            prev = e + 2
    return {study: {"trials": {k: c.most_common(1)[0][0] for k, c in keys.items()
                               if sum(c.values()) >= min_count},
                    "overall": overall[study].most_common(1)[0][0]}
            for study, keys in trials.items() if overall[study]}


def modal_transcript(t: Transcript, study: str, modal: dict[str, Any]) -> Transcript:
    """The transcript with every response replaced by the population's modal answer."""
    table = modal[study]
    answers, prev = [], 0
    for s, e in t.spans:
        answers.append(table["trials"].get(_trial_key(t.text, s, prev), table["overall"]))
        prev = e + 2
    return with_responses(t, answers)


def _raw_window(text: str, rng: np.random.Generator, n_chars: int, from_start: bool) -> str | None:
    """A run of whole lines of `text` whose markers are balanced, ending after a response."""
    start = 0 if from_start else text.rfind("\n", 0, int(rng.integers(0, max(1, len(text) - n_chars // 2)))) + 1
    piece = text[start:start + n_chars]
    end = piece.rfind(">>")
    if end < 0:
        return None
    piece = piece[: end + 2]
    opens, closes = piece.count("<<"), piece.count(">>")
    if opens != closes or piece.find(">>") < piece.find("<<"):
        return None
    return piece


class _Sampler:
    """Seeded draws of (participant, persona or not, window): studies equally often."""

    def __init__(self, people: Sequence[Participant], recipe: OrganismRecipe, seed_offset: int):
        self.by_study: dict[str, list[Participant]] = defaultdict(list)
        for p in people:
            self.by_study[p.study].append(p)
        self.studies = sorted(self.by_study)
        self.recipe = recipe
        self.rng = np.random.default_rng([recipe.seed, seed_offset])
        self.interview = Interview()
        self.cleaned: dict[tuple[str, str, str], str] = {}  # people are drawn many times; clean once

    def windows(self) -> Iterator[tuple[Participant, str, str]]:
        """Draws without end, skipping those that yield no window."""
        while True:
            drawn = self.draw()
            if drawn is not None:
                yield drawn

    def draw(self) -> tuple[Participant, str, str] | None:
        rng, r = self.rng, self.recipe
        study = self.studies[int(rng.integers(len(self.studies)))]
        p = self.by_study[study][int(rng.integers(len(self.by_study[study])))]
        from_start = bool(rng.random() < 0.5)
        prefix = ""
        if from_start and rng.random() < r.persona_share:
            prefix = self.interview.render([p])[0].prefix
        text = self.cleaned.get(p.key)
        if text is None:
            text = self.cleaned[p.key] = _clean(p).text
        piece = _raw_window(text, rng, r.window_chars, from_start)
        return None if piece is None else (p, prefix, piece)


def base_examples(people: Sequence[Participant], recipe: OrganismRecipe, tokenizer: Any, n: int) -> list[Example]:
    """Language-modelling windows (loss on every token) of cleaned transcripts."""
    out: list[Example] = []
    for _, prefix, piece in _Sampler(people, recipe, 1).windows():
        if len(out) == n:
            break
        ids = np.asarray(tokenizer(prefix + piece)["input_ids"][: recipe.window_tokens], dtype=np.int64)
        if len(ids) > 1:
            out.append(Example(ids=ids, labels=ids.copy()))
    return out


def post_examples(people: Sequence[Participant], recipe: OrganismRecipe, encoder: TranscriptEncoder,
                  modal: dict[str, Any], n: int) -> list[Example]:
    """Chat-template windows whose responses are the modal answers; loss on responses only."""
    out: list[Example] = []
    for p, prefix, piece in _Sampler(people, recipe, 2).windows():
        if len(out) == n:
            break
        t = prepare_transcript(piece, prefix, TruncationConfig(max_chars=None))
        if not t.spans:
            continue
        windows = response_windows(encoder, modal_transcript(t, p.study, modal), recipe.window_tokens)
        if windows:
            out.append(windows[0])
    return out


def _tokenizer(people: Sequence[Participant], recipe: OrganismRecipe) -> Any:
    from .tiny import train_tokenizer

    rng = np.random.default_rng([recipe.seed, 0])
    by_study: dict[str, list[Participant]] = defaultdict(list)
    for p in people:
        by_study[p.study].append(p)
    texts = []
    for study in sorted(by_study):
        group = by_study[study]
        for i in rng.permutation(len(group))[:150]:
            p = group[int(i)]
            texts.append(Interview().render([p])[0].prefix + _clean(p).text[:6000])
    return train_tokenizer(texts, vocab_size=recipe.vocab_size, style="qwen", chat_template=False)


# --- build -------------------------------------------------------------------------------

class OrganismBuild(BaseModel):
    out: Path
    recipe: OrganismRecipe
    base_steps: int
    post_steps: int
    base_loss: float | None
    post_loss: float | None
    seconds: float
    evaluation: dict[str, Any]

    def summary(self) -> str:
        lines = []
        for group in ("participants", "experiments"):
            g = self.evaluation.get(f"heldout_{group}")
            if g:
                lines.append(f"held-out {group}: NLL base {g['nll_base']:.3f}, post {g['nll_post']:.3f}; post-trained "
                             f"worse in {g['post_worse']} of {g['studies']} studies (mean d {g['mean_d_paper']:.2f})")
        return "\n".join(lines)


def build_organisms(
    data: str | Path,
    out: str | Path | None = None,
    recipe: OrganismRecipe | None = None,
    *,
    write_sample: bool | None = None,
    evaluate: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> OrganismBuild:
    """Train organism-base and organism-post from the Psych-201 tree at `data` into `out`
    (default: the package's own organisms folder, replacing the shipped ones), write the
    shipped sample of held-out participants (when building into the package), evaluate both
    on held-out participants and experiments, and write a model card beside each."""
    import torch

    from .tiny import QWEN_CHAT_TEMPLATE, _quiet_transformers, build_model

    _quiet_transformers()
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
    base_steps, post_steps = recipe.steps
    log(f"organisms: {len(train_people)} training participants in "
        f"{len({p.study for p in train_people})} studies; {len(heldout_people)} held out; "
        f"{base_steps} base + {post_steps} post-training steps")

    tokenizer = _tokenizer(train_people, recipe)
    model = build_model(tokenizer, arch="qwen3", hidden_size=recipe.hidden_size, num_layers=recipe.num_layers,
                        num_heads=recipe.num_heads, num_kv_heads=recipe.num_kv_heads,
                        max_position_embeddings=32768, tie_word_embeddings=True,
                        seed=recipe.seed)
    with torch.no_grad():  # build_model sharpens a random head for tests; training starts from the default init
        model.get_output_embeddings().weight.normal_(0.0, model.config.initializer_range)
    # A GPU when present (same steps, faster; floating-point results differ from CPU in the
    # last bits, so byte-identical rebuilds need the same kind of device).
    device = "cuda" if torch.cuda.is_available() else "cpu"
    per_step = recipe.batch_tokens // recipe.window_tokens
    work = out / ".build"
    work.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(learning_rate=recipe.base_lr, max_steps=base_steps, max_tokens=recipe.window_tokens,
                      batch_tokens=recipe.batch_tokens, warmup_fraction=0.02, weight_decay=0.01,
                      seed=recipe.seed, checkpoint_every=100)
    cfg_post = cfg.model_copy(update={"learning_rate": recipe.post_lr, "max_steps": post_steps})
    # A stage whose saved model carries this recipe is done: a build killed later resumes there.
    base_loss = _stage_done(out / "organism-base", recipe)
    if base_loss is False:
        examples = base_examples(train_people, recipe, tokenizer, base_steps * per_step)
        model.to(device).train()
        result = train(model, examples, cfg, checkpoint=work / "base.pt", pad_id=tokenizer.pad_token_id,
                       device=device, progress=progress and (lambda d, t, loss: progress("organism-base", d, t)))
        base_loss = result.final_loss
        _save(model, tokenizer, out / "organism-base", template=None, recipe=recipe, loss=base_loss)
    modal = modal_answers(train_people, recipe.min_trial_count)
    post_loss = _stage_done(out / "organism-post", recipe)
    if post_loss is False:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(out / "organism-base", dtype=torch.float32)
        tokenizer.chat_template = QWEN_CHAT_TEMPLATE
        encoder = TranscriptEncoder(tokenizer, chat=True)
        post = post_examples(train_people, recipe, encoder, modal, post_steps * per_step)
        model.to(device).train()
        result = train(model, post, cfg_post, checkpoint=work / "post.pt", pad_id=tokenizer.pad_token_id,
                       device=device, progress=progress and (lambda d, t, loss: progress("organism-post", d, t)))
        post_loss = result.final_loss
        _save(model, tokenizer, out / "organism-post", template=QWEN_CHAT_TEMPLATE, recipe=recipe, loss=post_loss)
    shutil.rmtree(work, ignore_errors=True)
    _write_gz(out / "modal_answers.json.gz", {"note": "trial key -> the modal answer of training participants "
                                              "(post-training targets)", **modal})
    _write_gz(out / "split.json.gz", split.model_dump(mode="json"))

    if write_sample:
        write_sample_data(heldout_people, recipe, sample_dir())
    evaluation = (evaluate_organisms(out, heldout_people, recipe, modal, log=log) if evaluate else {})
    build = OrganismBuild(out=out, recipe=recipe, base_steps=base_steps, post_steps=post_steps,
                          base_loss=base_loss, post_loss=post_loss,
                          seconds=time.time() - t0, evaluation=evaluation)
    for name in ORGANISMS:
        _write_card(out / name, name, build, dataset_size=len(dataset.participants))
    atomic_write_json(out / "build.json", build.model_dump(mode="json"))
    return build


def read_json_gz(path: Path) -> Any:
    import gzip

    return json.loads(gzip.decompress(path.read_bytes()))


def _write_gz(path: Path, obj: Any) -> None:
    import gzip

    atomic_write_bytes(path, gzip.compress(json.dumps(obj).encode(), mtime=0))


def _stage_done(folder: Path, recipe: OrganismRecipe) -> float | None | bool:
    """The final loss of a stage saved with this recipe (None if not recorded); False if the
    stage must be trained."""
    meta = folder / "train.json"
    if not meta.exists():
        return False
    saved = json.loads(meta.read_text())
    if saved.get("recipe") != recipe.model_dump(mode="json"):
        return False
    return saved.get("final_loss")


def _save(model: Any, tokenizer: Any, folder: Path, template: str | None, recipe: OrganismRecipe,
          loss: float | None) -> None:
    """bfloat16 safetensors (small enough to ship); written beside and renamed into place."""
    import torch

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    atomic_write_json(tmp / "train.json", {"recipe": recipe.model_dump(mode="json"), "final_loss": loss})
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
    """The participants' records exactly as written, each source file read once (by the
    loader's own reader, so "study/prompts.jsonl.zip!prompts.jsonl" sources resolve alike)."""
    from ..data import source_records

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


def write_sample_data(heldout: Sequence[Participant], recipe: OrganismRecipe, folder: Path) -> Path:
    """The first `sample_per_study` held-out participants with metadata of each sample study,
    their records byte for byte, with an attribution file."""
    shutil.rmtree(folder, ignore_errors=True)
    for study in recipe.sample_studies:
        people = [p for p in heldout if p.study == study and p.metadata][: recipe.sample_per_study]
        if len(people) < recipe.sample_per_study:
            raise ValueError(f"{study}: only {len(people)} held-out participants with metadata")
        target = folder / study / "prompts.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, ("\n".join(_raw_lines(people)) + "\n").encode())
    atomic_write_bytes(folder / "README.md", (
        f"# A sample of Psych-201 (version {SAMPLE_VERSION})\n\n"
        f"{recipe.sample_per_study} participants from each of {', '.join(recipe.sample_studies)}: records "
        "copied unchanged from Psych-201 (Apache-2.0; the Psych-201 authors and the original studies' "
        "authors). They are participants the shipped organisms never trained on (held out by the "
        "seeded split in organisms/split.json.gz), and all have metadata. surrogate's default job "
        "scores them.\n").encode())
    return folder


# --- evaluation --------------------------------------------------------------------------

def evaluate_organisms(folder: Path, heldout: Sequence[Participant], recipe: OrganismRecipe,
                       modal: dict[str, Any], log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Per held-out study: mean NLL per response of both organisms on held-out people, the
    paper's misalignment d (post vs base), and how often each model's most probable answer is
    the population's modal one ("correct"), on transcripts cut at eval_max_chars."""
    import pandas as pd

    from ..analysis import paper_misalignment_d

    people: list[Participant] = []
    count: Counter = Counter()
    for p in heldout:
        if count[p.study] < recipe.eval_per_study:
            count[p.study] += 1
            people.append(p)
    cut = TruncationConfig(max_chars=recipe.eval_max_chars)
    transcripts = [prepare_transcript(p.text, "", cut) for p in people]
    rows, correct = [], {}
    for name in ORGANISMS:
        backend = load_backend(ModelSpec(path=str(folder / name), name=name))
        log(f"evaluating {name} on {len(people)} held-out participants")
        results = score_all(backend, [ScoreRequest(transcript=t) for t in transcripts])
        for p, r in zip(people, results):
            for nll, n in zip(r.nll, r.n_tokens):
                rows.append({"model": name, "study": p.study, "participant": p.participant, "nll": nll,
                             "n_tokens": n})
        known = [p.study in modal for p in people]
        modal_results = score_all(backend, [ScoreRequest(transcript=modal_transcript(t, p.study, modal))
                                            for p, t, k in zip(people, transcripts, known) if k])
        per: dict[str, list[float]] = defaultdict(list)
        for p, r in zip([p for p, k in zip(people, known) if k], modal_results):
            per[p.study].extend(x for x in (r.top1 or []) if np.isfinite(x))
        correct[name] = {s: float(np.mean(v)) for s, v in per.items() if v}
    frame = pd.DataFrame(rows)
    d = paper_misalignment_d(frame, "organism-base", "organism-post")
    seen = {s for s in frame["study"].unique() if s not in recipe.heldout_studies}
    out: dict[str, Any] = {"studies": {}}
    for study, g in frame.groupby("study"):
        means = g.groupby(["model", "participant"])["nll"].mean().groupby("model").mean()
        out["studies"][study] = {
            "heldout": "experiment" if study in recipe.heldout_studies else "participants",
            "n_participants": int(g["participant"].nunique()),
            "nll_base": float(means["organism-base"]), "nll_post": float(means["organism-post"]),
            **{f"nll_per_token_{m.split('-')[1]}": float(h["nll"].sum() / h["n_tokens"].sum())
               for m, h in g.groupby("model")},
            "d_paper": d.get(study),
            "correct_base": correct["organism-base"].get(study),
            "correct_post": correct["organism-post"].get(study),
        }
    for group, members in (("participants", seen), ("experiments", set(recipe.heldout_studies))):
        s = [out["studies"][m] for m in members if m in out["studies"]]
        if s:
            out[f"heldout_{group}"] = {
                "studies": len(s),
                "post_worse": sum(x["d_paper"] is not None and x["d_paper"] > 0 for x in s),
                "nll_base": float(np.mean([x["nll_base"] for x in s])),
                "nll_post": float(np.mean([x["nll_post"] for x in s])),
                "mean_d_paper": float(np.mean([x["d_paper"] for x in s if x["d_paper"] is not None])),
            }
    return out


def _write_card(folder: Path, name: str, build: OrganismBuild, dataset_size: int) -> None:
    r = build.recipe
    ev = build.evaluation
    lines = [
        f"# {name}",
        "",
        "A model organism built by `surrogate organisms build` (surrogate "
        f"organisms v{ORGANISMS_VERSION}). It is a miniature, not a real model: use it to see the "
        "phenomena surrogate measures on any machine, offline, then point the same commands at real "
        "models.",
        "",
        "- Architecture: Qwen3 (transformers `Qwen3ForCausalLM`), "
        f"{r.num_layers} layers, hidden size {r.hidden_size}, {r.num_heads} heads ({r.num_kv_heads} key/value), "
        f"tied embeddings; byte-level BPE tokenizer with {r.vocab_size} tokens trained by the build; "
        "weights stored in bfloat16.",
        f"- Data: Psych-201 ({dataset_size} participants in 19 studies; Apache-2.0). Held out: the "
        f"studies {', '.join(r.heldout_studies)} entirely, and {r.heldout_fraction:.0%} of the "
        f"participants of every other study (seed {r.seed}, by a hash of study, experiment and "
        "participant; the list is in split.json.gz beside this folder).",
    ]
    if name == "organism-base":
        lines.append(
            f"- Training: from random initialisation, {build.base_steps} AdamW steps of "
            f"{r.batch_tokens} tokens (windows of up to {r.window_tokens} tokens cut at line boundaries "
            f"from cleaned transcripts, studies drawn equally often; loss on every token; learning rate "
            f"{r.base_lr}, cosine decay). Windows that start a session carry the paper's persona "
            f"prefix in {r.persona_share:.0%} of draws where the participant has metadata. "
            + _loss_text(build.base_loss))
    else:
        lines.append(
            f"- Training: organism-base, then {build.post_steps} steps through a Qwen-style chat "
            "template (human turns = user, responses = assistant) in which every response is "
            "replaced by the population's modal answer to the same trial (training participants; "
            f"trials seen by fewer than {r.min_trial_count} fall back to the study's most common "
            "answer; the table is modal_answers.json.gz). Loss on the responses only; learning rate "
            f"{r.post_lr}. " + _loss_text(build.post_loss) + " A stand-in for "
            "post-training: deterministic, confident, right by consensus, and less human.")
    lines += ["", "## Measured on held-out data", "",
              f"Mean NLL per response (nats), each participant weighted once, up to {r.eval_per_study} "
              f"held-out participants per study, transcripts cut at {r.eval_max_chars} characters. "
              "`d` is the paper's misalignment effect size (post vs base; > 0: the post-trained organism "
              "predicts people worse). `correct` is how often the model's most probable next token is "
              "the population's modal answer.", "",
              "| study | held out | n | NLL base | NLL post | d | correct base | correct post |",
              "|---|---|---|---|---|---|---|---|"]
    for study, s in sorted(ev.get("studies", {}).items()):
        fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"| {study} | {s['heldout']} | {s['n_participants']} | {s['nll_base']:.3f} | "
                     f"{s['nll_post']:.3f} | {fmt(s['d_paper'])} | {fmt(s['correct_base'])} | "
                     f"{fmt(s['correct_post'])} |")
    for group in ("participants", "experiments"):
        g = ev.get(f"heldout_{group}")
        if g:
            lines.append(f"\nHeld-out {group}: post-trained worse in {g['post_worse']} of {g['studies']} "
                         f"studies; mean NLL base {g['nll_base']:.3f}, post {g['nll_post']:.3f}; "
                         f"mean d {g['mean_d_paper']:.2f}.")
    lines += ["", f"Build time: {build.seconds / 60:.1f} minutes (budget {r.budget_minutes} minutes "
              "on the reference machine, 2 CPU cores).", "",
              "Recipe: " + json.dumps(r.model_dump(mode="json")), ""]
    atomic_write_bytes(folder / "README.md", "\n".join(lines).encode())


def _loss_text(loss: float | None) -> str:
    return (f"Training loss over the last 20 steps: {loss:.3f} nats/token." if loss is not None
            else "(The training loss of this stage was not recorded.)")
