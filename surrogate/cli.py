"""The `surrogate` command line. Heavy libraries are imported inside commands, so --help is
instant; each command calls the Python function of the same name.

One vocabulary: an option means the same in every command that has it, and is declared once
below (`Model`, `Persona`, `MaxTokens`, ...), its default read from the configuration it sets
(TruncationConfig, FinetuneConfig, DEFAULT_SESOI). Results go to stdout, diagnostics
(progress, notes, what was written) to stderr.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.markup import escape

from .analysis import DEFAULT_SESOI
from .data import TruncationConfig
from .training import FinetuneConfig

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
    from .jobs.run import RunInterrupted

    try:
        yield
    except RunInterrupted as e:
        _console().print(f"[bold yellow]{escape(e.message)}[/]", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(128 + int(e.signal_number)) from None
    except ValidationError as e:  # a setting the options built: name it as an option, on one line
        problems = "; ".join(f"--{'.'.join(map(str, err['loc'])).replace('_', '-')}: "
                             f"{err['msg'].removeprefix('Value error, ')}" for err in e.errors())
        _console().print(f"[bold red]error:[/] {escape(problems)}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except _USER_ERRORS as e:
        _console().print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as e:
        _console().print(f"[bold red]error:[/] {escape(_os_error_text(e))}", highlight=False, markup=True,
                         soft_wrap=True)
        raise typer.Exit(2) from None


class _LogProgress:
    """Progress for logs (no terminal: SLURM, CI): a line per label at least every
    `interval` seconds, with units done of total, rate and time left, and one when done."""

    def __init__(self, interval: float = 30.0, unit: str = "units"):
        self.interval, self.unit = interval, unit
        self.started: dict[str, tuple[float, int]] = {}
        self.last: dict[str, float] = {}

    def __call__(self, label: str, done: int, total: int | None, extra: str = "", unit: str | None = None) -> None:
        now = time.monotonic()
        start, first = self.started.setdefault(label, (now, done))
        if done < first:  # the label started over (a new pass): rate and time left from here
            start, first = self.started[label] = (now, done)
        if done < (total or 0) and now - self.last.get(label, start) < self.interval:
            return
        self.last[label] = now
        rate = (done - first) / (now - start) if now > start else 0.0
        left = f", about {(total - done) / rate:.0f} s left" if rate > 0 and total else ""
        of = f" of {total}" if total else ""
        _log(f"{label}: {done}{of} {unit or self.unit}, {rate:.2f}/s{left}{extra}")


@contextmanager
def _progress(unit: str = "units"):
    """(label, done, total) updates: a rich bar on a terminal, log lines otherwise."""
    if not sys.stderr.isatty():
        yield _LogProgress(unit=unit)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"),
                  TimeRemainingColumn(), console=_console(), transient=False) as bar:
        def update(label: str, done: int, total: int | None, extra: str = "", unit: str | None = None) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total, extra=extra)
            bar.update(tasks[label], completed=done, total=total, extra=extra)

        yield update


def _print_table(frame, title: str, float_format: str = "{:.3f}") -> None:
    """A result table, on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "iuf" else "left")
    for _, row in frame.iterrows():
        table.add_row(*[float_format.format(v) if isinstance(v, float) else str(v) for v in row])
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _result(text: str) -> None:
    """A result in words (summaries, estimates), on stdout."""
    print(text, flush=True)


def _log(message: str) -> None:
    """A diagnostic (progress, notes, files written), on stderr."""
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


# --- one vocabulary: every option declared once -----------------------------------------------

_TRUNC = TruncationConfig.model_fields
_LORA = FinetuneConfig.model_fields

Model = Annotated[Optional[list[str]], typer.Option(
    "--model", "-m", help="A local folder or hub id, optionally NAME=PATH, @REVISION for hub ids, and after commas "
    "adapter=DIR, chat=, dtype=, device=; repeat for several. Built-in names: organism-base, organism-post-light, "
    "organism-post, organism-control, demo-base, demo-chat. Default: the shipped organisms.")]
Data = Annotated[Optional[str], typer.Option(
    help="prompts.jsonl[.zip]/.parquet, a study folder, a Psych-201 tree, or a HF dataset id. Default: the "
    "shipped sample of real Psych-201 participants.")]
Chat = Annotated[str, typer.Option(help="Score through the chat template: auto (when the tokenizer has one) | on | off.")]
DType = Annotated[str, typer.Option(help="auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16.")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N | mps | map (device_map=auto: a model "
                                     "larger than one GPU).")]
BatchTokens = Annotated[Optional[int], typer.Option(help="Tokens per forward pass (default: 2048 on CPU; on GPU "
                                                    "sized from free memory). Longer transcripts run in chunks.")]
Attention = Annotated[str, typer.Option(help="auto (FlashAttention-2 with packed batches on CUDA when flash-attn is "
                                        "installed, else SDPA) | sdpa | eager | flash_attention_2.")]
Backend = Annotated[str, typer.Option(help="hf (transformers) | vllm (prompt log-probabilities; GPU, the [vllm] "
                                      "extra).")]
TrustRemoteCode = Annotated[bool, typer.Option("--trust-remote-code",
                                               help="Run code shipped with a checkpoint (never unless asked).")]
MaxParticipants = Annotated[Optional[int], typer.Option(help="Per study, in file order.")]
Study = Annotated[Optional[list[str]], typer.Option(help="Only this study; repeatable.")]
SkipInvalid = Annotated[bool, typer.Option("--skip-invalid", help="Write bad records to OUT/invalid.jsonl and go on "
                                           "(default: stop at the first, naming file, line and participant).")]
Choices = Annotated[bool, typer.Option(help="Score every option of closed-set experiments (choices.parquet).")]
Options = Annotated[Optional[list[str]], typer.Option(help="Declare a study's closed option set: STUDY=a,b,c "
                                                      "(repeatable).")]
MaxChars = Annotated[int, typer.Option(help="Character cut per transcript (the paper's; 0: none).")]
MaxTokens = Annotated[Optional[int], typer.Option(
    help="Token budget per transcript: responses past it are truncated rows (default: the model's context length).")]
PersonaOutsideCut = Annotated[bool, typer.Option("--persona-outside-cut", help="Cut the transcript alone, so every "
                                                 "persona scores the same responses (the paper counts the persona "
                                                 "towards the cut).")]
Seed = Annotated[int, typer.Option(help="Seed of the shuffled-persona swaps.")]
Stratify = Annotated[Optional[str], typer.Option(help="Swap shuffled personas only within the levels of this "
                                                 "metadata field (condition), or within K bins of equal count of a "
                                                 "numeric one (age:5).")]
Derangements = Annotated[int, typer.Option(help="Independent shuffled pairings (1 to 100); the first is the primary "
                                           "one, the others a sensitivity range.")]
Shard = Annotated[Optional[str], typer.Option(help="K/N: score only the K-th of N deterministic shares of the units "
                                              "(SLURM arrays; torchrun ranks shard themselves).")]
HeldoutOnly = Annotated[bool, typer.Option("--heldout-only", help="Leave out participants a model was trained on "
                                           "(the organisms' split; an adapter's split.json).")]
Matched = Annotated[str, typer.Option(help="The matched persona strategy, or a comma list (interview,narrative) to "
                                      "compare them, each against its own shuffled control.")]
Control = Annotated[Optional[str], typer.Option(help="The control (default: the matched strategy's own shuffled "
                                                "control, shuffled-X; population-X is biased by persona completeness).")]
By = Annotated[str, typer.Option(help="study: experiments pooled by study, each session (study, experiment, "
                                  "participant id) a participant (Psych-201 numbers participants per experiment) | "
                                  "experiment | study-person: as study, an id repeated across a study's experiments "
                                  "one person (sessions clustered).")]
Weight = Annotated[str, typer.Option(help="participant: each participant counts once; response: the per-response "
                                     "scale, each swap cycle weighted by its members' mean number of responses.")]
Sesoi = Annotated[str, typer.Option(help="Smallest individual effect of interest for the equivalence test: a per cent "
                                    "of the experiment's no-persona NLL per response (1%), nats per response (0.01) "
                                    "or nats per token (0.002/token).")]
Pairs = Annotated[Optional[str], typer.Option(help="TOML with [[pairs]] base / post_trained model labels, for "
                                              "post-training misalignment; `paper`: the paper's grid by hub id. "
                                              "Default: pairs.toml in a run folder, if there is one.")]
Categories = Annotated[Optional[Path], typer.Option(help="Study-to-domain CSV (as psych201/categories.csv).")]
SeparateLabels = Annotated[bool, typer.Option("--separate-labels", help="Where one model label names different "
                                              "models in different folders, read it as LABEL@FOLDER in all but the "
                                              "first (default: refuse to pool them).")]


def _scoring(*, chat, dtype, device, batch_tokens, attention, backend, trust_remote_code, max_participants, study,
             skip_invalid, choices, options, max_chars, max_tokens, persona_outside_cut, seed, stratify,
             derangements, shard, heldout_only) -> dict:
    """The keyword arguments of `surrogate.run` from the scoring options (run and compare-personas)."""
    return dict(chat=chat, dtype=dtype, device=device, batch_tokens=batch_tokens, attention=attention,
                backend=backend, trust_remote_code=trust_remote_code, max_participants=max_participants,
                studies=study, skip_invalid=skip_invalid, choices=choices, options=_option_sets(options),
                truncation=TruncationConfig(max_chars=max_chars or None, max_tokens=max_tokens,
                                            count_prefix=not persona_outside_cut),
                seed=seed, stratify=stratify, derangements=derangements, shard=shard, heldout_only=heldout_only)


# --- commands ---------------------------------------------------------------------------------

@app.command()
def run(
    model: Model = None,
    data: Data = None,
    persona: Annotated[str, typer.Option(
        help="off | on | both, or strategies: none,interview,narrative,demographics,questionnaires,system, their "
        "controls shuffled-X, population-X, placebo-X, shuffled-placebo-X, or module:Class.")] = "off",
    chat: Chat = "auto", dtype: DType = "auto", device: Device = "auto", batch_tokens: BatchTokens = None,
    attention: Attention = "auto", backend: Backend = "hf", trust_remote_code: TrustRemoteCode = False,
    max_participants: MaxParticipants = None, study: Study = None, skip_invalid: SkipInvalid = False,
    choices: Choices = True, options: Options = None, max_chars: MaxChars = _TRUNC["max_chars"].default,
    max_tokens: MaxTokens = None, persona_outside_cut: PersonaOutsideCut = False, seed: Seed = 0,
    stratify: Stratify = None, derangements: Derangements = 1, shard: Shard = None, heldout_only: HeldoutOnly = False,
    out: Annotated[str, typer.Option(help="Output folder (resumable).")] = "runs/default",
) -> None:
    """Score models on human transcripts: per-response NLL, with and without personas."""
    from .jobs.run import run as run_job

    default_job = not model and data is None
    with _user_errors(), _progress() as progress:
        result = run_job(model or [], data, persona, out, progress=progress, log=_log, **_scoring(
            chat=chat, dtype=dtype, device=device, batch_tokens=batch_tokens, attention=attention, backend=backend,
            trust_remote_code=trust_remote_code, max_participants=max_participants, study=study,
            skip_invalid=skip_invalid, choices=choices, options=options, max_chars=max_chars, max_tokens=max_tokens,
            persona_outside_cut=persona_outside_cut, seed=seed, stratify=stratify, derangements=derangements,
            shard=shard, heldout_only=heldout_only))
    _print_table(result.summary, "Mean NLL per response (nats)")
    for label, stats in result.info.models.items():
        tps = stats.tokens_per_second
        empty = {k: v for k, v in stats.empty_persona.items() if v}
        note = f"; participants with an empty persona: {empty}" if empty else ""
        _log(f"{label}: scored {stats.scored} units, skipped {stats.skipped} done; {stats.tokens} tokens"
             + (f" at {tps:.0f} tokens/s" if tps else "") + note)
    _log(f"wrote {result.out / 'responses.parquet'} ({len(result.responses)} rows), run.json, summary.csv")
    if default_job and result.analysis is not None:
        _show_default_job(result)


def _show_default_job(result) -> None:
    """The built-in default shows the science: misalignment between the organisms and the
    persona decomposition, estimated from the run just made, then says where the report is."""
    analysis = result.analysis
    if analysis.misalignment is not None:
        frame = analysis.misalignment.to_frame()
        frame = frame[frame["level"] != "domain"]
        _print_table(frame[["pair", "experiment", "n", "d_paper", "d_paper_lo", "d_paper_hi", "cohens_d"]],
                     "Post-training misalignment (the paper's d with a participant-bootstrap 95% CI; surrogate's "
                     "per-participant d; > 0: the post-trained model predicts people worse)")
    from .jobs._decompositions import primary

    for label, dec in primary(analysis.decompositions).items():
        t = dec.to_frame()
        t = t[~t["experiment"].isin(["pooled_fixed"])]
        _print_table(t[["experiment", "n_participants", "total", "population_component",
                        "individual_component", "individual_p"]],
                     f"Persona decomposition, {label} (nats per response; > 0: the persona helps)")
    _result(analysis.summary())
    from .jobs.report import headline

    _result("Findings, one line each (the persona arms: real people, then the positive and the null control):\n"
            + "\n".join(f"- {line}" for line in headline(analysis)))
    _log(f"wrote the analysis to {analysis.out} and the report to {result.report}")


@app.command("compare-personas")
def compare_personas(
    model: Model = None,
    data: Data = None,
    persona: Annotated[Optional[str], typer.Option(
        "--persona", "--strategies", help="The strategies to score (default: none, each matched strategy with its "
        "shuffled control, and for interview population, placebo and shuffled-placebo).")] = None,
    matched: Matched = "interview", control: Control = None, by: By = "study", weight: Weight = "participant",
    sesoi: Sesoi = str(DEFAULT_SESOI),
    chat: Chat = "auto", dtype: DType = "auto", device: Device = "auto", batch_tokens: BatchTokens = None,
    attention: Attention = "auto", backend: Backend = "hf", trust_remote_code: TrustRemoteCode = False,
    max_participants: MaxParticipants = None, study: Study = None, skip_invalid: SkipInvalid = False,
    choices: Choices = True, options: Options = None, max_chars: MaxChars = _TRUNC["max_chars"].default,
    max_tokens: MaxTokens = None, persona_outside_cut: PersonaOutsideCut = False, seed: Seed = 0,
    stratify: Stratify = None, derangements: Derangements = 1, shard: Shard = None, heldout_only: HeldoutOnly = False,
    out: Annotated[str, typer.Option(help="Output folder (resumable).")] = "runs/personas",
) -> None:
    """Does a persona help predict this person, or only people in general?"""
    from .jobs.compare_personas import compare_personas as job

    with _user_errors(), _progress() as progress:
        result = job(model or [], data, out, strategies=persona, matched=matched, control=control, by=by,
                     sesoi=sesoi, weight=weight, log=_log, progress=progress, **_scoring(
                         chat=chat, dtype=dtype, device=device, batch_tokens=batch_tokens, attention=attention,
                         backend=backend, trust_remote_code=trust_remote_code, max_participants=max_participants,
                         study=study, skip_invalid=skip_invalid, choices=choices, options=options,
                         max_chars=max_chars, max_tokens=max_tokens, persona_outside_cut=persona_outside_cut,
                         seed=seed, stratify=stratify, derangements=derangements, shard=shard,
                         heldout_only=heldout_only))
    columns = ["model", "matched", "control", "role", "experiment", "status", "n_participants", "total",
               "population_component", "individual_component", "individual_p", "individual_tost_p"]
    columns += [c for c in ("prefix_component", "population_information", "individual_content")
                if c in result.table]
    _print_table(result.table[columns], "Persona effects (nats per response; > 0: the persona helps)")
    _result(result.summary())
    _log(f"wrote {Path(result.out) / 'persona_effects.csv'} and persona_summary.txt"
         + (", strategy_ranking.csv, strategy_differences.csv" if result.comparisons else ""))


@app.command()
def analyze(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders.")],
    pairs: Pairs = None, categories: Categories = None, by: By = "study",
    matched: Annotated[Optional[str], typer.Option(help="The matched persona strategy, or a comma list, to decompose "
                                                   "(default: interview, where it was scored).")] = None,
    control: Control = None, weight: Weight = "participant", sesoi: Sesoi = str(DEFAULT_SESOI),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples (choice analysis, the paper's d).")] = 2000,
    seed: Annotated[int, typer.Option(help="Resampling seed.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: FIRST_DIR/analysis).")] = None,
    separate_labels: SeparateLabels = False,
) -> None:
    """Estimate what earlier runs support: persona decomposition, meta-data benefit,
    post-training misalignment, choice prediction."""
    from .jobs.analyze import analyze as job

    with _user_errors():
        result = job(run_dirs, pairs=pairs, categories=categories, out=out, by=by, matched=matched, control=control,
                     sesoi=sesoi, weight=weight, n_boot=n_boot, seed=seed, separate_labels=separate_labels)
    _result(result.summary())
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
    sesoi: Sesoi = str(DEFAULT_SESOI),
    matched: Annotated[str, typer.Option(help="Matched persona strategy.")] = "interview",
    pair: Annotated[Optional[list[str]], typer.Option(help="BASE,POST model labels: plan misalignment for this "
                                                      "pair (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write plan.csv (power over designs) and plan.txt here.")] = None,
    usable: Annotated[Optional[float], typer.Option(help="Share of recruited participants who will enter the "
                                                    "individual component (metadata and a swap partner); default: "
                                                    "the pilot's.")] = None,
    by: By = "study",
) -> None:
    """How many participants and experiments a question needs, from a pilot's variance components."""
    from .jobs.plan import plan as job

    with _user_errors():
        pairs = []
        for item in pair or []:
            base, sep, post = item.partition(",")
            if not sep or not base or not post:
                raise ValueError(f"--pair {item!r}: expected BASE,POST (model labels)")
            pairs.append((base, post))
        result = job(run_dirs, model=model, effect=effect, d=d, power=power, sesoi=sesoi, matched=matched,
                     pairs=pairs, out=out, usable_share=usable, by=by)
    _result(result.summary())
    _print_table(result.table(), f"Power over designs (effect {effect}; misalignment d = {d:g})")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders (and LoRA folders).")],
    out: Annotated[Path, typer.Option(help="Report folder: report.html, figures/, tables/.")] = Path("report"),
    pairs: Pairs = None, categories: Categories = None,
    lora: Annotated[Optional[list[Path]], typer.Option(help="LoRA output folders with report.json "
                                                       "(repeatable).")] = None,
    matched: Annotated[Optional[str], typer.Option(help="The matched persona strategy, or a comma list, to decompose "
                                                   "(default: interview, where it was scored).")] = None,
    control: Control = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "surrogate report",
    separate_labels: SeparateLabels = False,
) -> None:
    """A self-contained HTML report with the paper's figures for your runs (PNG, PDF, CSV beside)."""
    from .jobs.report import report as job

    with _user_errors():
        rep = job(run_dirs, out, pairs=pairs, categories=categories, lora=lora or [], matched=matched,
                  control=control, title=title, separate_labels=separate_labels, log=_log)
    for f in rep.figures:
        _log(f"  {f.title}: {f.png}")


@app.command()
def merge(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to merge (shards, machines).")],
    out: Annotated[Path, typer.Option(help="The merged run folder (may be one of the sources).")],
) -> None:
    """Merge run folders into one table; every unit once, however often it appears."""
    from .jobs.merge import merge as job

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
    budget: Annotated[float, typer.Option(help="Training budget in minutes on 2 CPU cores; sets the number of steps, "
                                          "so the same budget gives the same weights anywhere.")] = 28.0,
    seed: Annotated[int, typer.Option(help="Seed of the split, the sampling and the initialisation.")] = 0,
) -> None:
    """Rebuild the organisms reproducibly from the Psych-201 data (and synthetic participants)."""
    import os

    from .jobs.organisms import OrganismRecipe, build_organisms

    if data is None:
        root = os.environ.get("SURROGATE_SHARED")
        data = Path(root) / "psych201" if root else Path("../shared/psych201")
    with _user_errors(), _progress(unit="steps") as progress:
        if not data.is_dir():
            raise FileNotFoundError(f"{data}: no Psych-201 tree here (pass --data)")
        build = build_organisms(data, out, OrganismRecipe(budget_minutes=budget, seed=seed),
                                progress=progress, log=_log)
    _result(build.summary())
    _log(f"wrote the organisms to {build.out} (cards: README.md in each), in {build.seconds / 60:.1f} minutes")


@app.command()
def finetune(
    model: Annotated[str, typer.Option("--model", "-m", help="A local folder, hub id or built-in name, as in `run`.")],
    data: Annotated[str, typer.Option(help="Psych-201 data, as in `run`.")],
    out: Annotated[str, typer.Option(help="Adapter folder (peft format; resumable).")],
    holdout: Annotated[str, typer.Option(help="participants | experiments.")] = _LORA["holdout"].default,
    holdout_fraction: Annotated[float, typer.Option(help="Share held out (seeded hash).")] =
        _LORA["holdout_fraction"].default,
    compare_to: Annotated[Optional[str], typer.Option(help="A reference model (e.g. the base model): report the "
                                                      "recovery fraction.")] = None,
    rank: Annotated[int, typer.Option(help=_LORA["rank"].description)] = _LORA["rank"].default,
    alpha: Annotated[float, typer.Option(help=_LORA["alpha"].description)] = _LORA["alpha"].default,
    dropout: Annotated[float, typer.Option(help=_LORA["dropout"].description)] = _LORA["dropout"].default,
    learning_rate: Annotated[float, typer.Option(help=_LORA["learning_rate"].description)] =
        _LORA["learning_rate"].default,
    epochs: Annotated[float, typer.Option(help=_LORA["epochs"].description)] = _LORA["epochs"].default,
    max_steps: Annotated[Optional[int], typer.Option(help=_LORA["max_steps"].description)] = None,
    window_tokens: Annotated[int, typer.Option(help=_LORA["max_tokens"].description)] = _LORA["max_tokens"].default,
    batch_tokens: Annotated[int, typer.Option(help=_LORA["batch_tokens"].description)] =
        _LORA["batch_tokens"].default,
    eval_per_study: Annotated[int, typer.Option(help=_LORA["eval_per_study"].description)] =
        _LORA["eval_per_study"].default,
    study: Study = None, max_participants: MaxParticipants = None, device: Device = "auto",
    attention: Attention = "auto", trust_remote_code: TrustRemoteCode = False,
    seed: Annotated[int, typer.Option(help="Split, batch order, dropout, initialisation.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a finetune run with other settings "
                                            "in OUT (refused otherwise).")] = False,
) -> None:
    """LoRA toward human behaviour: loss on human responses only; evaluated on held-out people."""
    from .jobs.finetune import finetune as job

    with _user_errors():
        config = FinetuneConfig(holdout=holdout, holdout_fraction=holdout_fraction, rank=rank, alpha=alpha,
                                dropout=dropout, learning_rate=learning_rate, epochs=epochs,
                                max_steps=max_steps, max_tokens=window_tokens, batch_tokens=batch_tokens,
                                eval_per_study=eval_per_study, seed=seed)
        with _progress(unit="steps") as progress:
            report = job(model, data, out, config, compare_to=compare_to, studies=study,
                         max_participants=max_participants, device=device, attention=attention,
                         trust_remote_code=trust_remote_code, overwrite=overwrite,
                         progress=lambda d, t, loss: progress("LoRA", d, t, f", loss {loss:.3f}"), log=_log)
    import pandas as pd

    _print_table(pd.DataFrame([h.model_dump() for h in report.heldout]),
                 "Held-out NLL per response (nats): before / after the adapter"
                 + (" / reference" if compare_to else ""))
    _log(f"wrote the adapter, split.json, finetune.json and report.json to {out}; score it with "
         f"--model NAME={model},adapter={out}")


@app.command()
def simulate(
    experiment: Annotated[str, typer.Option(help="restless_bandit | mixed_lotteries | intertemporal_choice, a "
                                            "declarative experiment file (.toml/.json), or module:Class.")],
    agents: Annotated[Optional[list[str]], typer.Option(
        "--agents", "-a", help="synthetic | synthetic:none | synthetic:TRAIT>PARAM=SLOPE[;...] | "
        "model:PATH[,persona=S][,policy=sample|argmax][,name=N][,adapter=DIR][,chat=][,device=]; repeatable.")] = None,
    persona: Annotated[str, typer.Option(help="The persona strategy of model agents that name none.")] = "none",
    participants: Annotated[int, typer.Option(min=1, help="Participants per agent.")] = 50,
    trials: Annotated[Optional[int], typer.Option(min=1, help="Trials per session (default: the experiment's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: traits, task randomness, choices.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Model agents played per forward pass.")] = 16,
    people: Annotated[Optional[str], typer.Option(help="A folder of people (simulate or import output): model agent "
                                                  "i takes person i's metadata as its persona.")] = None,
    shard: Shard = None,
    out: Annotated[str, typer.Option(help="Output folder (resumable).")] = "runs/simulated",
) -> None:
    """Simulate participants (synthetic ones with known traits, or model agents playing
    closed loop) and write Psych-201-format transcripts."""
    from .jobs.simulate import simulate as job

    with _user_errors():
        with _progress(unit="agents") as progress:
            result = job(experiment, agents or ["synthetic"], participants, seed=seed, out=out, trials=trials,
                         batch_size=batch_size, persona=persona, people=people, shard=shard, progress=progress,
                         log=_log)
    import pandas as pd

    means = pd.DataFrame([{"agent": a, "participants": e.participants, **e.means}
                          for a, e in result.summary.agents.items()])
    _print_table(means, f"Behaviour in {result.summary.experiment} (means over participants)")
    cors = pd.DataFrame([{"agent": a, "trait ~ behaviour": k, "r": v["r"], "p": v["p"]}
                         for a, e in result.summary.agents.items() for k, v in e.trait_correlations.items()])
    if not cors.empty:
        _print_table(cors, "Trait-behaviour correlations across participants")
    _log(f"wrote {Path(out) / result.summary.experiment / 'prompts.jsonl'} ({len(result.records)} participants), "
         "sessions.jsonl, behaviour.csv, trials.parquet, summary.json")


@app.command("import")
def import_(
    table: Annotated[Path, typer.Argument(help="A tidy trial table (.csv, .tsv, .parquet): participant, trial, choice, "
                                          "optionally reward and condition, and metadata columns.")],
    experiment: Annotated[str, typer.Option(help="The declarative experiment file (.toml/.json) the data come "
                                            "from.")],
    out: Annotated[str, typer.Option(help="Output folder.")] = "runs/people",
) -> None:
    """Bring real people's data of a declarative experiment in: Psych-201 transcripts and the
    behaviour tables simulate writes."""
    from .jobs.import_table import import_table as job

    with _user_errors():
        result = job(table, experiment, out, log=_log)
    _log(f"wrote {Path(out) / result.summary.experiment / 'prompts.jsonl'}, sessions.jsonl, behaviour.csv, "
         "trials.parquet, summary.json")


@app.command("compare-agents")
def compare_agents(
    people: Annotated[Path, typer.Argument(help="The people's folder (simulate or import output).")],
    agents: Annotated[Path, typer.Argument(help="The agents' folder (simulate output; every agent population in it).")],
    people_agent: Annotated[Optional[str], typer.Option(help="The people's group in PEOPLE when it holds several "
                                                        "(e.g. syn).")] = None,
    n_perm: Annotated[int, typer.Option(help="Permutations of each test.")] = 1999,
    seed: Annotated[int, typer.Option(help="Permutation seed.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: AGENTS/comparison).")] = None,
) -> None:
    """Do model agents behave like these people (population level), and like each person
    (individual level)? With parameter recovery."""
    from .jobs.compare_agents import compare_agents as job

    with _user_errors():
        result = job(people, agents, out, people_agent=people_agent, n_perm=n_perm, seed=seed)
    _result(result.summary())
    _log(f"wrote the tables, summary.txt and comparison.json to {result.out}; `surrogate report {result.out}` draws "
         "them")


def main() -> None:  # pragma: no cover - console entry point
    app(sys.argv[1:])
