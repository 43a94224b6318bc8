"""`surrogate import`: real people's data of a declarative experiment, from a tidy trial
table to Psych-201 transcripts (and the same behaviour tables `simulate` writes).

The table (CSV or parquet) has one row per trial: `participant`, `trial` (1, 2, ...),
`choice` (an option label as written inside << >>), optionally `reward` and `condition`;
every other column is participant metadata (constant within a participant: age, a
questionnaire score, ...). The experiment file says how a trial reads (its prompt, options,
instructions) and what the feedback text is for a reward, so the transcript is rendered as
`surrogate simulate` renders its own participants. `trial_table` reads the transcripts back
into the same table (round trip, tested).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..experiments import DeclarativeExperiment, Feedback, SessionRecord, Trial, load_experiment_spec
from ..store import claim_output, file_digest

REQUIRED = ("participant", "trial", "choice")
OPTIONAL = ("reward", "condition")


def _read_table(path: Path) -> pd.DataFrame:
    from ..data import limits

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such trial table")
    _, max_file = limits()
    if path.stat().st_size > max_file:
        raise ValueError(f"{path}: larger than {max_file} bytes (SURROGATE_MAX_FILE_BYTES raises the limit)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
            raise ValueError(f"{path}: not a readable parquet file ({e})") from None
        size = sum(meta.row_group(k).total_byte_size for k in range(meta.num_row_groups))
        if size > max_file:
            raise ValueError(f"{path}: {size} bytes uncompressed, more than the limit of {max_file} "
                             "(SURROGATE_MAX_FILE_BYTES raises it)")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={"participant": str, "choice": str})
    raise ValueError(f"{path}: expected a .csv, .tsv or .parquet trial table")


def _feedback(spec, reward) -> Feedback:
    fb = spec.feedback
    if reward is None or (isinstance(reward, float) and math.isnan(reward)):
        if fb.kind != "none":
            raise ValueError("a reward is missing, and this experiment's feedback depends on it")
        return Feedback(text=fb.end)
    reward = float(reward)
    if fb.kind == "bernoulli":
        return Feedback(text=fb.win if reward > 0 else fb.loss, reward=reward)
    if fb.kind == "points":
        return Feedback(text=fb.text.replace("{reward}", f"{reward:g}"), reward=reward)
    return Feedback(text=fb.end, reward=reward)


def table_to_sessions(table: pd.DataFrame, experiment: DeclarativeExperiment, source: str) -> list[SessionRecord]:
    """Sessions from a tidy trial table; errors name the file, the row and the participant."""
    spec = experiment.spec
    missing = [c for c in REQUIRED if c not in table]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)} (a trial table has participant, trial, "
                         "choice, optionally reward and condition, and metadata columns)")
    table = table.reset_index(drop=True)
    if table.empty:
        raise ValueError(f"{source}: no trials (the table has its header and no rows)")
    table["participant"] = table["participant"].astype(str)
    metadata_columns = [c for c in table.columns if c not in (*REQUIRED, *OPTIONAL)]
    records = []
    for pid, g in table.groupby("participant", sort=False):
        g = g.sort_values("trial")
        row_of = lambda i: int(i) + 2  # noqa: E731 - the file's line (header = line 1)
        trials = g["trial"].tolist()
        if trials != list(range(1, len(trials) + 1)):
            raise ValueError(f"{source}: participant {pid}: trials must be 1..{len(trials)} once each, got "
                             f"{trials[:6]}{'...' if len(trials) > 6 else ''}")
        meta = {}
        for c in metadata_columns:
            values = g[c].dropna().unique()
            if len(values) > 1:
                raise ValueError(f"{source}: participant {pid}: metadata column {c!r} changes within the participant "
                                 f"({values[:3].tolist()}); per-trial variables are not metadata")
            if len(values):
                v = values[0]
                meta[c] = v.item() if hasattr(v, "item") else v
        condition = None
        if "condition" in g and g["condition"].notna().any():
            cond = g["condition"].dropna().unique()
            if len(cond) > 1:
                raise ValueError(f"{source}: participant {pid}: condition changes within the participant")
            condition = str(cond[0])
            meta["condition"] = condition
        labels = tuple(spec.options) if spec.options is not None else tuple(dict.fromkeys(g["choice"].astype(str)))
        if spec.options is None and len(labels) > spec.labels:
            raise ValueError(f"{source}: participant {pid}: {len(labels)} different choices, but the experiment has "
                             f"{spec.labels} options")
        listed = ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else labels[0]
        session_trials, choices, feedback = [], [], []
        for i, row in g.iterrows():
            choice = str(row["choice"])
            if not choice.strip() or "<<" in choice or ">>" in choice or "\n" in choice or "\r" in choice:
                raise ValueError(f"{source}:{row_of(i)}: participant {pid}, trial {row['trial']}: choice {choice!r} "
                                 "cannot be a response (empty, on several lines, or holding << or >>, which mark "
                                 "responses)")
            if choice not in labels:
                raise ValueError(f"{source}:{row_of(i)}: participant {pid}, trial {row['trial']}: choice {choice!r} is "
                                 f"not one of the options {list(labels)}")
            info = {"trial": int(row["trial"]), **({"condition": condition} if condition else {})}
            session_trials.append(Trial(prompt=spec.prompt.replace("{trial}", str(int(row["trial"]))), options=labels,
                                        info=info))
            choices.append(choice)
            try:
                feedback.append(_feedback(spec, row["reward"] if "reward" in g else None))
            except ValueError as e:
                raise ValueError(f"{source}:{row_of(i)}: participant {pid}, trial {row['trial']}: {e}") from None
        records.append(SessionRecord(experiment=spec.name, participant=str(pid), metadata=meta,
                                     instructions=spec.instructions.replace("{options}", listed), trials=session_trials,
                                     choices=choices, feedback=feedback, agent="people"))
    return records


def trial_table(transcripts: str | Path, experiment: DeclarativeExperiment) -> pd.DataFrame:
    """The tidy trial table back from Psych-201 transcripts of a declarative experiment: the
    choices from the responses, the reward from the feedback text, the metadata."""
    from ..data import load, parse_spans

    spec = experiment.spec
    fb = spec.feedback
    points = re.compile(re.escape(fb.text).replace(re.escape("{reward}"), r"(-?[0-9.eE+]+)"))
    rows = []
    for p in load(transcripts).participants:
        text = p.text
        spans = parse_spans(text)
        for t, (s, e) in enumerate(spans, start=1):
            after = text[e + 2: text.find("\n", e) if text.find("\n", e) >= 0 else len(text)]
            if fb.kind == "bernoulli":
                reward = fb.reward if after == fb.win else 0.0 if after == fb.loss else math.nan
            elif fb.kind == "points":
                m = points.fullmatch(after)
                reward = float(m.group(1)) if m else math.nan
            else:
                reward = math.nan
            rows.append({"participant": p.participant, "trial": t, "choice": text[s:e], "reward": reward,
                         **{k: v for k, v in p.metadata.items()}})
    return pd.DataFrame(rows)


def import_table(table: str | Path, experiment: str | Path, out: str | Path, *, fit: bool = True,
                 log: Callable[[str], None] = lambda s: None):
    """`surrogate import`: write EXPERIMENT/prompts.jsonl, sessions.jsonl, behaviour.csv,
    trials.parquet and summary.json to `out`, as `simulate` does for its participants."""
    from .run import check_out
    from ..experiments import behaviour_rows, summarize_behaviour
    from .simulate import SimulationResult, SimulationSummary, write_study

    path = Path(table)
    exp = DeclarativeExperiment(load_experiment_spec(experiment))
    records = table_to_sessions(_read_table(path), exp, str(path))
    out = check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_output(out, "import", {"table": file_digest(path), "experiment": exp.spec.model_dump(mode="json"),
                                 "fit": fit})
    behaviour = behaviour_rows(exp, records, fit=fit)
    summary = SimulationSummary(experiment=exp.name, seed=0, participants_per_agent=len(records),
                                agents=summarize_behaviour(behaviour))
    write_study(out, exp.name, records, behaviour, summary)
    log(f"imported {len(records)} participants ({sum(len(r.choices) for r in records)} trials) of {exp.name}")
    return SimulationResult(out=out, records=records, behaviour=behaviour, summary=summary)
