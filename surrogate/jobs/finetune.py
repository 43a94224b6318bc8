"""`surrogate finetune`: LoRA toward human behaviour, evaluated on people it never saw.

As Centaur was trained: the loss falls only on the tokens of human responses (the scorer's
rule, through the model's chat template when it has one). The split is seeded and written
beside the adapter; report.json holds the held-out NLL before and after, and with a
reference model the fraction of the gap to it that the adapter recovers.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .._errors import OptionError
from ..data import Participant, TruncationConfig, load, prepare_transcript, split_participants
from ..models import ModelSpec, ScoreRequest, TranscriptEncoder, load_backend
from ..organisms import resolved
from ..store import atomic_write_json, writer_lock
from ..training import FinetuneConfig, FinetuneReport, HeldoutNLL, response_windows, train


def _participant_nll(spec: ModelSpec, participants: Sequence[Participant]) -> list[tuple[float, int]]:
    """(mean NLL per response, number of responses) per participant, by the scorer itself."""
    from ..models import score_all

    backend = load_backend(resolved(spec))
    requests = [ScoreRequest(transcript=prepare_transcript(p.text, "", TruncationConfig()))
                for p in participants]
    out = []
    for result in score_all(backend, requests):
        nll = np.asarray(result.nll, dtype=float)
        nll = nll[np.isfinite(nll)]
        out.append((float(nll.mean()) if len(nll) else float("nan"), int(len(nll))))
    del backend
    return out


def _heldout_rows(participants, before, after, reference) -> list[HeldoutNLL]:
    rows = []
    studies = sorted({p.study for p in participants})
    for study in [*studies, "all"]:
        idx = [i for i, p in enumerate(participants) if study == "all" or p.study == study]
        ok = [i for i in idx if np.isfinite(before[i][0]) and before[i][1] > 0]
        if not ok:
            continue
        b = float(np.mean([before[i][0] for i in ok]))
        a = float(np.mean([after[i][0] for i in ok]))
        r = float(np.mean([reference[i][0] for i in ok])) if reference else None
        rec = (b - a) / (b - r) if r is not None and b != r else None
        rows.append(HeldoutNLL(study=study, n_participants=len(ok), n_responses=sum(before[i][1] for i in ok),
                               before=b, after=a, reference=r, recovery=rec))
    return rows


_OUTPUTS = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "report.json", "split.json",
            "finetune.json", "checkpoint.pt")


def _settings(model: str, data: str | Path, config: FinetuneConfig, studies, max_participants, compare_to) -> dict:
    return {"model": model, "data": str(data), "config": config.model_dump(mode="json"),
            "studies": list(studies or []), "max": max_participants, "compare_to": compare_to}


def _differences(old: dict, new: dict) -> list[str]:
    """What changed between two runs' settings, as `key old -> new`."""
    out = []
    flat_old = {**{k: v for k, v in old.items() if k != "config"}, **old.get("config", {})}
    flat_new = {**{k: v for k, v in new.items() if k != "config"}, **new.get("config", {})}
    for key in sorted(set(flat_old) | set(flat_new)):
        if flat_old.get(key) != flat_new.get(key):
            out.append(f"{key} {flat_old.get(key)!r} -> {flat_new.get(key)!r}")
    return out


def _claim_folder(out: Path, settings: dict, run_id: str, overwrite: bool) -> dict | None:
    """The folder's state for this run (None: nothing there yet). A folder holding a run with
    other settings is refused unless `overwrite`, which removes that run's files first."""
    state_path = out / "finetune.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    present = [n for n in _OUTPUTS if (out / n).exists()]
    if state is None and not present:
        return None
    same = state is not None and state.get("run_id") == run_id
    if same:
        return state
    if not overwrite:
        if state is not None:
            changed = _differences(state.get("settings", {}), settings)
            what = "; ".join(changed[:8]) + (" ..." if len(changed) > 8 else "")
            raise OptionError("out", str(out), f"holds a finetune run with other settings ({what}); use another "
                                               "folder, or overwrite to replace it")
        raise OptionError("out", str(out), f"holds {', '.join(present)} from another run; use another folder, or "
                                           "overwrite to replace them")
    for name in present:
        (out / name).unlink()
    return None


def finetune(
    model: str,
    data: str | Path,
    out: str | Path,
    config: FinetuneConfig | None = None,
    *,
    compare_to: str | None = None,
    studies: Sequence[str] | None = None,
    max_participants: int | None = None,
    device: str = "auto",
    revision: str | None = None,
    attention: str = "auto",
    trust_remote_code: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
    stop_after: int | None = None,
) -> FinetuneReport | None:
    """Train a LoRA adapter on `model` (a folder, hub id or a built-in name) from Psych-201
    data and write it to `out` in peft's format, with split.json, finetune.json and
    report.json. A killed run resumes: during training from out/checkpoint.pt, after it by
    evaluating the saved adapter; a finished one returns its report. A folder holding another
    run is refused unless `overwrite`. Returns None only when `stop_after` (a test hook)
    ended training early."""

    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("surrogate finetune needs peft, which is not installed: pip install -e '.[finetune]' "
                          "(or pip install 'surrogate[finetune]')") from None

    from ..models import quiet_transformers

    quiet_transformers()
    config = config or FinetuneConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with writer_lock(out, "finetune"):
        return _finetune(model, data, out, config, compare_to=compare_to, studies=studies,
                         max_participants=max_participants, device=device, revision=revision, attention=attention,
                         trust_remote_code=trust_remote_code, overwrite=overwrite, progress=progress, log=log,
                         stop_after=stop_after, peft=(LoraConfig, get_peft_model))


def _finetune(model, data, out: Path, config: FinetuneConfig, *, compare_to, studies, max_participants, device,
              revision, attention, trust_remote_code, overwrite, progress, log, stop_after, peft
              ) -> FinetuneReport | None:
    import torch

    from ..models import ModelSpec
    from ..models import load_pretrained

    LoraConfig, get_peft_model = peft
    settings = _settings(model, data, config, studies, max_participants, compare_to)
    run_id = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    state = _claim_folder(out, settings, run_id, overwrite)
    report_path = out / "report.json"
    if state is not None and state.get("stage") == "complete" and report_path.exists():
        log(f"{out}: already trained and evaluated (report.json); nothing to do")
        return FinetuneReport.model_validate(json.loads(report_path.read_text()))
    dataset = load(data, max_participants=max_participants, studies=studies)
    split = split_participants(dataset.participants, holdout=config.holdout,
                               fraction=config.holdout_fraction, seed=config.seed)
    held = set(split.heldout)
    train_people = [p for p in dataset.participants if p.key not in held]
    heldout_people = [p for p in dataset.participants if p.key in held]
    atomic_write_json(out / "split.json", split.model_dump(mode="json"))
    spec = ModelSpec(path=model, device=device, revision=revision, attention=attention,
                     trust_remote_code=trust_remote_code, chat=config.chat)
    trained = state is not None and state.get("stage") == "trained" and (out / "adapter_config.json").exists()
    if not trained:
        atomic_write_json(out / "finetune.json", {"run_id": run_id, "settings": settings, "stage": "training"})
        base, tokenizer, dev = load_pretrained(resolved(spec), training=True)
        chat = bool(tokenizer.chat_template) if config.chat == "auto" else config.chat == "on"
        encoder = TranscriptEncoder(tokenizer, chat=chat)
        uncut = TruncationConfig(max_chars=None)
        examples = [e for p in train_people
                    for e in response_windows(encoder, prepare_transcript(p.text, "", uncut), config.window_tokens)]
        n_label = int(sum((e.labels >= 0).sum() for e in examples))
        log(f"LoRA on {model}: {len(train_people)} training participants, {len(examples)} windows, "
            f"{n_label} response tokens; {len(heldout_people)} held out ({config.holdout})")
        names = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
        targets = [m for m in config.target_modules if m in names]
        if not targets:
            raise ValueError(f"none of the target modules {list(config.target_modules)} exist in {model}")
        torch.manual_seed(config.seed)
        with warnings.catch_warnings():  # peft asks transformers a deprecated question
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_model = get_peft_model(base, LoraConfig(r=config.rank, lora_alpha=config.alpha,
                                                         lora_dropout=config.dropout, target_modules=targets,
                                                         task_type="CAUSAL_LM"))
        if dev.startswith("cuda"):
            peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        pad = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)
        with warnings.catch_warnings():  # peft asks transformers a deprecated question each step
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            result = train(peft_model, examples, config, checkpoint=out / "checkpoint.pt", pad_id=pad, device=dev,
                           progress=progress, stop_after=stop_after)
        if not result.complete:
            return None
        _save_adapter(peft_model, out)
        # The checkpoint stays until the report is written: a kill during evaluation resumes there.
        state = {"run_id": run_id, "settings": settings, "stage": "trained", "steps": result.steps,
                 "resumed_from": result.resumed_from, "final_train_loss": result.final_loss,
                 "losses": result.losses, "n_train_windows": len(examples), "n_train_response_tokens": n_label,
                 "chat": chat, "target_modules": targets}
        atomic_write_json(out / "finetune.json", state)
        del peft_model, base
    else:
        log(f"{out}: the adapter is trained (finetune.json); evaluating it")

    eval_people = _eval_sample(heldout_people, config.eval_per_study)
    log(f"evaluating on {len(eval_people)} held-out participants")
    before = _participant_nll(spec, eval_people)
    after = _participant_nll(spec.model_copy(update={"adapter": str(out)}), eval_people)
    reference = (_participant_nll(ModelSpec(path=compare_to, device=device, trust_remote_code=trust_remote_code),
                                  eval_people) if compare_to else None)
    report = FinetuneReport(
        model=model, adapter=str(out), reference=compare_to, data=str(data), steps=state["steps"],
        resumed_from=state["resumed_from"], final_train_loss=state["final_train_loss"],
        n_train_participants=len(train_people), n_train_windows=state["n_train_windows"],
        n_train_response_tokens=state["n_train_response_tokens"],
        heldout=_heldout_rows(eval_people, before, after, reference),
        config={**config.model_dump(mode="json"), "run_id": run_id, "chat": state["chat"],
                "target_modules": state["target_modules"]})
    atomic_write_json(report_path, report.model_dump(mode="json"))
    atomic_write_json(out / "finetune.json", {**state, "stage": "complete"})
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return report


def _save_adapter(model, out: Path) -> None:
    """The adapter (config, safetensors weights, model card) saved in a fresh private folder
    and renamed into `out` file by file: a link planted in `out` under one of those names is
    replaced, never written through."""
    import os
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".adapter-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _eval_sample(people: Sequence[Participant], per_study: int | None) -> list[Participant]:
    if per_study is None:
        return list(people)
    seen: dict[str, int] = {}
    out = []
    for p in people:
        if seen.get(p.study, 0) < per_study:
            seen[p.study] = seen.get(p.study, 0) + 1
            out.append(p)
    return out
