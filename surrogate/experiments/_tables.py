"""Behaviour tables of played sessions: per participant (indices, fitted and true parameters,
traits), per trial, and a summary per agent population: what `simulate`, `import` and
`compare-agents` write and read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ._base import Experiment, MeasuresBehaviour, SessionRecord
from ._fit import fit_session
from ._indices import learning_indices


def session_index(participant: str) -> int:
    """The 1-based index in a simulated participant's id (`syn-0007` -> 7)."""
    tail = participant.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def behaviour_rows(experiment: Experiment, records: Sequence[SessionRecord], *, fit: bool = True) -> pd.DataFrame:
    """Per participant: behaviour indices, the generating model's fitted parameters (`fit:`),
    the true ones of synthetic participants (`true:`), traits (`trait:`), and `person`: whose
    persona a model agent was given (pairs agents with people)."""
    model_cls = getattr(experiment, "cognitive_model", None)
    rows = []
    for r in records:
        row = {"agent": r.agent, "participant": r.participant, "index": session_index(r.participant),
               "person": r.person, "n_trials": len(r.choices)}
        row.update(experiment.behaviour(r) if isinstance(experiment, MeasuresBehaviour) else learning_indices(r))
        if fit and model_cls is not None and r.choices:
            row.update({f"fit:{k}": v for k, v in fit_session(r, model_cls, starts=2).items()})
        row.update({f"true:{k}": v for k, v in r.params.items()})
        row.update({f"trait:{k}": v for k, v in r.metadata.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def trial_rows(records: Sequence[SessionRecord]) -> pd.DataFrame:
    """One row per trial: who, which trial, the chosen option's position and label, the
    reward, the condition."""
    rows = []
    for r in records:
        condition = r.metadata.get("condition")
        for t, (trial, choice, fb) in enumerate(zip(r.trials, r.choices, r.feedback), start=1):
            rows.append({"agent": r.agent, "participant": r.participant, "trial": t,
                         "position": trial.options.index(choice), "choice": choice, "reward": fb.reward,
                         "condition": None if condition is None else str(condition)})
    return pd.DataFrame(rows, columns=["agent", "participant", "trial", "position", "choice", "reward", "condition"])


def summarize_behaviour(frame: pd.DataFrame) -> dict[str, Any]:
    """Per agent: means of each index, and Pearson r (p) of every numeric trait with every
    index and fitted parameter across participants."""
    out: dict[str, Any] = {}
    indices = [c for c in frame.columns if c not in ("agent", "participant", "n_trials", "index", "person")
               and not c.startswith(("trait:", "true:")) and c != "fit:nll"
               and pd.api.types.is_numeric_dtype(frame[c])]
    traits = [c for c in frame.columns if c.startswith("trait:") and pd.api.types.is_numeric_dtype(frame[c])]
    for agent, g in frame.groupby("agent", sort=False):
        entry: dict[str, Any] = {"participants": len(g),
                                 "means": {i: float(g[i].mean()) for i in indices if g[i].notna().any()},
                                 "trait_correlations": {}}
        for t in traits:
            for i in indices:
                x, y = g[t].to_numpy(float), g[i].to_numpy(float)
                ok = ~np.isnan(x) & ~np.isnan(y)
                if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                    res = stats.pearsonr(x[ok], y[ok])
                    entry["trait_correlations"][f"{t.removeprefix('trait:')} ~ {i}"] = {
                        "r": float(res.statistic), "p": float(res.pvalue)}
        out[str(agent)] = entry
    return out
