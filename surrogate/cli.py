"""The `surrogate` command line. Heavy libraries are imported inside commands, so --help is
instant; each command calls the Python function of the same name."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Test language models as stand-ins for human participants (Psych-201 transcripts).",
    pretty_exceptions_enable=False,
)

@app.callback()
def _root() -> None:
    """Test language models as stand-ins for human participants (Psych-201 transcripts)."""


# Errors a user can fix: shown as one clear line, no traceback.
_USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, ImportError)


def _os_error_text(e: OSError) -> str:
    """One line for an operating-system error, naming the file and what to do."""
    import errno

    where = f" ({e.filename})" if getattr(e, "filename", None) else ""
    if e.errno == errno.ENOSPC:
        return (f"no space left on the device{where}; results written so far are intact: free space and run "
                "the same command again to resume")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where}: {e.strerror}; choose a writable --out"
    return f"{e.strerror or e}{where}"


def _console():
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def _user_errors():
    from .runner._job import RunInterrupted

    try:
        yield
    except RunInterrupted as e:
        _console().print(f"[bold yellow]{e.message}[/]", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(128 + int(e.signal_number)) from None
    except _USER_ERRORS as e:
        _console().print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as e:
        _console().print(f"[bold red]error:[/] {_os_error_text(e)}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None


@contextmanager
def _progress():
    """A rich progress bar with one task per label, fed by (label, done, total) calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=_console(), transient=False) as bar:
        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield update


def _print_table(frame, title: str, float_format: str = "{:.3f}") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "iuf" else "left")
    for _, row in frame.iterrows():
        table.add_row(*[float_format.format(v) if isinstance(v, float) else str(v) for v in row])
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _log(message: str) -> None:
    _console().print(message, highlight=False, markup=False, soft_wrap=True)


def _option_sets(items: list[str] | None) -> dict[str, list[str]]:
    out = {}
    for item in items or []:
        study, sep, values = item.partition("=")
        options = [v for v in values.split(",") if v.strip()]
        if not sep or not study or len(set(options)) < 2:
            raise ValueError(f"--options {item!r}: expected STUDY=a,b,c with at least two options")
        out[study] = options
    return out


@app.command()
def run(
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", "-m", help="Local folder or hub id, optionally NAME=PATH and ,adapter=DIR; repeat "
        "for several. Default: the shipped organisms (organism-base, organism-post).")] = None,
    data: Annotated[Optional[str], typer.Option(
        help="prompts.jsonl[.zip]/.parquet, a study folder, a Psych-201 tree, or a HF dataset id. "
        "Default: the shipped sample of real Psych-201 participants.")] = None,
    persona: Annotated[str, typer.Option(
        help="off | on | both, or strategies: none,interview,narrative,demographics,"
        "questionnaires,system,shuffled,population,placebo or module:Class.")] = "off",
    chat: Annotated[str, typer.Option(help="Score through the chat template: auto | on | off.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N | map (device_map=auto: a model larger than one GPU).")] = "auto",
    batch_tokens: Annotated[Optional[int], typer.Option(help="Padded tokens per forward pass.")] = None,
    attention: Annotated[str, typer.Option(help="auto (FlashAttention-2 with packed batches on CUDA when "
                                           "flash-attn is installed, else SDPA) | sdpa | eager | "
                                           "flash_attention_2.")] = "auto",
    backend: Annotated[str, typer.Option(help="hf (transformers) | vllm (prompt log-probabilities; GPU, "
                                         "the [vllm] extra).")] = "hf",
    trust_remote_code: Annotated[bool, typer.Option(
        "--trust-remote-code", help="Run code shipped with a checkpoint (off unless asked).")] = False,
    max_participants: Annotated[Optional[int], typer.Option(help="Per study, in file order.")] = None,
    study: Annotated[Optional[list[str]], typer.Option(help="Only this study; repeatable.")] = None,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Write bad records to OUT/invalid.jsonl and go on.")] = False,
    choices: Annotated[bool, typer.Option(help="Score every option of closed-set experiments "
                                          "(choices.parquet).")] = True,
    options: Annotated[Optional[list[str]], typer.Option(
        help="Declare a study's closed option set: STUDY=a,b,c (repeatable).")] = None,
    max_chars: Annotated[int, typer.Option(help="Character cut per transcript (paper: 32768; 0: none).")] = 32768,
    max_tokens: Annotated[Optional[int], typer.Option(help="Token budget per transcript (default: "
                                                      "the model's context length).")] = None,
    persona_outside_cut: Annotated[bool, typer.Option(
        "--persona-outside-cut", help="Cut the transcript alone, so every persona scores the same "
        "responses (the paper counts the persona towards the cut).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the shuffled-persona derangement.")] = 0,
    stratify: Annotated[Optional[str], typer.Option(help="Swap shuffled personas only within the "
                                                    "levels of this metadata field (e.g. condition).")] = None,
    derangements: Annotated[int, typer.Option(help="Independent shuffled pairings (shuffled, "
                                              "shuffled.2, ...), to report over several.")] = 1,
    shard: Annotated[Optional[str], typer.Option(help="K/N: score only the K-th of N deterministic "
                                                 "shares of the units (SLURM arrays; torchrun ranks "
                                                 "shard themselves).")] = None,
    out: Annotated[str, typer.Option(help="Output folder (resumable).")] = "runs/default",
) -> None:
    """Score models on human transcripts: per-response NLL, with and without personas."""
    from .data import TruncationConfig
    from .runner import run as run_job

    with _user_errors(), _progress() as progress:
        truncation = TruncationConfig(max_chars=max_chars or None, max_tokens=max_tokens,
                                      count_prefix=not persona_outside_cut)
        result = run_job(model or [], data, persona, out, chat=chat, dtype=dtype, device=device,
                         batch_tokens=batch_tokens, attention=attention, backend=backend,
                         trust_remote_code=trust_remote_code,
                         max_participants=max_participants, studies=study, skip_invalid=skip_invalid,
                         truncation=truncation, seed=seed, stratify=stratify, derangements=derangements,
                         choices=choices, shard=shard,
                         options=_option_sets(options), progress=progress, log=_log)
    _print_table(result.summary, "Mean NLL per response (nats)")
    for label, stats in result.info["models"].items():
        tps = stats.get("tokens_per_second")
        empty = {k: v for k, v in stats["empty_persona"].items() if v}
        note = f"; participants with an empty persona: {empty}" if empty else ""
        _log(f"{label}: scored {stats['scored']} units, skipped {stats['skipped']} done; "
             f"{stats['tokens']} tokens" + (f" at {tps:.0f} tokens/s" if tps else "") + note)
    _log(f"wrote {result.out / 'responses.parquet'} ({len(result.responses)} rows), run.json, summary.csv")
    if not model and data is None and result.info["config"]["shard"] is None:
        _default_job_results(Path(out))


def _default_job_results(out: Path) -> None:
    """The built-in default shows the science: post-training misalignment between the two
    organisms and the persona decomposition, estimated from the run just made."""
    from .analysis import ModelPair
    from .runner import ORGANISM_NOTICE, analyze as analyze_job

    with _user_errors():
        result = analyze_job([out], pairs=[ModelPair(base="organism-base", post_trained="organism-post",
                                                     post_training="modal answers (stand-in)")])
    if result.misalignment is not None:
        frame = result.misalignment.to_frame()
        _print_table(frame[["experiment", "n", "d_paper", "d_paper_lo", "d_paper_hi", "cohens_d", "lo", "hi"]],
                     "Post-training misalignment, organism-post vs organism-base (the paper's d with a "
                     "participant-bootstrap 95% CI, and surrogate's per-participant d; > 0: the post-trained "
                     "model predicts people worse)")
    for label, dec in result.decompositions.items():
        t = dec.to_frame()
        t = t[t["experiment"] != "pooled_fixed"]
        _print_table(t[["experiment", "n_participants", "total", "population_component",
                        "individual_component", "individual_p"]],
                     f"Persona decomposition, {label} (nats per response; > 0: the persona helps)")
    summaries = [d.summary() for d in result.decompositions.values()]
    if result.misalignment is not None:
        summaries.append(result.misalignment.summary())
    _log("\n\n".join(summaries))
    from .runner import report as report_job

    with _user_errors():
        rep = report_job([out], out / "report", analysis=result, title="surrogate default job: model organisms")
    _log(f"wrote the analysis to {result.out} and the report to {rep.html}")
    _log(ORGANISM_NOTICE)


_SESOI_HELP = ("Smallest individual effect of interest for the equivalence test: a per cent of the experiment's "
               "no-persona NLL per response (1%), nats per response (0.01) or nats per token (0.002/token).")
_WEIGHT_HELP = ("participant: each participant counts once; response: the per-response scale, each swap cycle "
                "weighted by its members' mean number of responses.")


@app.command("compare-personas")
def compare_personas(
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", "-m", help="Model(s) as in `run` (default: the shipped organisms).")] = None,
    data: Annotated[Optional[str], typer.Option(help="Data as in `run` (default: the shipped Psych-201 sample).")] = None,
    strategies: Annotated[Optional[str], typer.Option(
        help="Strategies to score (default: none, each matched strategy with its shuffled control, and for "
        "interview population, placebo and shuffled-placebo).")] = None,
    matched: Annotated[str, typer.Option(help="The matched persona strategy, or several (comma list: "
                                         "interview,narrative) to compare them on one pairing.")] = "interview",
    control: Annotated[Optional[str], typer.Option(help="The control (default: the matched strategy's own "
                                                   "shuffled control, shuffled-X; or population-X).")] = None,
    by: Annotated[str, typer.Option(help="Experiment unit: study or experiment.")] = "study",
    weight: Annotated[str, typer.Option(help=_WEIGHT_HELP)] = "participant",
    chat: Annotated[str, typer.Option(help="auto | on | off.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="As in `run`.")] = False,
    max_participants: Annotated[Optional[int], typer.Option(help="Per study, in file order.")] = None,
    study: Annotated[Optional[list[str]], typer.Option(help="Only this study; repeatable.")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="As in `run`.")] = False,
    persona_outside_cut: Annotated[bool, typer.Option(
        "--persona-outside-cut", help="Cut the transcript alone (all personas score the same "
        "responses).")] = False,
    sesoi: Annotated[str, typer.Option(help=_SESOI_HELP)] = "1%",
    seed: Annotated[int, typer.Option(help="Seed of the derangement.")] = 0,
    stratify: Annotated[Optional[str], typer.Option(help="Swap shuffled personas only within the levels of this "
                                                    "metadata field (condition), or within K bins of equal count "
                                                    "of a numeric one (age:5).")] = None,
    derangements: Annotated[int, typer.Option(help="Independent shuffled pairings; the first is the primary one, "
                                              "the others a sensitivity range.")] = 1,
    out: Annotated[str, typer.Option(help="Output folder (resumable).")] = "runs/personas",
) -> None:
    """Does a persona help predict this person, or only people in general?"""
    from .data import TruncationConfig
    from .runner import compare_personas as job

    with _user_errors(), _progress() as progress:
        result = job(model or [], data, out, strategies=strategies, matched=matched, control=control,
                     by=by, sesoi=sesoi, weight=weight, log=_log, chat=chat, dtype=dtype, device=device,
                     trust_remote_code=trust_remote_code,
                     max_participants=max_participants, studies=study, skip_invalid=skip_invalid,
                     truncation=TruncationConfig(count_prefix=not persona_outside_cut), seed=seed,
                     stratify=stratify, derangements=derangements,
                     progress=progress)
    columns = ["model", "matched", "control", "role", "experiment", "status", "n_participants", "total",
               "population_component", "individual_component", "individual_p", "individual_tost_p"]
    columns += [c for c in ("prefix_component", "population_information", "individual_content")
                if c in result.table]
    _print_table(result.table[columns], "Persona effects (nats per response; > 0: the persona helps)")
    _log(result.summary())
    _log(f"wrote {result.out / 'persona_effects.csv'} and persona_summary.txt"
         + (", strategy_ranking.csv, strategy_differences.csv" if result.comparisons else ""))


@app.command()
def analyze(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders.")],
    pairs: Annotated[Optional[str], typer.Option(help="TOML with [[pairs]] base / post_trained "
                                                 "model labels, for post-training misalignment; `paper`: "
                                                 "the paper's grid by hub id.")] = None,
    categories: Annotated[Optional[Path], typer.Option(help="Study-to-domain CSV (as "
                                                       "psych201/categories.csv).")] = None,
    by: Annotated[str, typer.Option(help="Experiment unit: study or experiment.")] = "study",
    matched: Annotated[str, typer.Option(help="Matched persona strategy (or a comma list to compare).")] = "interview",
    control: Annotated[Optional[str], typer.Option(help="Control of the decomposition (default: the matched "
                                                   "strategy's shuffled control; population-X is biased by "
                                                   "persona completeness).")] = None,
    weight: Annotated[str, typer.Option(help=_WEIGHT_HELP)] = "participant",
    sesoi: Annotated[str, typer.Option(help=_SESOI_HELP)] = "1%",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples (choice analysis, the paper's d).")] = 2000,
    seed: Annotated[int, typer.Option(help="Resampling seed.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: FIRST_DIR/analysis).")] = None,
) -> None:
    """Estimate what earlier runs support: persona decomposition, meta-data benefit,
    post-training misalignment, choice prediction."""
    from .runner import analyze as job

    with _user_errors():
        result = job(run_dirs, pairs=pairs, categories=categories, out=out, by=by, matched=matched, control=control,
                     sesoi=sesoi, weight=weight, n_boot=n_boot, seed=seed)
    _log(result.summary())
    written = sorted(p.name for p in result.out.iterdir())
    _log(f"wrote {', '.join(written)} to {result.out}")


@app.command()
def plan(
    run_dirs: Annotated[list[Path], typer.Argument(help="Pilot run folder(s) (compare-personas or run output).")],
    model: Annotated[Optional[str], typer.Option(help="The model to plan for (default: the only one).")] = None,
    effect: Annotated[str, typer.Option(help="Individual component to detect: nats per response (0.02) or a "
                                        "per cent of the no-persona NLL (1%).")] = "1%",
    d: Annotated[float, typer.Option(help="Misalignment (per-participant d) to detect, with --pair.")] = 0.2,
    power: Annotated[float, typer.Option(help="Target power.")] = 0.8,
    sesoi: Annotated[str, typer.Option(help=_SESOI_HELP)] = "1%",
    matched: Annotated[str, typer.Option(help="Matched persona strategy.")] = "interview",
    pair: Annotated[Optional[list[str]], typer.Option(help="BASE,POST model labels: plan misalignment for this "
                                                      "pair (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write plan.csv (power over designs) and plan.txt here.")] = None,
) -> None:
    """How many participants and experiments a question needs, from a pilot's variance components."""
    from .runner import plan as job

    with _user_errors():
        pairs = []
        for item in pair or []:
            base, sep, post = item.partition(",")
            if not sep or not base or not post:
                raise ValueError(f"--pair {item!r}: expected BASE,POST (model labels)")
            pairs.append((base, post))
        result = job(run_dirs, model=model, effect=effect, d=d, power=power, sesoi=sesoi, matched=matched,
                     pairs=pairs, out=out)
    _log(result.summary())
    _print_table(result.table(), f"Power over designs (effect {effect}; misalignment d = {d:g})")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders (and LoRA folders).")],
    out: Annotated[Path, typer.Option(help="Report folder: report.html, figures/, tables/.")] = Path("report"),
    pairs: Annotated[Optional[str], typer.Option(help="Model pairs TOML, or `paper`, as in `analyze`.")] = None,
    categories: Annotated[Optional[Path], typer.Option(help="Study-to-domain CSV (psych201/categories.csv).")] = None,
    lora: Annotated[Optional[list[Path]], typer.Option(help="LoRA output folders with report.json "
                                                       "(repeatable).")] = None,
    control: Annotated[Optional[str], typer.Option(help="Control persona of the decomposition (default: the "
                                                   "matched strategy's shuffled control).")] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "surrogate report",
) -> None:
    """A self-contained HTML report with the paper's figures for your runs (PNG, PDF, CSV beside)."""
    from .runner import report as job

    with _user_errors():
        rep = job(run_dirs, out, pairs=pairs, categories=categories, lora=lora or [], control=control,
                  title=title, log=_log)
    for f in rep.figures:
        _log(f"  {f.title}: {f.png}")


@app.command()
def merge(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to merge (shards, machines).")],
    out: Annotated[Path, typer.Option(help="The merged run folder (may be one of the sources).")],
) -> None:
    """Merge run folders into one table; every unit once, however often it appears."""
    from .runner import merge as job

    with _user_errors():
        responses = job(run_dirs, out)
    _log(f"wrote {out / 'responses.parquet'} ({len(responses)} rows from "
         f"{responses['unit_key'].nunique() if len(responses) else 0} units) and summary.csv")


organisms_app = typer.Typer(help="The shipped model organisms: small models trained on real people.",
                            no_args_is_help=True)
app.add_typer(organisms_app, name="organisms")


@organisms_app.command("build")
def organisms_build(
    data: Annotated[Optional[Path], typer.Option(help="The Psych-201 tree (default: "
                                                 "$SURROGATE_SHARED/psych201 or ../shared/psych201).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: replace the shipped "
                                                "organisms and sample inside the package).")] = None,
    budget: Annotated[float, typer.Option(help="Training budget in minutes on 2 CPU cores; sets "
                                          "the number of steps, so the same budget gives the same "
                                          "weights anywhere.")] = 25.0,
    seed: Annotated[int, typer.Option(help="Seed of the split, the sampling and the initialisation.")] = 0,
) -> None:
    """Rebuild organism-base and organism-post reproducibly from the Psych-201 data."""
    import os

    from .organisms import OrganismRecipe, build_organisms

    if data is None:
        root = os.environ.get("SURROGATE_SHARED")
        data = Path(root) / "psych201" if root else Path("../shared/psych201")
    with _user_errors(), _progress() as progress:
        if not data.is_dir():
            raise FileNotFoundError(f"{data}: no Psych-201 tree here (pass --data)")
        build = build_organisms(data, out, OrganismRecipe(budget_minutes=budget, seed=seed),
                                progress=progress, log=_log)
    for group in ("participants", "experiments"):
        g = build.evaluation.get(f"heldout_{group}")
        if g:
            _log(f"held-out {group}: NLL base {g['nll_base']:.3f}, post {g['nll_post']:.3f}; post-trained "
                 f"worse in {g['post_worse']} of {g['studies']} studies (mean d {g['mean_d_paper']:.2f})")
    _log(f"wrote {build.out}/organism-base and organism-post (cards: README.md in each), "
         f"in {build.seconds / 60:.1f} minutes")


@app.command()
def finetune(
    model: Annotated[str, typer.Option("--model", "-m", help="Local folder, hub id or organism name.")],
    data: Annotated[str, typer.Option(help="Psych-201 data, as in `run`.")],
    out: Annotated[Path, typer.Option(help="Adapter folder (peft format; resumable).")],
    holdout: Annotated[str, typer.Option(help="participants | experiments.")] = "participants",
    holdout_fraction: Annotated[float, typer.Option(help="Share held out (seeded hash).")] = 0.2,
    compare_to: Annotated[Optional[str], typer.Option(help="A reference model (e.g. the base "
                                                      "model): report the recovery fraction.")] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    alpha: Annotated[float, typer.Option(help="LoRA alpha.")] = 32.0,
    dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.05,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    epochs: Annotated[float, typer.Option(help="Passes over the training windows.")] = 1.0,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens per training window.")] = 2048,
    batch_tokens: Annotated[int, typer.Option(help="Padded tokens per step.")] = 8192,
    eval_per_study: Annotated[int, typer.Option(help="Held-out participants per study in report.json.")] = 100,
    study: Annotated[Optional[list[str]], typer.Option(help="Only this study; repeatable.")] = None,
    max_participants: Annotated[Optional[int], typer.Option(help="Per study, in file order.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    attention: Annotated[str, typer.Option(help="As in `run`.")] = "auto",
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="As in `run`.")] = False,
    seed: Annotated[int, typer.Option(help="Split, batch order, dropout, initialisation.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a finetune run with other settings "
                                            "in OUT (refused otherwise).")] = False,
) -> None:
    """LoRA toward human behaviour: loss on human responses only; evaluated on held-out people."""
    from .finetune import FinetuneConfig, finetune as job

    with _user_errors():
        config = FinetuneConfig(holdout=holdout, holdout_fraction=holdout_fraction, rank=rank, alpha=alpha,
                                dropout=dropout, learning_rate=learning_rate, epochs=epochs,
                                max_steps=max_steps, max_tokens=max_tokens, batch_tokens=batch_tokens,
                                eval_per_study=eval_per_study, seed=seed)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("LoRA"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                      TimeRemainingColumn(), console=_console()) as bar:
            task = bar.add_task("train", total=None, loss="-")
            report = job(model, data, out, config, compare_to=compare_to, studies=study,
                         max_participants=max_participants, device=device, attention=attention,
                         trust_remote_code=trust_remote_code, overwrite=overwrite,
                         progress=lambda d, t, loss: bar.update(task, completed=d, total=t, loss=f"{loss:.3f}"),
                         log=_log)
    import pandas as pd

    _print_table(pd.DataFrame([h.model_dump() for h in report.heldout]),
                 "Held-out NLL per response (nats): before / after the adapter"
                 + (" / reference" if compare_to else ""))
    _log(f"wrote the adapter, split.json and report.json to {out}; score it with "
         f"--model NAME={model},adapter={out}")


@app.command()
def simulate(
    experiment: Annotated[str, typer.Option(help="restless_bandit | mixed_lotteries | "
                                            "intertemporal_choice, or module:Class.")],
    agents: Annotated[Optional[list[str]], typer.Option(
        "--agents", "-a", help="synthetic | synthetic:none | synthetic:TRAIT>PARAM=SLOPE[;...] | "
        "model:PATH[,persona=S][,chat=auto|on|off][,policy=sample|argmax][,name=N]; repeatable.")] = None,
    participants: Annotated[int, typer.Option(help="Participants per agent.")] = 50,
    trials: Annotated[Optional[int], typer.Option(help="Trials per session (default: the experiment's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: traits, task randomness, choices.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Model agents played per forward pass.")] = 16,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/simulated"),
) -> None:
    """Simulate participants (synthetic ones with known traits, or model agents playing
    closed loop) and write Psych-201-format transcripts."""
    from .runner import simulate as job

    with _user_errors():
        result = job(experiment, agents or ["synthetic"], participants, seed=seed, out=out, trials=trials,
                     batch_size=batch_size, log=_log)
    import pandas as pd

    means = pd.DataFrame([{"agent": a, "participants": e["participants"], **e["means"]}
                          for a, e in result.summary["agents"].items()])
    _print_table(means, f"Behaviour in {result.summary['experiment']} (means over participants)")
    cors = pd.DataFrame([{"agent": a, "trait ~ behaviour": k, "r": v["r"], "p": v["p"]}
                         for a, e in result.summary["agents"].items() for k, v in e["trait_correlations"].items()])
    if not cors.empty:
        _print_table(cors, "Trait-behaviour correlations across participants")
    _log(f"wrote {out / 'prompts.jsonl'} ({len(result.records)} participants), sessions.jsonl, "
         "behaviour.csv, summary.json")


def main() -> None:  # pragma: no cover - console entry point
    app(sys.argv[1:])
