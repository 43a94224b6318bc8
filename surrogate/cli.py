"""The `surrogate` command line. Heavy libraries are imported inside commands, so --help is
instant; each command calls the Python function of the same name with the same names.

One vocabulary: the scoring and analysis options are generated from their models
(surrogate.options: ScoringOptions, AnalysisOptions; `cli_options`), so a flag and its Python
argument are one thing (`--max-participants` is `max_participants`); the few options of one
command are declared with it. Results go to stdout, diagnostics (progress, notes, what was
written) to stderr.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.markup import escape

from .options import AnalysisOptions, GridOptions, OptionError, ScoringOptions
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


def validation_text(e: ValidationError) -> str:
    """A pydantic error on one line, each field named as its flag (an OptionError raised in a
    validator as the OptionError says it)."""
    def one(err) -> str:
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, OptionError):
            return _flag_text(cause)
        return f"{_flag('.'.join(map(str, err['loc'])))}: {err['msg'].removeprefix('Value error, ')}"

    return "; ".join(one(err) for err in e.errors())


def _flag(name: str) -> str:
    """How the command line spells an option (its model's own flag where it has one)."""
    for model in (ScoringOptions, AnalysisOptions, FinetuneConfig):
        field = model.model_fields.get(name)
        if field is not None and (field.json_schema_extra or {}).get("cli"):
            return field.json_schema_extra["cli"][0]
    return f"--{name.replace('_', '-')}"


def _flag_text(e: OptionError) -> str:
    """An option error as the command line spells the option."""
    value = "" if e.value is None or str(e.value) == "" else f" {e.value}"
    return f"{_flag(e.option)}{value}: {e.problem}"


def _cli_parameter(name: str, field) -> inspect.Parameter:
    """A typer option from an option model's field: `--name-with-dashes` (or the field's own
    names), its help, its range, a `--x/--no-x` switch for a flag that is on by default."""
    from typing import Literal, get_args, get_origin

    extra = field.json_schema_extra or {}
    names = list(extra.get("cli") or [f"--{name.replace('_', '-')}"])
    annotation = extra.get("cli_type") or field.annotation
    default = field.get_default(call_default_factory=True)
    if isinstance(default, (dict, list)):
        default = None
    # Ranges are checked by the model (one line naming the flag), and said in the help.
    bounds = []
    for meta in field.metadata:
        for attr, word in (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{word} {getattr(meta, attr)}")
    help_text = escape(field.description or "") + (f" ({', '.join(bounds)})" if bounds else "")
    if get_origin(annotation) is Literal:  # choices checked by the model, so a bad one is one line
        help_text += f" One of: {', '.join(map(str, get_args(annotation)))}."
        annotation = str
    if annotation is bool and default:
        names = [f"{names[0]}/--no-{names[0][2:]}"]
    if default is None and annotation is not bool and not (get_origin(annotation) is not None and
                                                           type(None) in get_args(annotation)):
        annotation = Optional[annotation]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, typer.Option(*names, help=help_text)])


def cli_options(**groups):
    """A command's options from option models, by keyword: `scoring=ScoringOptions`, or
    `analysis=(AnalysisOptions, {"skip": {...}})` / `{"only": {...}}` for part of one. The command
    gets each keyword's model built from the command line; a bad value is one line naming its
    flag."""
    def fields(spec):
        model, pick = spec if isinstance(spec, tuple) else (spec, {})
        return model, {n: f for n, f in model.model_fields.items()
                       if n not in pick.get("skip", ()) and ("only" not in pick or n in pick["only"])}

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)
        picked = {key: fields(spec) for key, spec in groups.items()}
        own = [p for p in sig.parameters.values() if p.name not in groups]
        added = [_cli_parameter(n, f) for _, fs in picked.values() for n, f in fs.items()]

        @functools.wraps(fn)
        def command(**kwargs):
            built = {}
            with _user_errors():
                for key, (model, fs) in picked.items():
                    given = {k: kwargs.pop(k) for k in list(kwargs) if k in fs}
                    built[key] = model(**{k: v for k, v in given.items() if v is not None})
            return fn(**kwargs, **built)

        params = [*own, *added]
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


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
        _console().print(f"[bold red]error:[/] {escape(validation_text(e))}", highlight=False, markup=True,
                         soft_wrap=True)
        raise typer.Exit(2) from None
    except OptionError as e:
        _console().print(f"[bold red]error:[/] {escape(_flag_text(e))}", highlight=False, markup=True,
                         soft_wrap=True)
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


# --- the options of one command each; the scoring and analysis options come from their models --

Model = Annotated[Optional[list[str]], typer.Option(
    "--model", "-m", help="A local folder or hub id, optionally NAME=PATH, @REVISION for hub ids, and after commas "
    "adapter=DIR, chat=, dtype=, device=; repeat for several. Built-in names: organism-base, organism-post-light, "
    "organism-post, organism-control, demo-base, demo-chat. Default: the shipped organisms.")]
Data = Annotated[Optional[str], typer.Option(
    help="prompts.jsonl[.zip]/.parquet, a study folder, a Psych-201 tree, or a HF dataset id. Default: the "
    "shipped sample of real Psych-201 participants.")]
Pairs = Annotated[Optional[str], typer.Option(help="TOML with \\[\\[pairs]] base / post_trained model labels, for "
                                              "post-training misalignment; `paper`: the paper's grid by hub id. "
                                              "Default: pairs.toml in a run folder, if there is one.")]
Categories = Annotated[Optional[Path], typer.Option(help="Study-to-domain CSV (as psych201/categories.csv).")]
Shard = Annotated[Optional[str], typer.Option(help="K/N: play only the K-th of N deterministic shares (SLURM "
                                              "arrays).")]


# --- commands ---------------------------------------------------------------------------------

@app.command()
@cli_options(scoring=ScoringOptions, grid=GridOptions)
def run(
    model: Model = None,
    data: Data = None,
    persona: Annotated[str, typer.Option(
        help="off | on | both, or strategies: none,interview,narrative,demographics,questionnaires,system, their "
        "controls shuffled-X, population-X, placebo-X, shuffled-placebo-X, or module:Class.")] = "off",
    out: Annotated[str, typer.Option(help="Output folder (resumable).")] = "runs/default",
    scoring: ScoringOptions = ScoringOptions(),
    grid: GridOptions = GridOptions(),
) -> None:
    """Score models on human transcripts: per-response NLL, with and without personas. With no
    --model and no --data: the built-in default job (the shipped organisms on the shipped
    sample, with its analysis and report). --grid paper: every model of the paper's grid."""
    from .jobs.default import run_default_job
    from .jobs.run import run_with

    with _user_errors():
        model = [*(model or []), *_grid_models(grid)]
    with _user_errors(), _progress() as progress:
        if not model and data is None:
            job = run_default_job(persona, out, scoring, progress=progress, log=_log)
            result = job.result
        else:
            job, result = None, run_with(scoring, model or [], data, persona, out, progress=progress, log=_log)
    _print_table(result.summary, "Mean NLL per response (nats)")
    for label, stats in result.info.models.items():
        tps = stats.tokens_per_second
        empty = {k: v for k, v in stats.empty_persona.items() if v}
        note = f"; participants with an empty persona: {empty}" if empty else ""
        _log(f"{label}: scored {stats.scored} units, skipped {stats.skipped} done; {stats.tokens} tokens"
             + (f" at {tps:.0f} tokens/s" if tps else "") + note)
    _log(f"wrote {result.out / 'responses.parquet'} ({len(result.responses)} rows), run.json, summary.csv")
    if job is not None and job.analysis is not None:
        _show_default_job(job)


def _grid_models(options: GridOptions) -> list[str]:
    """The --model strings of the grid the options select; device=map for a model larger than
    this machine's GPU (by the config-only memory estimate)."""
    from .jobs.grid import expand, grid_from

    selected = grid_from(options)
    if selected is None:
        return []
    gpu = None
    import torch

    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_properties(0).total_memory / 2**30
    models = expand(selected, gpu_memory_gib=gpu)
    _log(f"grid {' + '.join(selected.sources)}: {len(models)} models")
    return models


def _show_default_job(job) -> None:
    """The built-in default shows the science: misalignment between the organisms and the
    persona decomposition, estimated from the run just made, then says where the report is."""
    analysis = job.analysis
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
    _result("Findings, one line each (the persona arms: real people, then the positive and the null control):\n"
            + "\n".join(f"- {line}" for line in job.findings))
    _log(f"wrote the analysis to {analysis.out} and the report to {job.report}")


@app.command("compare-personas")
@cli_options(scoring=ScoringOptions,
             analysis=(AnalysisOptions, {"skip": {"n_boot", "resample_seed", "separate_labels"}}))
def compare_personas(
    model: Model = None,
    data: Data = None,
    persona: Annotated[Optional[str], typer.Option(
        "--persona", "--strategies", help="The strategies to score (default: none, each matched strategy with its "
        "shuffled control, and for interview population, placebo and shuffled-placebo).")] = None,
    out: Annotated[str, typer.Option(help="Output folder (resumable).")] = "runs/personas",
    scoring: ScoringOptions = ScoringOptions(),
    analysis: AnalysisOptions = AnalysisOptions(),
) -> None:
    """Does a persona help predict this person, or only people in general?"""
    from .jobs.compare_personas import compare_personas_with

    with _user_errors(), _progress() as progress:
        result = compare_personas_with(scoring, analysis, model or [], data, out, persona=persona, progress=progress,
                                       log=_log)
    columns = ["model", "matched", "control", "role", "experiment", "status", "n_participants", "total",
               "population_component", "individual_component", "individual_p", "individual_tost_p"]
    columns += [c for c in ("prefix_component", "population_information", "individual_content")
                if c in result.table]
    _print_table(result.table[columns], "Persona effects (nats per response; > 0: the persona helps)")
    _result(result.summary())
    _log(f"wrote {Path(result.out) / 'persona_effects.csv'} and persona_summary.txt"
         + (", strategy_ranking.csv, strategy_differences.csv" if result.comparisons else ""))


@app.command()
@cli_options(analysis=AnalysisOptions)
def analyze(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders.")],
    pairs: Pairs = None, categories: Categories = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: FIRST_DIR/analysis).")] = None,
    analysis: AnalysisOptions = AnalysisOptions(),
) -> None:
    """Estimate what earlier runs support: persona decomposition, meta-data benefit,
    post-training misalignment, choice prediction."""
    from .jobs.analyze import analyze_with

    with _user_errors():
        result = analyze_with(analysis, run_dirs, pairs=pairs, categories=categories, out=out)
    _result(result.summary())
    written = sorted(p.name for p in result.out.iterdir())
    _log(f"wrote {', '.join(written)} to {result.out}")


@app.command()
@cli_options(analysis=(AnalysisOptions, {"only": {"by", "matched", "sesoi", "separate_labels"}}))
def plan(
    run_dirs: Annotated[list[Path], typer.Argument(help="Pilot run folder(s) (compare-personas or run output).")],
    model: Annotated[Optional[str], typer.Option(help="The model to plan for (default: the only one).")] = None,
    effect: Annotated[str, typer.Option(help="Individual component to detect: nats per response (0.02) or a "
                                        "per cent of the no-persona NLL (1%).")] = "1%",
    d: Annotated[float, typer.Option(help="Misalignment (per-participant d) to detect, with --pair.")] = 0.2,
    power: Annotated[float, typer.Option(help="Target power.")] = 0.8,
    pair: Annotated[Optional[list[str]], typer.Option(help="BASE,POST model labels: plan misalignment for this "
                                                      "pair (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write plan.csv (power over designs) and plan.txt here.")] = None,
    usable_share: Annotated[Optional[float], typer.Option(
        "--usable-share", "--usable", help="Share of recruited participants who will enter the individual component "
                                           "(metadata and a swap partner); default: the pilot's.")] = None,
    analysis: AnalysisOptions = AnalysisOptions(),
) -> None:
    """How many participants and experiments a question needs, from a pilot's variance components."""
    from .jobs.plan import plan as job

    with _user_errors():
        pairs = []
        for item in pair or []:
            base, sep, post = item.partition(",")
            if not sep or not base or not post:
                raise OptionError("pair", item, "expected BASE,POST (model labels)")
            pairs.append((base, post))
        result = job(run_dirs, model=model, effect=effect, d=d, power=power, pairs=pairs, out=out,
                     usable_share=usable_share, **analysis.model_dump(include={"by", "matched", "sesoi", "separate_labels"}))
    _result(result.summary())
    _print_table(result.table(), f"Power over designs (effect {effect}; misalignment d = {d:g})")


@app.command()
@cli_options(analysis=AnalysisOptions)
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders (and LoRA folders).")],
    out: Annotated[Path, typer.Option(help="Report folder: report.html, figures/, tables/.")] = Path("report"),
    pairs: Pairs = None, categories: Categories = None,
    lora: Annotated[Optional[list[Path]], typer.Option(help="LoRA output folders with report.json "
                                                       "(repeatable).")] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "surrogate report",
    analysis: AnalysisOptions = AnalysisOptions(),
) -> None:
    """A self-contained HTML report with the paper's figures for your runs (PNG, PDF, CSV beside)."""
    from .jobs.report import report as job

    with _user_errors():
        rep = job(run_dirs, out, pairs=pairs, categories=categories, lora=lora or [], title=title, log=_log,
                  **analysis.model_dump())
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


@app.command()
def status(
    out: Annotated[Path, typer.Argument(help="A results folder that runs or array tasks are writing.")],
) -> None:
    """How far the tasks writing a results folder have got: per model, tasks done, running,
    failed and pending, units done of the total, tokens, tokens/s and the time left. Reads the
    writers' progress files only. Exit code 0: all done; 1: a task failed or stopped; 2: still
    going."""
    from .jobs.status import status as job

    with _user_errors():
        st = job(out)
    if not st.models:
        _log(f"{out}: no run has started writing here yet")
        raise typer.Exit(2)
    _print_table(st.to_frame(), f"Progress of {out}")
    for m in st.models:
        for e in m.errors:
            _log(f"{m.model}: {e}")
    _log("all done" if st.done else "some task failed or stopped: submit it again (it resumes)" if st.failed
         else "still going")
    raise typer.Exit(st.exit_code)


grid_app = typer.Typer(help="Grids of models as data (the paper's, or yours): list them, write cluster jobs.",
                       no_args_is_help=True)
app.add_typer(grid_app, name="grid")


@grid_app.command("list")
@cli_options(grid=GridOptions)
def grid_list(
    memory: Annotated[bool, typer.Option(help="Estimate each model's GPU memory from its config (reads "
                                              "config.json from the hub or the model map).")] = False,
    window_tokens: Annotated[int, typer.Option(min=1, help="Tokens per scored window, for the KV cache.")] = 8192,
    grid: GridOptions = GridOptions(),
) -> None:
    """The models of a grid manifest (default: paper), with the options each is scored with."""
    import pandas as pd

    from .jobs.grid import estimate_memory, grid_from, model_string

    with _user_errors():
        selected = grid_from(grid if grid.grid else grid.model_copy(update={"grid": ["paper"]}))
        rows = []
        for m in selected.models:
            row = {"model": model_string(m), "family": m.family, "generation": m.generation, "size (B)": m.size_b,
                   "post-training": m.post_training}
            if memory:
                est = estimate_memory(m, window_tokens=window_tokens)
                row |= {"GiB (bf16)": round(est.total_gib, 1), "from": est.source}
            rows.append(row)
    _print_table(pd.DataFrame(rows), f"{len(rows)} models, {len(selected.pairs)} pairs ({', '.join(selected.sources)})",
                 float_format="{:g}")


@grid_app.command("script")
@cli_options(grid=GridOptions)
def grid_script(
    data: Annotated[str, typer.Option(help="The data every task scores (a Psych-201 tree on the cluster's disk).")],
    out: Annotated[Path, typer.Option(help="The results folder every task writes (and resumes).")],
    persona: Annotated[str, typer.Option(help="Passed to every task's `surrogate run --persona`.")] = "off",
    gpu_memory: Annotated[float, typer.Option(min=1, help="GiB of one GPU.")] = 80.0,
    hours: Annotated[float, typer.Option(min=0.05, help="Target hours per task: models get as many shards as "
                                                        "make each last about this long.")] = 4.0,
    window_tokens: Annotated[int, typer.Option(min=1, help="Tokens per scored window (KV cache).")] = 8192,
    tokens_per_second: Annotated[Optional[float], typer.Option(min=0.001, help="Measured tokens/s of one GPU "
                                 "(bench/score_bench.py --device cuda); default: estimated from FLOPs.")] = None,
    cpus: Annotated[int, typer.Option(min=1, help="CPUs per task.")] = 8,
    studies: Annotated[Optional[list[str]], typer.Option("--studies", "--study", help="Only these studies "
                                                         "(repeatable; passed to every task).")] = None,
    grid: GridOptions = GridOptions(),
) -> None:
    """Write SLURM array scripts for a grid: one task per (model, shard), GPUs per task from
    each model's memory estimate, shards from its tokens; print the GPU-hours and the torchrun
    alternative."""
    from .jobs.grid import grid_script as job
    from .jobs.grid import task_args, torchrun_lines

    with _user_errors():
        plan, scripts = job(data, out, grid=grid.grid or ["paper"], family=grid.family, max_size=grid.max_size,
                            types=grid.types, persona=persona, studies=studies, gpu_memory=gpu_memory, hours=hours,
                            window_tokens=window_tokens, tokens_per_second=tokens_per_second, cpus=cpus)
    import pandas as pd

    frame = pd.DataFrame([{"model": m.model_string, "GiB": m.memory_gib, "from": m.memory_source, "GPUs": m.gpus,
                           "tokens": m.tokens, "tokens/s": int(m.tokens_per_second), "shards": m.shards,
                           "GPU-hours": m.gpu_hours} for m in plan.models])
    _print_table(frame, f"{len(plan.tasks)} tasks, about {plan.gpu_hours:.3g} GPU-hours", float_format="{:.3g}")
    _log(f"tokens/s: {plan.models[0].tps_source}" if plan.models else "no models")
    if any(m.memory_source == "size_b" for m in plan.models):
        _log("memory from the manifest's sizes where no config was readable (offline, not in the model map): "
             "weights only, plus a fixed overhead; on a machine that reaches the hub it counts the KV cache too")
    for script in scripts:
        _log(f"submit: sbatch {script}")
    _log(f"watch: surrogate status {out}   then: surrogate report {out} --pairs "
         f"{grid.grid[0] if grid.grid else 'paper'} --out {out}/report")
    _log("or, without an array (one node of 8 GPUs at a time):")
    for line in torchrun_lines(plan, data, out, task_args(persona, studies)):
        _log(f"  {line}")


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
    from .data import shared_psych201
    from .jobs.organisms import OrganismRecipe, build_organisms

    if data is None:
        data = shared_psych201()
    with _user_errors(), _progress(unit="steps") as progress:
        if not data.is_dir():
            raise FileNotFoundError(f"{data}: no Psych-201 tree here (pass --data)")
        build = build_organisms(data, out, OrganismRecipe(budget_minutes=budget, seed=seed),
                                progress=progress, log=_log)
    _result(build.summary())
    _log(f"wrote the organisms to {build.out} (cards: README.md in each), in {build.seconds / 60:.1f} minutes")


@app.command()
@cli_options(config=(FinetuneConfig, {"skip": {"target_modules"}}),
             scoring=(ScoringOptions, {"only": {"studies", "max_participants", "device", "attention",
                                                "trust_remote_code"}}))
def finetune(
    model: Annotated[str, typer.Option("--model", "-m", help="A local folder, hub id or built-in name, as in `run`.")],
    data: Annotated[str, typer.Option(help="Psych-201 data, as in `run`.")],
    out: Annotated[str, typer.Option(help="Adapter folder (peft format; resumable).")],
    compare_to: Annotated[Optional[str], typer.Option(help="A reference model (e.g. the base model): report the "
                                                      "recovery fraction.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a finetune run with other settings "
                                            "in OUT (refused otherwise).")] = False,
    config: FinetuneConfig = FinetuneConfig(),
    scoring: ScoringOptions = ScoringOptions(),
) -> None:
    """LoRA toward human behaviour: loss on human responses only; evaluated on held-out people."""
    from .jobs.finetune import finetune as job

    with _user_errors():
        with _progress(unit="steps") as progress:
            report = job(model, data, out, config, compare_to=compare_to, overwrite=overwrite,
                         progress=lambda d, t, loss: progress("LoRA", d, t, f", loss {loss:.3f}"), log=_log,
                         **scoring.model_dump(include={"studies", "max_participants", "device", "attention",
                                                       "trust_remote_code"}))
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
