"""Fitting a cognitive model to one session by maximum likelihood (scipy), for parameter
recovery: true vs fitted parameters of synthetic participants, and what model agents'
fitted parameters say about the personas they were given.

Parameters are fitted on their unbounded scale (log, logit), bounded to the population
mean +- 4 population SDs there, so that a session that does not pin a parameter down (a
participant who never switches) cannot send it to infinity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import optimize

from ._base import SessionRecord
from ._cognitive import ParamSpec


def _nll(record: SessionRecord, model_cls: Any, params: Mapping[str, float]) -> float:
    model = model_cls(**params)
    total = 0.0
    for trial, choice, fb in zip(record.trials, record.choices, record.feedback):
        k = trial.options.index(choice)
        p = model.probs(trial)[k]
        total -= float(np.log(max(p, 1e-12)))
        model.observe(trial, k, fb)
    return total


def fit_session(record: SessionRecord, model_cls: Any, specs: Mapping[str, ParamSpec] | None = None,
                starts: int = 3, seed: int = 0) -> dict[str, float]:
    """Bounded maximum-likelihood parameters of `model_cls` for one session (the best of a
    few starts: the population mean and random points), on the natural scale, plus the
    negative log-likelihood at the optimum (`nll`)."""
    specs = dict(specs or model_cls.PARAMS)
    names = list(specs)
    center = np.array([specs[n].to_unbounded(specs[n].mean) for n in names])
    width = np.array([4 * specs[n].sd for n in names])
    bounds = list(zip(center - width, center + width))

    def objective(u: np.ndarray) -> float:
        params = {n: specs[n].to_natural(float(x)) for n, x in zip(names, u)}
        return _nll(record, model_cls, params)

    rng = np.random.default_rng(seed)
    best = None
    for s in range(starts):
        x0 = center if s == 0 else center + rng.uniform(-0.5, 0.5, len(names)) * width
        res = optimize.minimize(objective, x0, method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    out = {n: specs[n].to_natural(float(x)) for n, x in zip(names, best.x)}
    out["nll"] = float(best.fun)
    return out
