"""Study planning: how many participants and experiments a question needs, from a pilot.

From a pilot run's tables the planner estimates, per experiment, the variance components of
the contrast a test uses, then predicts the power of the same test at another design:

- the individual component (S - M, the swap-cycle test of `decompose_personas`): per
  participant, var = sigma2_participant + sigma2_response / m, where sigma2_response is the
  per-response variance of S - M within participants (noise that more responses average
  away) and sigma2_participant what is left of the estimator's own variance (individual
  differences in the benefit); persona effects cancel within swap cycles and are reported,
  not planned with. Across experiments, the equal-weight pooled test (t on K - 1 df) has
  variance (tau2 + mean SE_e^2) / K, with tau2 the between-experiment heterogeneity.
- misalignment between a pair (the per-participant paired d): var(d_e) = (2 (1 - r) +
  d^2 (1 + r^2) / 4) / n per experiment (Algina & Keselman), pooled the same way.

Power is the noncentral-t power of the two-sided 5% test; equivalence power that of the
TOST at the SESOI plus, for a claim about experiments beyond these, the prediction interval
inside +-SESOI (needs tau below the margin). Validated against simulation in
`bench/calibration.py` (planner rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from ._inference import DEFAULT_SESOI, Sesoi
from ._personas import PersonaDecomposition, Weight, decompose_personas, persona_table, resolve_columns

ALPHA = 0.05


class ExperimentVariance(BaseModel):
    """Variance components of one pilot experiment's individual-component contrast."""

    model_config = ConfigDict(frozen=True)
    experiment: str
    n: int
    responses: float  # mean responses per participant in the pilot
    none_nll: float
    sigma2_response: float  # per-response variance of S - M within participants
    sigma2_participant: float  # per-participant variance left after averaging responses
    sigma2_persona: float  # persona effects (cancel within swap cycles; for information)
    estimate: float  # the pilot's individual component (nats per response)

    def se(self, n: int, m: float | None = None) -> float:
        """The SE of this experiment's individual component with n participants, m responses."""
        m = self.responses if m is None else m
        # sigma2_participant may be negative (an unbiased estimate near 0); the total may not.
        total = max(self.sigma2_participant + self.sigma2_response / m, 0.05 * self.sigma2_response / m)
        return math.sqrt(total / n)


def _power_t(effect: float, se: float, df: float) -> float:
    """Power of the two-sided 5% t test of 0 when the true effect is `effect`."""
    if not (se > 0 and df >= 1):
        return math.nan
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    ncp = effect / se
    power = float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    if not np.isfinite(power):  # scipy's noncentral t gives up far in the tail: certain rejection
        power = 1.0 if abs(ncp) > crit else float(stats.norm.sf(crit - abs(ncp)))
    return min(1.0, power)


def _power_tost(margin: float, se: float, df: float, effect: float = 0.0) -> float:
    """Power of two one-sided 5% t tests against +-margin (true effect `effect`)."""
    if not (se > 0 and df >= 1) or margin <= 0:
        return math.nan
    crit = stats.t.ppf(1 - ALPHA, df)
    lo = (effect + margin) / se  # the test against -margin
    hi = (effect - margin) / se  # the test against +margin
    # P(T_lo > crit and T_hi < -crit), with the same estimate in both (bivariate, exact via
    # the estimate's normal law and the SE's chi distribution, approximated by the normal).
    return float(max(0.0, stats.norm.cdf(-crit - hi) - stats.norm.cdf(crit - lo)))


class PersonaPlan(BaseModel):
    """What a pilot says about the individual component, and power at other designs."""

    model_config = ConfigDict(frozen=True)
    model: str
    matched: str
    control: str
    experiments: list[ExperimentVariance]
    tau2: float  # between-experiment variance of the individual component (nats^2)
    sesoi: Sesoi
    tau2_range: tuple[float, float] = (math.nan, math.nan)  # 80% Q-profile interval of tau2

    def power_range(self, effect: float | str, n: int, k: int | None = None, *, level: float = 0.8,
                    draws: int = 300, seed: int = 0) -> tuple[float, float]:
        """A `level` interval for the predicted power, from the pilot's own sampling error: a
        parametric bootstrap that redraws each experiment's SE^2 (chi-square on its swap
        cycles' df) and estimate (normal, with tau2 between experiments), re-estimates the
        components as from a pilot and recomputes the power."""
        rng = np.random.default_rng(seed)
        ex = self.experiments
        k_pilot = len(ex)
        ses2 = np.array([e.se(e.n) ** 2 for e in ex])
        df = np.array([max(1.0, e.n / 2 - 1) for e in ex])
        center = float(np.mean([e.estimate for e in ex]))
        powers = []
        for _ in range(draws):
            s2 = ses2 * rng.chisquare(df) / df
            est = center + rng.normal(0, np.sqrt(max(self.tau2, 0.0) + ses2))
            tau2 = moment_tau2(est, np.sqrt(s2)) if k_pilot >= 2 else self.tau2
            scale = s2 / ses2
            redrawn = [e.model_copy(update={"sigma2_participant": e.sigma2_participant * c,
                                            "sigma2_response": e.sigma2_response * c}) for e, c in zip(ex, scale)]
            powers.append(self.model_copy(update={"experiments": redrawn, "tau2": tau2}).power(effect, n, k))
        tail = (1 - level) / 2 * 100
        return float(np.nanpercentile(powers, tail)), float(np.nanpercentile(powers, 100 - tail))

    @property
    def none_nll(self) -> float:
        return float(np.mean([e.none_nll for e in self.experiments]))

    def nats(self, effect: float | str) -> float:
        """An effect in nats per response: a number, or `X%` of the mean no-persona NLL."""
        if isinstance(effect, str) and effect.strip().endswith("%"):
            return float(effect.strip()[:-1]) / 100 * self.none_nll
        return float(effect)

    def pooled_se(self, n: int, k: int | None = None, m: float | None = None) -> float:
        """SE of the equal-weight pooled estimate over k experiments like the pilot's."""
        k = k or len(self.experiments)
        mean_var = float(np.mean([e.se(n, m) ** 2 for e in self.experiments]))
        # tau2 is the untruncated moment estimate (unbiased near 0); the sum may not go below
        # the within-experiment part.
        return math.sqrt(max(self.tau2 + mean_var, 0.25 * mean_var) / k)

    def power(self, effect: float | str, n: int, k: int | None = None, m: float | None = None) -> float:
        """Power of the pooled individual-component test (t on k - 1 df)."""
        k = k or len(self.experiments)
        if k < 2:
            e = self.experiments[0]
            return _power_t(self.nats(effect), e.se(n, m), n / 2 - 1)
        return _power_t(self.nats(effect), self.pooled_se(n, k, m), k - 1)

    def power_per_experiment(self, effect: float | str, n: int, m: float | None = None) -> float:
        """Mean power of one experiment's own test (t on about n/2 - 1 df: swap cycles)."""
        return float(np.mean([_power_t(self.nats(effect), e.se(n, m), max(1.0, n / 2 - 1))
                              for e in self.experiments]))

    def equivalence_power(self, n: int, k: int | None = None, m: float | None = None) -> float:
        """Power to show |individual| < SESOI on the pooled row when the truth is 0, with the
        prediction interval inside +-SESOI where k >= 3."""
        k = k or len(self.experiments)
        margin = self.sesoi.margin(self.none_nll, math.nan) if self.sesoi.unit != "nats/token" else math.nan
        if not np.isfinite(margin):
            return math.nan
        se = self.pooled_se(n, k, m)
        power = _power_tost(margin, se, max(1, k - 1))
        if k >= 3:
            half = stats.t.ppf(0.975, k - 2) * math.sqrt(max(self.tau2, 0.0) + se**2)
            if half >= margin:
                return 0.0
        return power

    def participants_for(self, effect: float | str, power: float = 0.8, k: int | None = None,
                         limit: int = 100_000) -> int | None:
        """Smallest participants per experiment for `power` (None: not reachable, because
        between-experiment heterogeneity alone keeps the power below it)."""
        return _smallest(lambda n: self.power(effect, n, k), power, 8, limit)

    def experiments_for(self, effect: float | str, n: int, power: float = 0.8, limit: int = 1000) -> int | None:
        return _smallest(lambda k: self.power(effect, n, k), power, 2, limit)

    def participants_for_equivalence(self, power: float = 0.8, k: int | None = None,
                                     limit: int = 100_000) -> int | None:
        return _smallest(lambda n: self.equivalence_power(n, k), power, 8, limit)

    def components_frame(self) -> pd.DataFrame:
        return pd.DataFrame([e.model_dump() for e in self.experiments]).assign(tau2=self.tau2)


def moment_tau2(values: Sequence[float], ses: Sequence[float | None]) -> float:
    """Between-experiment variance by the method of moments (DerSimonian-Laird), not
    truncated at 0: unbiased near 0, where the truncated estimate would overstate it (and
    understate power). 0 with fewer than two experiments."""
    v = np.asarray(values, dtype=float)
    se = np.asarray([math.nan if x is None else x for x in ses], dtype=float)
    ok = np.isfinite(v) & np.isfinite(se) & (se > 0)
    v, se = v[ok], se[ok]
    if len(v) < 2:
        return 0.0
    w = 1 / se**2
    mean = float(np.sum(w * v) / np.sum(w))
    q = float(np.sum(w * (v - mean) ** 2))
    return (q - (len(v) - 1)) / float(np.sum(w) - np.sum(w**2) / np.sum(w))


def q_profile_tau2(values: Sequence[float], ses: Sequence[float | None], level: float = 0.8
                   ) -> tuple[float, float]:
    """The Q-profile interval of tau2 (Viechtbauer, 2007): the tau2 at which the generalised
    Q statistic equals the chi-square quantiles on K - 1 df; truncated at 0."""
    from scipy.optimize import brentq

    v = np.asarray(values, dtype=float)
    se = np.asarray([math.nan if x is None else x for x in ses], dtype=float)
    ok = np.isfinite(v) & np.isfinite(se) & (se > 0)
    v, s2 = v[ok], se[ok] ** 2
    k = len(v)
    if k < 2:
        return math.nan, math.nan

    def q(t2: float) -> float:
        w = 1 / (s2 + t2)
        mu = np.sum(w * v) / np.sum(w)
        return float(np.sum(w * (v - mu) ** 2))

    def solve(target: float) -> float:
        if q(0.0) <= target:
            return 0.0
        hi = max(float(np.var(v)) * 10, 1e-12)
        while q(hi) > target:
            hi *= 10
        return float(brentq(lambda t: q(t) - target, 0.0, hi))

    tail = (1 - level) / 2
    return solve(stats.chi2.ppf(1 - tail, k - 1)), solve(stats.chi2.ppf(tail, k - 1))


def _smallest(power_at, target: float, start: int, limit: int) -> int | None:
    """The smallest x >= start with power_at(x) >= target (power grows with x), or None."""
    if not power_at(limit) >= target:
        return None
    lo, hi = start, limit
    if power_at(lo) >= target:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def plan_personas(responses: pd.DataFrame, *, model: str | None = None, matched: str = "interview",
                  control: str | None = None, by: str = "study", sesoi: Sesoi | str | float = DEFAULT_SESOI,
                  weight: Weight = "participant") -> PersonaPlan:
    """Variance components of the individual component from a pilot table (one model)."""
    sesoi = Sesoi.parse(sesoi)
    dec: PersonaDecomposition = decompose_personas(responses, model=model, matched=matched, control=control,
                                                   by=by, sesoi=sesoi, weight=weight)
    frame = responses if model is None else responses[responses["model"] == dec.model]
    cols, _ = resolve_columns(frame, matched, control, "none", None, None)
    table = persona_table(frame, none="none", matched=matched, control=cols.control, by=by)
    within = _within_variance(frame, cols.matched, cols.control, by)
    out = []
    for row in dec.rows:
        if row.status != "ok":
            continue
        g = table[(table["unit"] == row.experiment) & table["has_metadata"]]
        m = float(g["n_responses"].mean())
        s2_resp = float(within.get(row.experiment, math.nan))
        s2_est = (row.individual_component.se or math.nan) ** 2 * row.n_participants
        # Not truncated at 0: an unbiased split, so that se() at the pilot's own design
        # reproduces the pilot's SE exactly.
        s2_part = s2_est - s2_resp / m if np.isfinite(s2_resp) else s2_est
        d = (g[cols.control] - g[cols.matched]).to_numpy(dtype=float)
        s2_persona = max(0.0, float(np.var(d, ddof=1)) - s2_est) if len(d) > 1 else math.nan
        out.append(ExperimentVariance(experiment=row.experiment, n=row.n_participants, responses=m,
                                      none_nll=row.none_nll, sigma2_response=s2_resp if np.isfinite(s2_resp) else 0.0,
                                      sigma2_participant=s2_part, sigma2_persona=s2_persona / 2 if np.isfinite(
                                          s2_persona) else math.nan,
                                      estimate=row.individual_component.value))
    if not out:
        raise ValueError("the pilot has no experiment with an individual-component estimate (see compare-personas)")
    ses = [r.individual_component.se for r in dec.rows if r.status == "ok"]
    tau2 = moment_tau2([e.estimate for e in out], ses)
    return PersonaPlan(model=dec.model, matched=matched, control=dec.control, experiments=out, tau2=tau2,
                       sesoi=sesoi, tau2_range=q_profile_tau2([e.estimate for e in out], ses))


def _within_variance(frame: pd.DataFrame, matched: str, control: str, by: str) -> dict[str, float]:
    """Per experiment: the pooled within-participant variance of per-response S - M."""
    rows = frame[frame["persona"].isin([matched, control]) & frame["nll"].notna()]
    wide = rows.pivot_table(index=[by, "participant", "response_index"], columns="persona", values="nll",
                            aggfunc="first").dropna()
    if wide.empty:
        return {}
    diff = (wide[control] - wide[matched]).rename("d").reset_index()
    g = diff.groupby([by, "participant"])["d"]
    stats_ = pd.DataFrame({"ss": g.var(ddof=1) * (g.count() - 1), "df": g.count() - 1}).reset_index()
    per = stats_.groupby(by)[["ss", "df"]].sum()
    return {str(k): float(r["ss"] / r["df"]) if r["df"] > 0 else math.nan for k, r in per.iterrows()}


class PairPlan(BaseModel):
    """What a pilot says about misalignment between a base and a post-trained model."""

    model_config = ConfigDict(frozen=True)
    base: str
    post_trained: str
    d: list[float]  # per experiment (surrogate's paired d)
    r: list[float]  # correlation of participant means between the two models
    n: list[int]
    tau2: float

    def se(self, effect: float, n: int, k: int | None = None) -> float:
        k = k or len(self.d)
        per = float(np.mean([(2 * (1 - r) + effect**2 * (1 + r * r) / 4) / n for r in self.r]))
        return math.sqrt(max(self.tau2 + per, 0.25 * per) / k)

    def power(self, effect: float, n: int, k: int | None = None) -> float:
        k = k or len(self.d)
        if k < 2:
            return _power_t(effect, self.se(effect, n, 1), n - 1)
        return _power_t(effect, self.se(effect, n, k), k - 1)

    def participants_for(self, effect: float, power: float = 0.8, k: int | None = None) -> int | None:
        return _smallest(lambda n: self.power(effect, n, k), power, 3, 100_000)

    def experiments_for(self, effect: float, n: int, power: float = 0.8) -> int | None:
        return _smallest(lambda k: self.power(effect, n, k), power, 2, 1000)


def plan_pair(responses: pd.DataFrame, base: str, post_trained: str, *, by: str = "study",
              persona: str = "none") -> PairPlan:
    """Per-experiment paired d and the correlation of participant means, from a pilot."""
    from ._misalignment import ModelPair, post_training_misalignment
    from ._personas import paired_means

    frame = responses[responses["persona"] == persona]
    result = post_training_misalignment(frame, [ModelPair(base=base, post_trained=post_trained)], by=by,
                                        n_boot=0).pairs[0]
    means = paired_means(frame, "model", [base, post_trained], by=by)
    ds, rs, ns, ses = [], [], [], []
    for unit, g in means.groupby("unit", sort=True):
        est = result.per_experiment.get(str(unit))
        if est is None or not np.isfinite(est.value) or len(g) < 3:
            continue
        ds.append(est.value)
        rs.append(float(np.corrcoef(g[base], g[post_trained])[0, 1]))
        ns.append(len(g))
        ses.append(est.se or math.nan)
    if not ds:
        raise ValueError(f"no experiment with at least 3 participants scored by both {base} and {post_trained}")
    tau2 = moment_tau2(ds, ses)
    return PairPlan(base=base, post_trained=post_trained, d=ds, r=rs, n=ns, tau2=tau2)


class Plan(BaseModel):
    """`surrogate plan`'s answers."""

    model_config = ConfigDict(frozen=True)
    personas: PersonaPlan | None = None
    pairs: list[PairPlan] = []
    effect: str
    d: float
    power: float
    notes: list[str] = []

    def table(self) -> pd.DataFrame:
        """Power over a grid of designs (participants per experiment x experiments)."""
        rows = []
        for k in (3, 5, 10, 20):
            for n in (20, 40, 80, 160, 320):
                rec = {"experiments": k, "participants": n}
                if self.personas is not None:
                    rec["power_individual"] = self.personas.power(self.effect, n, k)
                    rec["power_equivalence"] = self.personas.equivalence_power(n, k)
                for p in self.pairs:
                    rec[f"power_misalignment[{p.post_trained} vs {p.base}]"] = p.power(self.d, n, k)
                rows.append(rec)
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = []
        pp = self.personas
        if pp is not None:
            k = len(pp.experiments)
            n_now = int(np.mean([e.n for e in pp.experiments]))
            effect = pp.nats(self.effect)
            lines += [f"Planning the individual component for {pp.model} ({pp.matched} vs {pp.control}) from a pilot "
                      f"of {k} experiment(s), about {n_now} participants each:",
                      f"  effect to detect: {self.effect} = {effect:.4f} nats per response "
                      f"(mean no-persona NLL {pp.none_nll:.3f}); power {self.power:.0%}, two-sided 5%",
                      f"  heterogeneity between experiments: tau^2 = {pp.tau2:.3g}"
                      + (" (one experiment: assumed 0; more experiments would tell)" if k < 2 else "")]
            for e in pp.experiments:
                lines.append(f"    {e.experiment}: per response {e.sigma2_response:.4g}, per participant "
                             f"{e.sigma2_participant:.4g} (nats^2), {e.responses:.0f} responses, pilot estimate "
                             f"{e.estimate:+.4f}")
            lo, hi = pp.power_range(self.effect, n_now, k)
            lines.append(f"  power now ({k} experiments x {n_now}): {pp.power(self.effect, n_now, k):.2f}"
                         + (f" (80% interval from the pilot's sampling error: {lo:.2f} to {hi:.2f})" if np.isfinite(lo) else ""))
            for kk in sorted({k, 3, 5, 10}):
                if kk < 2:
                    continue
                need = pp.participants_for(self.effect, self.power, kk)
                lines.append(f"  with {kk} experiments: " + (f"{need} participants per experiment" if need else
                             "not reachable at any number of participants (heterogeneity)"))
            need_k = pp.experiments_for(self.effect, n_now, self.power)
            lines.append(f"  with {n_now} participants per experiment: "
                         + (f"{need_k} experiments" if need_k else "more than 1000 experiments"))
            eq = pp.participants_for_equivalence(self.power, max(k, 3))
            lines.append(f"  equivalence within {pp.sesoi} (TOST and prediction interval, {max(k, 3)} experiments): "
                         + (f"{eq} participants per experiment" if eq else
                            "not reachable: between-experiment heterogeneity alone is wider than the SESOI"))
        for p in self.pairs:
            k = len(p.d)
            n_now = int(np.mean(p.n))
            lines += [f"Planning misalignment {p.post_trained} vs {p.base} (per-participant d) from {k} experiment(s): "
                      f"pilot d {np.mean(p.d):+.3f}, tau^2 = {p.tau2:.3g}; detecting d = {self.d:g} with power "
                      f"{self.power:.0%}:"]
            for kk in sorted({k, 3, 5, 10}):
                if kk < 2:
                    continue
                need = p.participants_for(self.d, self.power, kk)
                lines.append(f"  with {kk} experiments: " + (f"{need} participants per experiment" if need else
                             "not reachable (heterogeneity)"))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def plan(responses: pd.DataFrame, *, model: str | None = None, matched: str = "interview",
         control: str | None = None, effect: str = "1%", d: float = 0.2, power: float = 0.8,
         sesoi: Sesoi | str | float = DEFAULT_SESOI, pairs: Sequence[tuple[str, str]] = (),
         by: str = "study") -> Plan:
    """Answer design questions from a pilot table: the persona individual component (when
    the table has none, the matched persona and its control) and misalignment per pair."""
    if not 0 < power < 1:
        raise ValueError(f"--power {power}: expected a number between 0 and 1")
    notes = []
    personas = None
    have = set(responses["persona"].unique())
    if {"none", matched} <= have:
        try:
            personas = plan_personas(responses, model=model, matched=matched, control=control, by=by, sesoi=sesoi)
        except ValueError as e:
            notes.append(f"persona planning: {e}")
    pair_plans = [plan_pair(responses, b, p, by=by) for b, p in pairs]
    if personas is None and not pair_plans:
        raise ValueError("nothing to plan: the pilot needs none, the matched persona and its control (persona "
                         "planning) or --pair BASE,POST (misalignment)")
    return Plan(personas=personas, pairs=pair_plans, effect=effect, d=d, power=power, notes=notes)
