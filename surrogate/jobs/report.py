"""`surrogate report`: runs and their analysis as one self-contained HTML report.

Figures are embedded in the HTML (PNG) and written beside it as PNG and PDF; every figure's
table is written as CSV; a methods paragraph is generated from the runs' run.json.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import Unpack

from .._paths import slug
from ..analysis import ModelPair
from . import figures
from ..options import AnalysisArgs, AnalysisOptions, split_options
from .analyze import Analysis, analyze_with
from ..store import atomic_write_bytes

# The calibration record bench/calibration.py writes (a copy ships with the package, checked
# equal to bench/results/calibration.json by the tests).
CALIBRATION = Path(__file__).resolve().parents[1] / "analysis" / "data" / "calibration.json"
TARGETS = {"type-I": "0.03-0.07", "coverage": "0.92-0.98"}


def calibration_table(path: Path = CALIBRATION) -> pd.DataFrame:
    """Every row of the calibration record, one line each (empty without a record)."""
    if not path.is_file():
        return pd.DataFrame()
    rows = []
    for section, data in json.loads(path.read_text())["sections"].items():
        for r in data["rows"]:
            target = (f"predicted {r['predicted']:.3f}" if r["kind"] == "agreement" else
                      f"at most {r['hi']}" if r["kind"] == "at most" else
                      f"at least {r['lo']}" if r["kind"] == "at least" else TARGETS.get(r["kind"], r["kind"]))
            rows.append({"section": section, "scenario": r["scenario"], "test": r["test"], "replications": r["n"],
                         "rate": r["rate"], "mc_se": r["mcse"], "target": target,
                         "met": {True: "yes", False: "no", None: ""}[r["pass"]]})
    return pd.DataFrame(rows)


@dataclass
class ReportFigure:
    name: str
    title: str
    caption: str
    png: Path
    pdf: Path
    csv: Path


@dataclass
class Report:
    html: Path
    figures: list[ReportFigure]
    analysis: Analysis


def _methods(run_dirs: Sequence[Path]) -> str:
    """What was run, from run.json: models and revisions, data, truncation, personas, seeds,
    package versions. Every value is escaped: run.json is data, and may have been edited."""
    e = lambda v: html.escape(str(v))  # noqa: E731
    parts = []
    for d in run_dirs:
        infos = sorted(Path(d).glob("run*.json"))
        if not infos:
            continue
        try:
            parts.append(_method(infos[0], Path(d), e))
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
            raise ValueError(f"{infos[0]}: not a surrogate run record ({type(err).__name__}: {err}); it was edited "
                             "or damaged, or is not surrogate's; move it out of the folder") from None
    return " ".join(parts) or "No run.json found in the given folders."


def _method(path: Path, d: Path, e) -> str:
    info = json.loads(path.read_text())
    cfg = info.get("config", {})
    opts = cfg.get("options", cfg)  # the scoring options (flat in runs before 0.2)
    models = []
    for spec in cfg.get("models", []):
        label = spec.get("name") or spec["path"]
        fp = info.get("models", {}).get(label, {}).get("fingerprint", {})
        rev = spec.get("revision") or fp.get("revision") or ""
        where = _relative(spec["path"], d) if Path(str(spec["path"])).is_absolute() else spec["path"]
        models.append(f"{label} ({where}{'@' + str(rev) if rev else ''}; weights {fp.get('weights', '?')}"
                      f"{', adapter ' + str(spec['adapter']) if spec.get('adapter') else ''}; "
                      f"{'chat template' if fp.get('chat') else 'plain text'}; {fp.get('dtype', '?')})")
    trunc = cfg["truncation"] if "truncation" in cfg else {"max_chars": opts.get("max_chars"), "max_tokens": opts.get(
        "max_tokens"), "count_prefix": not opts.get("persona_outside_cut", False)}
    data = info.get("data", {})
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
    sources = [_relative(s, d) for s in data.get("sources", [])]
    return (
        f"Run {e(d.name)}: {len(models)} model(s) — {e('; '.join(models))}. "
        f"Data: {e(data.get('participants', '?'))} participants in {len(data.get('studies', []))} "
        f"studies ({e(', '.join(map(str, data.get('studies', []))))}) from {e(', '.join(sources))}. Each human "
        "response was scored by its negative log-likelihood given everything before it in one teacher-forced "
        f"pass. Transcripts were cut at {e(trunc.get('max_chars') or 'no')} characters"
        f"{' (persona prefix included, as in the paper)' if trunc.get('count_prefix', True) else ' (transcript alone)'}"
        f"{', a token budget of ' + e(trunc['max_tokens']) if trunc.get('max_tokens') else ''}. "
        f"Persona strategies: {e(', '.join(map(str, cfg.get('personas', []))))}; shuffled-persona seed "
        f"{e(opts.get('seed', 0))}, {e(opts.get('derangements', 1))} derangement(s)"
        f"{', stratified by ' + e(opts['stratify']) if opts.get('stratify') else ''}. Software: {e(versions)}.")


def _relative(source: str, run_dir: Path) -> str:
    """A data source as the user would recognise it, without this machine's absolute paths:
    the shipped sample by name, else the path relative to the run folder's parent, else the
    last two path components."""
    from ..organisms import sample_dir

    text = str(source).split("!", 1)[0]
    path = Path(text)
    try:
        return "the shipped Psych-201 sample/" + str(path.resolve().relative_to(sample_dir().resolve()))
    except ValueError:
        pass
    try:
        return str(path.resolve().relative_to(run_dir.resolve().parent))
    except ValueError:
        return "/".join(path.parts[-2:]) if path.is_absolute() else text


def _lora_reports(run_dirs: Sequence[Path], lora: Sequence[Path]) -> list[dict[str, Any]]:
    """The LoRA reports in the folders (and one level down), each checked to be one."""
    from pydantic import ValidationError

    from ..training import FinetuneReport

    found = []
    for d in [*run_dirs, *lora]:
        for path in [Path(d) / "report.json", *Path(d).glob("*/report.json")]:
            if not path.is_file():
                continue
            try:
                rep = json.loads(path.read_text())
            except ValueError:
                raise ValueError(f"{path}: not valid JSON (edited or damaged)") from None
            if isinstance(rep, dict) and "heldout" in rep and "adapter" in rep:
                try:
                    found.append(FinetuneReport.model_validate(rep).model_dump(mode="json"))
                except ValidationError as err:
                    first = err.errors()[0]
                    raise ValueError(f"{path}: not a LoRA report ({'.'.join(map(str, first['loc']))}: "
                                     f"{first['msg']}); it was edited or damaged") from None
    return found


def _img(png: Path) -> str:
    return base64.b64encode(png.read_bytes()).decode()


def _table_html(frame: pd.DataFrame, max_rows: int = 200) -> str:
    return frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0,
                                        classes="t")


def report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    pairs: str | Path | Sequence[ModelPair] | None = None,
    categories: str | Path | None = None,
    lora: Sequence[str | Path] = (),
    title: str = "surrogate report",
    analysis: Analysis | None = None,
    findings: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda s: None,
    **options: Unpack[AnalysisArgs],
) -> Report:
    """Analyse the runs (unless `analysis` is given; `options` as `analyze`'s) and write
    out/report.html, out/figures/ (PNG and PDF) and out/tables/ (every figure's table, and
    analyze's CSVs). `findings`: the lines of the Findings section (default: `headline`)."""
    (opts,) = split_options(dict(options), AnalysisOptions)

    out = Path(out)
    dirs = [Path(d) for d in run_dirs]
    for folder in [*dirs, *map(Path, lora)]:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such run or LoRA folder")
    if dirs and all((d / "comparison.json").is_file() for d in dirs):
        return _agents_report(dirs, out, title=title, log=log)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    if analysis is None:
        analysis = analyze_with(opts, dirs, pairs=pairs, categories=categories, out=out / "tables")
    responses = analysis.responses
    mis = analysis.misalignment.to_frame() if analysis.misalignment is not None else pd.DataFrame()
    pair_list = [pm.pair for pm in analysis.misalignment.pairs] if analysis.misalignment is not None else []

    made: list[tuple[str, str, str, Any]] = []
    sized = any(p.size_b for p in pair_list)
    if sized:
        made.append(("nll_by_size", "Predicting people by model size", "Mean NLL per response (persona off), "
                     "averaged over experiments, with 95% intervals across experiments (the paper's Fig. 2).",
                     figures.nll_by_size(responses, pair_list)))
    made.append(("nll_by_study", "Predicting people, study by study", "NLL per response (persona off) of each "
                 "model in each study, relative to the study's mean over the models shown (studies differ up to "
                 "a hundredfold in NLL, so raw nats would not compare): one point per study, the mean over studies "
                 "as a diamond; left of 0 predicts people better. The raw values are in the table above.",
                 figures.nll_by_study(responses)))
    if not mis.empty:
        one_pair = (mis["level"] == "pooled").sum() == 1
        made.append(("misalignment", "Post-training misalignment",
                     "The paper's d (post-trained minus base NLL over all response rows, pooled SD; > 0: the "
                     "post-trained model predicts people worse) "
                     + ("per experiment (circles) and its mean over the experiments (diamond)" if one_pair else
                        "per pair, averaged over experiments (circles), and the mean per post-training type "
                        "(diamonds)")
                     + ", with 95% participant-bootstrap intervals (the paper's Fig. 3). surrogate's "
                     "per-participant d is in the tables.", figures.misalignment_forest(mis)))
        trends = analysis.misalignment.trend_frame() if analysis.misalignment.trends else pd.DataFrame()
        made.append(("generation_trend", "Misalignment across generations", "Each pair's misalignment (the "
                     "paper's d, mean over experiments, 95% participant-bootstrap interval) against its generation "
                     "within its family, marker by post-training type, with the mean per generation; the title "
                     "gives the trend test (generations the unit of replication; see the estimators page). As the "
                     "paper's generation-trend figure.", figures.generation_trend(mis, trends)))
        made.append(("misalignment_domains", "Misalignment by domain", "The paper's d per pair and domain "
                     "(mean over the domain's experiments), with the domain averages (the paper's Fig. 4).",
                     figures.misalignment_heatmap(mis)))
    if analysis.metadata_benefits:
        benefit = pd.concat([b.to_frame().assign(model=m) for m, b in analysis.metadata_benefits.items()],
                            ignore_index=True)
        made.append(("metadata_benefit", "Meta-data benefit", "Cohen's d of no-persona minus persona NLL, "
                     "averaged over experiments (the paper's Fig. 5). It mixes population- and "
                     "individual-level effects; the decomposition below separates them.",
                     figures.metadata_benefit_plot(benefit)))
    from .analyze import persona_effects_table, primary

    decs = primary(analysis.decompositions)
    if decs:
        effects = persona_effects_table(analysis.decompositions)
        for label, d in decs.items():
            made.append((f"persona_{slug(label)}", f"Persona decomposition: {label}",
                         f"Per experiment: total benefit of the matched persona ({d.matched}; no persona − persona), "
                         f"its population component (no persona − {d.control} persona) and individual component "
                         f"({d.control} − matched persona), nats per response, 95% t intervals; diamonds: pooled "
                         "estimate (experiments weighted equally); band: prediction interval of the "
                         "individual component in a new experiment.",
                         figures.persona_forest(effects, d.model, d.control, matched=d.matched,
                                                label=label.split(" [")[0])))
    population = [c.frames()["population"].assign(model=m, persona=p) for (m, p), c in analysis.choices.items()]
    population = pd.concat(population, ignore_index=True) if population else pd.DataFrame()
    if not population.empty:
        made.append(("choice_rates", "Closed-set choices", "Per option and experiment: the model's "
                     "predicted choice rate against the observed share of participants' choices.",
                     figures.choice_rates(population)))
    lora_reps = _lora_reports(dirs, [Path(p) for p in lora])
    if lora_reps:
        made.append(("lora_recovery", "LoRA toward human behaviour", "Held-out NLL per response before "
                     "and after each adapter, and of the reference model; recovery = (before − after) / "
                     "(before − reference).", figures.lora_recovery(lora_reps)))

    written = _write_figures(made, out)

    calibration = calibration_table()
    body = [f"<h1>{html.escape(title)}</h1>"]
    models = sorted(responses["model"].unique())
    if any(m.startswith("organism-") for m in models):
        body.append("<p class=\"note\"><b>Miniature organisms.</b> organism-* are small models surrogate trained "
                    "itself (on real Psych-201 participants and synthetic ones); they show the measurements working, "
                    "not how real language models behave. Their cards say how they were made.</p>")
    lines = list(findings) if findings is not None else headline(analysis)
    body += ["<h2>Findings</h2>", "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>",
             "<h2>Mean NLL per response by study and model</h2>", _table_html(nll_table(responses)),
             "<h2>Methods</h2>", f"<p>{_methods(dirs)}</p>"]
    for f in written:
        body += [f'<figure id="{f.name}"><h2>{html.escape(f.title)}</h2>',
                 f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,{_img(f.png)}">',
                 f"<figcaption>{html.escape(f.caption)} Files: <a href=\"figures/{f.png.name}\">PNG</a>, "
                 f"<a href=\"figures/{f.pdf.name}\">PDF</a>, <a href=\"tables/{f.csv.name}\">table (CSV)</a>."
                 "</figcaption></figure>"]
    body += ["<h2>Estimates</h2>", f"<pre>{html.escape(analysis.summary())}</pre>"]
    if not calibration.empty:
        body += ["<h2>Calibration of the estimators</h2>",
                 "<p>Measured by simulation with known truth through the same estimator code "
                 "(<code>python bench/calibration.py</code>; replications per row as listed). Targets: type-I "
                 "error in [0.03, 0.07], coverage of 95% intervals in [0.92, 0.98], a planner's prediction within "
                 "0.05 of the simulated power; rows without a target are reported as measured.</p>",
                 f"<details><summary>The calibration table ({len(calibration)} rows)</summary>"
                 + _table_html(calibration, max_rows=1000) + "</details>"]
    page = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
            "img{max-width:100%;height:auto}figure{margin:2em 0}figcaption{font-size:90%;color:#444}"
            "table.t{border-collapse:collapse;font-size:80%}table.t td,table.t th{padding:2px 6px;"
            "border-bottom:1px solid #ddd}pre{white-space:pre-wrap;font-size:85%}.note{background:#fff4e0;padding:.5em 1em}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
    path = out / "report.html"
    atomic_write_bytes(path, page.encode())
    log(f"wrote {path} ({len(written)} figures; PNG and PDF in {out / 'figures'}, tables in {out / 'tables'})")
    return Report(html=path, figures=written, analysis=analysis)


def _write_figures(made, out: Path) -> list[ReportFigure]:
    import matplotlib.pyplot as plt

    written = []
    for name, fig_title, caption, result in made:
        if result is None:
            continue
        fig, table = result
        png, pdf, csv = out / "figures" / f"{name}.png", out / "figures" / f"{name}.pdf", out / "tables" / f"{name}.csv"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150)
        atomic_write_bytes(png, buf.getvalue())
        buf = io.BytesIO()
        fig.savefig(buf, format="pdf")
        atomic_write_bytes(pdf, buf.getvalue())
        plt.close(fig)
        atomic_write_bytes(csv, table.to_csv(index=False).encode())
        written.append(ReportFigure(name, fig_title, caption, png, pdf, csv))
    return written


def _page(title: str, body: list[str]) -> str:
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
            "img{max-width:100%;height:auto}figure{margin:2em 0}figcaption{font-size:90%;color:#444}"
            "table.t{border-collapse:collapse;font-size:80%}table.t td,table.t th{padding:2px 6px;"
            "border-bottom:1px solid #ddd}pre{white-space:pre-wrap;font-size:85%}.note{background:#fff4e0;padding:.5em 1em}"
            "</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _figure_html(f: ReportFigure) -> list[str]:
    return [f'<figure id="{f.name}"><h2>{html.escape(f.title)}</h2>',
            f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,{_img(f.png)}">',
            f"<figcaption>{html.escape(f.caption)} Files: <a href=\"figures/{f.png.name}\">PNG</a>, "
            f"<a href=\"figures/{f.pdf.name}\">PDF</a>, <a href=\"tables/{f.csv.name}\">table (CSV)</a>."
            "</figcaption></figure>"]


def _agents_report(dirs: Sequence[Path], out: Path, *, title: str, log: Callable[[str], None]) -> Report:
    """A custom study's report: agents against people, from compare-agents folders."""
    from .compare_agents import agents_figures, load_comparison

    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    made, summaries, findings = [], [], []
    for d in dirs:
        data, comparisons = load_comparison(d)
        made += [(f"{name}_{slug(d.name)}" if len(dirs) > 1 else name, t, c, r) for name, t, c, r in agents_figures(d)]
        for c in comparisons:
            summaries.append(c.summary())
            ind = next((m for m in c.individual if m.on == "indices"), None)
            pop = [i for i in c.indices if i.p < 0.05]
            findings.append(f"{c.agent} against {c.people} in {data['experiment']}: "
                            + (f"differs from the people in {', '.join(i.index for i in pop)} (p < .05)" if pop
                               else "no behaviour index distinguishes the agents from the people at p < .05")
                            + (f"; each agent is closer to its own person than to the others by {ind.closer:+.3f} "
                               f"(p {ind.p:.3g})" if ind else "") + ".")
    written = _write_figures(made, out)
    body = [f"<h1>{html.escape(title)}</h1>", "<h2>Findings</h2>",
            "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in findings) + "</ul>"]
    for f in written:
        body += _figure_html(f)
    body += ["<h2>Estimates</h2>", f"<pre>{html.escape(chr(10).join(summaries))}</pre>"]
    path = out / "report.html"
    atomic_write_bytes(path, _page(title, body).encode())
    log(f"wrote {path} ({len(written)} figures)")
    return Report(html=path, figures=written, analysis=None)


def nll_table(responses: pd.DataFrame) -> pd.DataFrame:
    """Mean NLL per response (persona off; each participant weighted once) by study and model."""
    d = responses[(responses["persona"] == "none") & responses["nll"].notna()]
    if d.empty:
        d = responses[responses["nll"].notna()]
    per = d.groupby(["model", "study", "experiment", "participant"])["nll"].mean().groupby(["study", "model"]).mean()
    return per.unstack("model").reset_index().rename_axis(columns=None)


def _verdict(d, label: str | None = None) -> str:
    """One line for one decomposition: what the individual component shows (its Verdict)."""
    return f"{label or d.model} ({d.matched} vs {d.control}): {d.verdict().text}"


def headline(analysis: Analysis) -> list[str]:
    """The findings, one line each, with their numbers."""
    from .analyze import primary

    lines = []
    if analysis.misalignment is not None:
        for pm in analysis.misalignment.pairs:
            lo, hi = pm.mean_paper_interval
            direction = ("worse" if lo > 0 else "better" if hi < 0 else "not distinguishably different")
            if not np.isfinite(lo):
                direction = "see the table (one experiment)"
            lines.append(f"Post-training misalignment, {pm.pair.label}: the paper's d {pm.mean_paper:+.3f} "
                         f"[{lo:+.3f}, {hi:+.3f}] over {len(pm.d_paper)} experiments: the post-trained model predicts "
                         f"people {direction}.")
    for label, d in primary(analysis.decompositions).items():
        if d.pooled_rows:
            lines.append("Personas, " + _verdict(d, label) + ".")
        else:
            lines.append(f"Personas, {label} ({d.matched} vs {d.control}): no pooled estimate ("
                         + "; ".join(f"{r.experiment}: {r.status}" if r.status != "ok" else
                                     f"{r.experiment}: individual {r.individual_component}" for r in d.rows) + ").")
    if not lines:
        lines.append("Mean NLL per response by study and model below; misalignment needs --pairs, the persona "
                     "decomposition none, a matched persona and its shuffled control.")
    return lines



