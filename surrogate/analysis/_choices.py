"""Population- vs individual-level prediction of choices in closed-set experiments.

From `choices.parquet` (every option scored at every response):

- fit: accuracy (argmax = the human's choice), mean normalised probability of the human's
  choice, and pseudo-R² = 1 - NLL_model / NLL_uniform, per experiment, with participant
  bootstrap CIs;
- population level: does the model's mean choice distribution match the observed choice
  frequencies (per experiment, and per condition when the metadata has one)? Total
  variation distance, with a parametric-bootstrap p-value under "people choose as the
  model predicts", for experiments whose labels are shared across participants;
- individual level: do the model's per-participant predicted choice rates track the
  participants' actual rates? Pearson r across participants with its CI, per option by
  identity (shared labels only), plus per-participant NLL.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from ._personas import unit_column
from ._stats import CONFIDENCE, Estimate


def _bootstrap_over(n: int, statistic, *, n_resamples: int, seed: int) -> tuple[float, float]:
    """Percentile CI of statistic(indices) with participants resampled (scipy.stats.bootstrap)."""
    if n < 2 or n_resamples == 0:  # n_boot=0: no interval (fast, for simulations)
        return math.nan, math.nan
    idx = np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((idx,), lambda i: statistic(i.astype(int)), vectorized=False,
                              n_resamples=n_resamples, method="percentile", confidence_level=CONFIDENCE,
                              random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


class ChoiceFit(BaseModel):
    model_config = ConfigDict(frozen=True)
    experiment: str
    n_participants: int
    n_trials: int
    accuracy: Estimate
    p_chosen: Estimate
    pseudo_r2: Estimate


class PopulationMatch(BaseModel):
    model_config = ConfigDict(frozen=True)
    experiment: str
    condition: str | None
    options: list[str]
    observed: list[float]
    predicted: list[float]
    tvd: Estimate


class IndividualTracking(BaseModel):
    model_config = ConfigDict(frozen=True)
    experiment: str
    n_participants: int
    option: str
    correlation: Estimate  # Pearson r across participants (predicted vs actual rate of `option`)
    noise_ceiling: float  # the r a perfect predictor of each person's propensity would reach


class ChoicePrediction(BaseModel):
    """Results of `choice_prediction` for one model and persona."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    model: str
    persona: str
    fit: list[ChoiceFit]
    population: list[PopulationMatch]
    individual: list[IndividualTracking]
    participants: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        """Tables for CSV output: fit, population, individual, participants."""
        def flat(est: Estimate, name: str) -> dict:
            return {name: est.value, f"{name}_lo": est.lo, f"{name}_hi": est.hi}

        fit = pd.DataFrame([{"model": self.model, "persona": self.persona, "experiment": f.experiment,
                             "n_participants": f.n_participants, "n_trials": f.n_trials,
                             **flat(f.accuracy, "accuracy"), **flat(f.p_chosen, "p_chosen"),
                             **flat(f.pseudo_r2, "pseudo_r2")} for f in self.fit])
        pop = pd.DataFrame([{"model": self.model, "persona": self.persona, "experiment": p.experiment,
                             "condition": p.condition, "options": "|".join(p.options),
                             "observed": "|".join(f"{x:.4f}" for x in p.observed),
                             "predicted": "|".join(f"{x:.4f}" for x in p.predicted),
                             "tvd": p.tvd.value, "p_model": p.tvd.p} for p in self.population])
        ind = pd.DataFrame([{"model": self.model, "persona": self.persona, "experiment": i.experiment,
                             "option": i.option, "n_participants": i.n_participants, **flat(i.correlation, "r"),
                             "p": i.correlation.p, "noise_ceiling": i.noise_ceiling} for i in self.individual])
        return {"fit": fit, "population": pop, "individual": ind, "participants": self.participants}

    def summary(self) -> str:
        lines = [f"Choice prediction for {self.model} ({self.persona}):"]
        for f in self.fit:
            lines.append(f"  {f.experiment}: accuracy {f.accuracy}; pseudo-R2 {f.pseudo_r2}")
        for p in self.population:
            cond = f" [{p.condition}]" if p.condition else ""
            lines.append(f"  population {p.experiment}{cond}: observed {np.round(p.observed, 3).tolist()} "
                         f"vs predicted {np.round(p.predicted, 3).tolist()}; TVD {p.tvd.value:.4f}, "
                         f"p = {p.tvd.p:.3g} under the model")
        for i in self.individual:
            lines.append(f"  individual {i.experiment} [{i.option}]: r(predicted, actual choice rate) {i.correlation}; "
                         f"noise ceiling {i.noise_ceiling:.3f}")
        return "\n".join(lines)


def _participant_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per participant: trials, accuracy, NLL sums, and per-option predicted/actual rates."""
    rows = []
    for (unit, exp, pid), g in frame.groupby(["unit", "experiment", "participant"], sort=True):
        options = sorted({o for opts in g["options"] for o in opts})
        pred = {o: 0.0 for o in options}
        actual = {o: 0.0 for o in options}
        halves = ({o: 0.0 for o in options}, {o: 0.0 for o in options})  # odd / even trials
        for t, (opts, probs, chosen) in enumerate(zip(g["options"], g["probs"], g["chosen"])):
            for o, p in zip(opts, probs):
                pred[o] += p
            actual[chosen] += 1
            halves[t % 2][chosen] += 1
        n = len(g)
        n_half = ((n + 1) // 2, n // 2)
        rows.append({"unit": unit, "experiment": exp, "participant": pid, "n_trials": n,
                     "accuracy": g["correct"].mean(), "p_chosen": g["p_chosen"].mean(),
                     "nll_choice": g["nll_choice"].mean(), "nll_sum": g["nll_choice"].sum(),
                     "uniform_sum": g["nll_uniform"].sum(),
                     "condition": g["condition"].iloc[0] if "condition" in g else None,
                     "pred_rate": {o: pred[o] / n for o in options},
                     "actual_rate": {o: actual[o] / n for o in options},
                     "half_rates": tuple({o: h[o] / max(k, 1) for o in options} for h, k in zip(halves, n_half))})
    return pd.DataFrame(rows)


def _tracking(experiment: str, g: pd.DataFrame, shared: set) -> list[IndividualTracking]:
    """Pearson r across participants of predicted vs actual choice rate, one option at a
    time, by the option's identity (its label). Only where every participant has the same
    options: with labels randomised per participant there is no common option to compare
    (ordering by label made base rates alone correlate), and individual tracking is then
    measured as matched vs shuffled persona on the choice NLL (`analyze`)."""
    if not all(set(r) == shared for r in g["actual_rate"]):
        return []
    options = sorted(shared)
    # A binary set has one free rate: its two options give the same |r|; report the first.
    options = options[:1] if len(options) == 2 else options
    per_option: dict[str, Estimate] = {}
    ceilings: dict[str, float] = {}
    for o in options:
        a = np.array([r[o] for r in g["actual_rate"]])
        p = np.array([r[o] for r in g["pred_rate"]])
        if len(a) < 3 or np.ptp(a) == 0 or np.ptp(p) == 0:
            continue
        res = stats.pearsonr(p, a)
        ci = res.confidence_interval(CONFIDENCE)
        per_option[o] = Estimate(value=float(res.statistic), lo=float(ci.low), hi=float(ci.high),
                                 p=float(res.pvalue), n=len(a))
        ceilings[o] = noise_ceiling([h[0][o] for h in g["half_rates"]], [h[1][o] for h in g["half_rates"]])
    if not per_option:
        return []
    return [IndividualTracking(experiment=experiment, n_participants=len(g), option=o, correlation=est,
                               noise_ceiling=ceilings[o]) for o, est in per_option.items()]


def noise_ceiling(odd: list[float], even: list[float]) -> float:
    """The highest correlation any prediction can reach with participants' observed choice
    rates, given how noisy a rate from finitely many trials is: sqrt of the split-half
    (odd vs even trials) reliability, Spearman-Brown corrected to the full length."""
    a, b = np.asarray(odd, dtype=float), np.asarray(even, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    r = float(np.corrcoef(a, b)[0, 1])
    reliability = 2 * r / (1 + r) if r > -1 else 0.0
    return math.sqrt(reliability) if reliability > 0 else 0.0


def tvd_test(trials: pd.DataFrame, options: list[str], *, n_sim: int = 999, seed: int = 0
             ) -> tuple[float, float]:
    """TVD between observed and predicted choice frequencies, and its p-value under "people
    choose as the model predicts": choices are redrawn from the model's own probabilities
    at every trial (parametric bootstrap), so a perfect model gets p ~ U(0, 1)."""
    index = {o: k for k, o in enumerate(options)}
    probs = np.zeros((len(trials), len(options)))
    for t, (opts, pr) in enumerate(zip(trials["options"], trials["probs"])):
        for o, x in zip(opts, pr):
            probs[t, index[o]] = x
    probs /= probs.sum(1, keepdims=True)
    predicted = probs.mean(0)
    observed = np.bincount([index[c] for c in trials["chosen"]], minlength=len(options)) / len(trials)
    tvd = 0.5 * float(np.abs(observed - predicted).sum())
    rng = np.random.default_rng(seed)
    cum = probs.cumsum(1)
    exceed = 0
    for _ in range(n_sim):
        draw = (rng.random((len(trials), 1)) > cum).sum(1).clip(max=len(options) - 1)
        sim = np.bincount(draw, minlength=len(options)) / len(trials)
        exceed += 0.5 * np.abs(sim - predicted).sum() >= tvd - 1e-12
    return tvd, (1 + exceed) / (n_sim + 1)


def choice_prediction(
    choices: pd.DataFrame,
    *,
    model: str | None = None,
    persona: str = "none",
    by: str = "study",
    n_boot: int = 2000,
    seed: int = 0,
) -> ChoicePrediction:
    """Fit, population-level match and individual-level tracking of closed-set choices, per
    experiment unit (`by`); the participants are sessions (study, experiment, participant)."""
    by = unit_column(by)
    frame = choices[choices["persona"] == persona]
    if model is not None:
        frame = frame[frame["model"] == model]
    models = frame["model"].unique()
    if len(models) != 1:
        raise ValueError(f"choose one model; the choices table holds {list(models)} for persona {persona!r}")
    frame = frame.assign(unit=frame[by], options=frame["options"].map(list), probs=frame["probs"].map(list))
    parts = _participant_table(frame)
    fit, population, individual = [], [], []
    for unit, g in parts.groupby("unit", sort=True):
        g = g.reset_index(drop=True)
        n = len(g)
        acc, pc = g["accuracy"].to_numpy(), g["p_chosen"].to_numpy()
        nll, uni = g["nll_sum"].to_numpy(), g["uniform_sum"].to_numpy()

        def r2(i, nll=nll, uni=uni):
            return 1 - nll[i].sum() / uni[i].sum()

        fit.append(ChoiceFit(
            experiment=str(unit), n_participants=n, n_trials=int(g["n_trials"].sum()),
            accuracy=Estimate(value=float(acc.mean()), n=n,
                              **dict(zip(("lo", "hi"), _bootstrap_over(n, lambda i: acc[i].mean(), n_resamples=n_boot, seed=seed)))),
            p_chosen=Estimate(value=float(pc.mean()), n=n,
                              **dict(zip(("lo", "hi"), _bootstrap_over(n, lambda i: pc[i].mean(), n_resamples=n_boot, seed=seed)))),
            pseudo_r2=Estimate(value=float(r2(np.arange(n))), n=n,
                               **dict(zip(("lo", "hi"), _bootstrap_over(n, r2, n_resamples=n_boot, seed=seed))))))
        shared = {o for rates in g["actual_rate"] for o in rates}
        if all(set(r) == shared for r in g["actual_rate"]):  # labels shared across participants
            options = sorted(shared)
            conditions = [None] + sorted({c for c in g["condition"] if c is not None})
            for cond in conditions:
                sub = g if cond is None else g[g["condition"] == cond].reset_index(drop=True)
                if len(sub) == 0:
                    continue
                w = sub["n_trials"].to_numpy(dtype=float)
                actual = np.array([[r[o] for o in options] for r in sub["actual_rate"]])
                pred = np.array([[r[o] for o in options] for r in sub["pred_rate"]])

                trials = frame[frame["unit"] == unit]
                if cond is not None:
                    trials = trials[trials["condition"] == cond]
                value, p_model = tvd_test(trials, options, seed=seed)
                population.append(PopulationMatch(
                    experiment=str(unit), condition=cond, options=options,
                    observed=((actual * w[:, None]).sum(0) / w.sum()).tolist(),
                    predicted=((pred * w[:, None]).sum(0) / w.sum()).tolist(),
                    # no interval: a bootstrap CI of a distance never contains 0; the p-value
                    # tests "people choose as the model predicts"
                    tvd=Estimate(value=value, lo=math.nan, hi=math.nan, p=p_model, n=len(sub))))
        if n >= 3:
            individual += _tracking(str(unit), g, shared)
    table = parts.drop(columns=["pred_rate", "actual_rate", "half_rates"]).rename(columns={"unit": by})
    return ChoicePrediction(model=str(models[0]), persona=persona, fit=fit, population=population,
                            individual=individual, participants=table)


def paper_accuracy(responses: pd.DataFrame, *, by: str = "study") -> pd.DataFrame:
    """The paper's accuracy: on responses of a single token, how often that token is the
    model's most probable one over the whole vocabulary (`top1`), weighted by responses; per
    model x persona x experiment and `pooled` (all single-token responses). Empty when the
    table has no `top1` values (older runs, or backends that do not compute it)."""
    if "top1" not in responses:
        return pd.DataFrame()
    rows = responses[(responses["n_tokens"] == 1) & responses["top1"].notna()]
    if rows.empty:
        return pd.DataFrame()
    by = unit_column(by)
    keys = ["model", "persona"]
    per = rows.groupby([*keys, by])["top1"].agg(accuracy="mean", n_responses="size").reset_index()
    per = per.rename(columns={by: "experiment"})
    pooled = rows.groupby(keys)["top1"].agg(accuracy="mean", n_responses="size").reset_index()
    pooled["experiment"] = "pooled"
    return pd.concat([per, pooled], ignore_index=True)[[*keys, "experiment", "accuracy", "n_responses"]]
