"""Study planning: how many participants and experiments a question needs, from a pilot.

From a pilot run's tables the planner estimates, per experiment, the variance components of
the contrast a test uses, then predicts the power of the same test at another design:

- the individual component (S - M, the swap-cycle test of `decompose_personas`): per
  participant, var = sigma2_participant + sigma2_response / m, where sigma2_response is the
  per-response variance of S - M within participants (noise that more responses average
  away) and sigma2_participant what is left of the estimator's own variance (individual
  differences in the benefit); persona effects cancel within swap cycles and are reported,
  not planned with. Across experiments, the equal-weight pooled test (t on K - 1 df) has
  variance (tau2 + mean SE_e^2) / K, with tau2 the between-experiment heterogeneity
  (Paule-Mandel, truncated at 0; its 80% Q-profile interval is carried as its uncertainty).
  Effects and tau2 are on the scale of the effect asked for: per cent of each experiment's
  no-persona NLL (`1%`, the verdict's row) or nats per response.
- equivalence (|individual| < SESOI on the verdict's row): by simulation of the analysis's
  own rule (`equivalence_rule`): the K estimates drawn with tau2, their SEs estimated on the
  swap cycles' degrees of freedom, tau2 re-estimated, TOST on the pooled mean and, with three
  or more experiments, the prediction interval inside +-SESOI. Treating the prediction
  interval as fixed and ignoring that tau2 and the SE are estimated predicted 0.81 and 1.00
  where 0.46 and 0.50 were achieved.
- misalignment between a pair (the per-participant paired d): var(d_e) = (2 (1 - r) +
  d^2 (1 + r^2) / 4) / n per experiment (Algina & Keselman), pooled the same way.

Participants are counted as recruited: only those whose persona uses a field and who get a
swap partner enter the individual component, so the planner divides by the share of the
pilot's participants who did (or a share you give). Validated against simulation in
`bench/calibration.py` (planner rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import cycle, islice
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy import stats

from .._errors import OptionError
from ._inference import DEFAULT_SESOI, Sesoi, equivalence_rule, paule_mandel
from ._personas import (SESSION, PersonaDecomposition, Weight, decompose_personas, persona_table, resolve_columns,
                        unit_column)

ALPHA = 0.05
Scale = Literal["%", "nats"]


class ExperimentVariance(BaseModel):
    """Variance components of one pilot experiment's individual-component contrast."""

    model_config = ConfigDict(frozen=True)
    experiment: str
    n: int  # participants who entered the estimate (with metadata, paired)
    recruited: int = 0  # the experiment's participants in the pilot (0: not known, taken as n)
    responses: float  # mean responses per participant in the pilot
    none_nll: float
    sigma2_response: float  # per-response variance of S - M within participants
    sigma2_participant: float  # per-participant variance left after averaging responses
    sigma2_persona: float  # persona effects (cancel within swap cycles; for information)
    estimate: float  # the pilot's individual component (nats per response)

    def se(self, n: float, m: float | None = None) -> float:
        """The SE (nats) of this experiment's individual component with n usable participants
        and m responses each."""
        m = self.responses if m is None else m
        # sigma2_participant may be negative (an unbiased estimate near 0); the total may not.
        total = max(self.sigma2_participant + self.sigma2_response / m, 0.05 * self.sigma2_response / m)
        return math.sqrt(total / n)

    def unit(self, scale: Scale) -> float:
        """One unit of `scale` in nats: 1% of the no-persona NLL, or a nat."""
        return self.none_nll / 100 if scale == "%" else 1.0


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


def parse_effect(effect: float | str) -> tuple[float, Scale]:
    """`1%` (of each experiment's no-persona NLL) or a number of nats per response."""
    if isinstance(effect, str) and effect.strip().endswith("%"):
        return float(effect.strip()[:-1]), "%"
    try:
        return float(effect), "nats"
    except ValueError:
        raise OptionError("effect", effect, "expected nats per response (0.02) or a per cent (1%)") from None


class PersonaPlan(BaseModel):
    """What a pilot says about the individual component, and power at other designs.
    `n` everywhere is participants recruited per experiment; `usable_share` of them enter the
    estimate (metadata and a swap partner)."""

    model_config = ConfigDict(frozen=True)
    model: str
    matched: str
    control: str
    experiments: list[ExperimentVariance]
    sesoi: Sesoi
    usable_share: float = 1.0
    # Between-experiment variance of the individual component, per scale (truncated at 0),
    # and its 80% Q-profile interval.
    tau2: dict[str, float] = {"%": 0.0, "nats": 0.0}
    tau2_range: dict[str, tuple[float, float]] = {}

    @property
    def none_nll(self) -> float:
        return float(np.mean([e.none_nll for e in self.experiments]))

    def nats(self, effect: float | str) -> float:
        """An effect in nats per response: a number, or `X%` of the mean no-persona NLL."""
        value, scale = parse_effect(effect)
        return value / 100 * self.none_nll if scale == "%" else value

    def usable(self, n: float) -> float:
        return n * self.usable_share

    def _ses(self, scale: Scale, n: float, k: int, m: float | None = None) -> np.ndarray:
        """The SEs (in units of `scale`) of k experiments like the pilot's (its experiments in
        turn) with n participants recruited each."""
        ex = list(islice(cycle(self.experiments), k))
        return np.array([e.se(self.usable(n), m) / e.unit(scale) for e in ex])

    def pooled_se(self, n: float, k: int | None = None, m: float | None = None, *, scale: Scale = "nats",
                  tau2: float | None = None) -> float:
        """SE of the equal-weight pooled estimate over k experiments like the pilot's."""
        k = k or len(self.experiments)
        tau2 = self.tau2[scale] if tau2 is None else tau2
        mean_var = float(np.mean(self._ses(scale, n, len(self.experiments), m) ** 2))
        return math.sqrt((tau2 + mean_var) / k)

    def power(self, effect: float | str, n: float, k: int | None = None, m: float | None = None,
              tau2: float | None = None) -> float:
        """Power of the pooled individual-component test (t on k - 1 df) for `effect` (`1%`:
        the relative row, the verdict's; a number: nats, the raw row) with n recruited."""
        value, scale = parse_effect(effect)
        k = k or len(self.experiments)
        if k < 2:
            e = self.experiments[0]
            return _power_t(value, e.se(self.usable(n), m) / e.unit(scale), self.usable(n) / 2 - 1)
        return _power_t(value, self.pooled_se(n, k, m, scale=scale, tau2=tau2), k - 1)

    def power_per_experiment(self, effect: float | str, n: float, m: float | None = None) -> float:
        """Mean power of one experiment's own test (t on about n/2 - 1 df: swap cycles)."""
        value, scale = parse_effect(effect)
        return float(np.mean([_power_t(value, e.se(self.usable(n), m) / e.unit(scale),
                                       max(1.0, self.usable(n) / 2 - 1)) for e in self.experiments]))

    def equivalence_power(self, n: float, k: int | None = None, m: float | None = None, *, tau2: float | None = None,
                          draws: int = 4000, seed: int = 0) -> float:
        """Power to show |individual| < SESOI on the verdict's row when the truth is 0, by
        simulating the analysis's rule (see the module doc). The same draws serve every n
        (common random numbers), so power grows smoothly with n."""
        k = k or len(self.experiments)
        if self.sesoi.unit == "nats/token":
            return math.nan
        scale: Scale = "%" if self.sesoi.unit == "%" else "nats"
        tau2 = self.tau2[scale] if tau2 is None else tau2
        se = self._ses(scale, n, k, m)
        df_e = max(1.0, self.usable(n) / 2 - 1)  # swap cycles - 1
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((draws, k))
        chi = rng.chisquare(df_e, (draws, k)) / df_e
        v = z * np.sqrt(tau2 + se**2)
        mean = v.mean(axis=1)
        if k == 1:
            p, inside = equivalence_rule(mean, se[0] * np.sqrt(chi[:, 0]), df_e, 1, 0.0, self.sesoi.value)
        else:
            pooled_se = v.std(axis=1, ddof=1) / math.sqrt(k)
            tau2_hat = paule_mandel(v, se**2 * chi)
            p, inside = equivalence_rule(mean, pooled_se, k - 1, k, tau2_hat, self.sesoi.value)
        return float(np.mean((p < ALPHA) & inside))

    def participants_for(self, effect: float | str, power: float = 0.8, k: int | None = None,
                         limit: int = 100_000, tau2: float | None = None) -> int | None:
        """Smallest participants recruited per experiment for `power` (None: not reachable,
        because between-experiment heterogeneity alone keeps the power below it)."""
        return _smallest(lambda n: self.power(effect, n, k, tau2=tau2), power, 8, limit)

    def experiments_for(self, effect: float | str, n: float, power: float = 0.8, limit: int = 1000) -> int | None:
        return _smallest(lambda k: self.power(effect, n, k), power, 2, limit)

    def participants_for_equivalence(self, power: float = 0.8, k: int | None = None, limit: int = 100_000,
                                     tau2: float | None = None) -> int | None:
        return _smallest(lambda n: self.equivalence_power(n, k, tau2=tau2), power, 8, limit)

    def power_range(self, effect: float | str, n: float, k: int | None = None, *, level: float = 0.8,
                    draws: int = 300, seed: int = 0) -> tuple[float, float]:
        """A `level` interval for the predicted power, from the pilot's own sampling error: a
        parametric bootstrap that redraws each experiment's SE^2 (chi-square on its swap
        cycles' df) and estimate (normal, with tau2 between experiments), re-estimates the
        components as from a pilot and recomputes the power."""
        _, scale = parse_effect(effect)
        rng = np.random.default_rng(seed)
        ex = self.experiments
        ses2 = np.array([e.se(e.n) ** 2 for e in ex])
        df = np.array([max(1.0, e.n / 2 - 1) for e in ex])
        units = np.array([e.unit(scale) for e in ex])
        center = float(np.mean([e.estimate / u for e, u in zip(ex, units)]))
        powers = []
        for _ in range(draws):
            s2 = ses2 * rng.chisquare(df) / df
            est = center + rng.normal(0, np.sqrt(self.tau2[scale] + ses2 / units**2))
            tau2 = float(paule_mandel(est, s2 / units**2)[0]) if len(ex) >= 2 else self.tau2[scale]
            c = s2 / ses2
            redrawn = [e.model_copy(update={"sigma2_participant": e.sigma2_participant * f,
                                            "sigma2_response": e.sigma2_response * f}) for e, f in zip(ex, c)]
            powers.append(self.model_copy(update={"experiments": redrawn}).power(effect, n, k, tau2=tau2))
        tail = (1 - level) / 2 * 100
        return float(np.nanpercentile(powers, tail)), float(np.nanpercentile(powers, 100 - tail))

    def components_frame(self) -> pd.DataFrame:
        return pd.DataFrame([e.model_dump() for e in self.experiments]).assign(
            tau2_relative=self.tau2["%"], tau2_nats=self.tau2["nats"], usable_share=self.usable_share)


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
                  weight: Weight = "participant", usable_share: float | None = None) -> PersonaPlan:
    """Variance components of the individual component from a pilot table (one model).
    `usable_share`: the share of recruited participants expected to enter the estimate
    (default: the pilot's own, participants with metadata who were paired)."""
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
        out.append(ExperimentVariance(experiment=row.experiment, n=row.n_participants,
                                      recruited=row.n_participants + row.n_without_metadata + row.n_unpaired,
                                      responses=m, none_nll=row.none_nll,
                                      sigma2_response=s2_resp if np.isfinite(s2_resp) else 0.0,
                                      sigma2_participant=s2_part, sigma2_persona=s2_persona / 2 if np.isfinite(
                                          s2_persona) else math.nan,
                                      estimate=row.individual_component.value))
    if not out:
        raise ValueError("the pilot has no experiment with an individual-component estimate ("
                         + "; ".join(f"{r.experiment}: {r.status}" for r in dec.rows) + ")")
    if usable_share is None:
        usable_share = sum(e.n for e in out) / sum(e.recruited for e in out)
    elif not 0 < usable_share <= 1:
        raise OptionError("usable_share", usable_share, "expected a share between 0 and 1")
    tau2, ranges = {}, {}
    for scale in ("%", "nats"):
        units = np.array([e.unit(scale) for e in out])
        est = np.array([e.estimate for e in out]) / units
        ses = np.array([e.se(e.n) for e in out]) / units
        tau2[scale] = float(paule_mandel(est, ses**2)[0]) if len(out) >= 2 else 0.0
        ranges[scale] = q_profile_tau2(est, ses)
    return PersonaPlan(model=dec.model, matched=matched, control=dec.control, experiments=out, sesoi=sesoi,
                       usable_share=usable_share, tau2=tau2, tau2_range=ranges)


def _within_variance(frame: pd.DataFrame, matched: str, control: str, by: str) -> dict[str, float]:
    """Per experiment: the pooled within-participant variance of per-response S - M."""
    unit = unit_column(by)
    rows = frame[frame["persona"].isin([matched, control]) & frame["nll"].notna()]
    sessions = list(dict.fromkeys([unit, *SESSION]))
    wide = rows.pivot_table(index=[*sessions, "response_index"], columns="persona", values="nll",
                            aggfunc="first").dropna()
    if wide.empty:
        return {}
    diff = (wide[control] - wide[matched]).rename("d").reset_index()
    g = diff.groupby(sessions)["d"]
    stats_ = pd.DataFrame({"ss": g.var(ddof=1) * (g.count() - 1), "df": g.count() - 1}).reset_index()
    per = stats_.groupby(unit)[["ss", "df"]].sum()
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
    from ._personas import paired_means, person_means

    frame = responses[responses["persona"] == persona]
    result = post_training_misalignment(frame, [ModelPair(base=base, post_trained=post_trained)], by=by,
                                        n_boot=0).pairs[0]
    means = paired_means(frame, "model", [base, post_trained], by=by)
    if by == "study-person":
        means = person_means(means, [base, post_trained])
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
    tau2 = float(paule_mandel(ds, np.asarray(ses) ** 2)[0]) if len(ds) >= 2 else 0.0
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
            n_now = int(round(np.mean([e.recruited or e.n for e in pp.experiments])))
            value, scale = parse_effect(self.effect)
            row = "relative row, the verdict's" if scale == "%" else "raw row, nats"
            t2, (t2_lo, t2_hi) = pp.tau2[scale], pp.tau2_range.get(scale, (math.nan, math.nan))
            unit = "%^2" if scale == "%" else "nats^2"
            lines += [f"Planning the individual component for {pp.model} ({pp.matched} vs {pp.control}) from a pilot "
                      f"of {k} experiment(s), about {n_now} participants each:",
                      f"  effect to detect: {self.effect} ({row}; {pp.nats(self.effect):.4f} nats per response at the "
                      f"mean no-persona NLL {pp.none_nll:.3f}); power {self.power:.0%}, two-sided 5%",
                      f"  participants are counted as recruited: {pp.usable_share:.0%} of the pilot's entered the "
                      "estimate (metadata and a swap partner); give another share with --usable-share",
                      f"  heterogeneity between experiments: tau^2 = {t2:.3g} {unit}"
                      + (f" (80% interval {t2_lo:.3g} to {t2_hi:.3g})" if np.isfinite(t2_lo) else
                         " (one experiment: assumed 0; more experiments would tell)")]
            for e in pp.experiments:
                lines.append(f"    {e.experiment}: per response {e.sigma2_response:.4g}, per participant "
                             f"{e.sigma2_participant:.4g} (nats^2), {e.responses:.0f} responses, pilot estimate "
                             f"{e.estimate:+.4f} nats ({e.n} of {e.recruited or e.n} participants entered)")
            lo, hi = pp.power_range(self.effect, n_now, k)
            lines.append(f"  power now ({k} experiments x {n_now}): {pp.power(self.effect, n_now, k):.2f}"
                         + (f" (80% interval from the pilot's sampling error: {lo:.2f} to {hi:.2f})" if np.isfinite(lo) else ""))

            def need_text(need: int | None, what: str) -> str:
                return f"{need} participants per experiment" if need else f"not reachable at any number ({what})"

            for kk in sorted({k, 3, 5, 10}):
                if kk < 2:
                    continue
                need = pp.participants_for(self.effect, self.power, kk)
                text = need_text(need, f"heterogeneity, tau^2 = {t2:.3g}")
                if np.isfinite(t2_lo) and t2_lo < t2:
                    text += f"; {need_text(pp.participants_for(self.effect, self.power, kk, tau2=t2_lo), 'even then')}"\
                            f" at tau^2's lower bound {t2_lo:.3g}"
                lines.append(f"  with {kk} experiments: {text}")
            need_k = pp.experiments_for(self.effect, n_now, self.power)
            lines.append(f"  with {n_now} participants per experiment: "
                         + (f"{need_k} experiments" if need_k else "more than 1000 experiments"))
            kk = max(k, 3)
            if pp.sesoi.unit == "nats/token":
                lines.append("  equivalence: planned only for a SESOI in % or nats per response")
            else:
                eq = pp.participants_for_equivalence(self.power, kk)
                scale_eq = "%" if pp.sesoi.unit == "%" else "nats"
                text = need_text(eq, "between-experiment heterogeneity alone is wider than the SESOI, tau^2 = "
                                     f"{pp.tau2[scale_eq]:.3g}")
                lo_eq = pp.tau2_range.get(scale_eq, (math.nan, math.nan))[0]
                if np.isfinite(lo_eq) and lo_eq < pp.tau2[scale_eq]:
                    other = pp.participants_for_equivalence(self.power, kk, tau2=lo_eq)
                    text += f"; {need_text(other, 'even then')} at tau^2's lower bound {lo_eq:.3g}"
                lines.append(f"  equivalence within {pp.sesoi} (TOST and prediction interval, {kk} experiments, "
                             f"simulated): {text}")
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


def design_plan(responses: pd.DataFrame, *, model: str | None = None, matched: str = "interview",
         control: str | None = None, effect: str = "1%", d: float = 0.2, power: float = 0.8,
         sesoi: Sesoi | str | float = DEFAULT_SESOI, pairs: Sequence[tuple[str, str]] = (),
         by: str = "study", usable_share: float | None = None) -> Plan:
    """Answer design questions from a pilot table: the persona individual component (when
    the table has none, the matched persona and its control) and misalignment per pair."""
    if not 0 < power < 1:
        raise OptionError("power", power, "expected a number between 0 and 1")
    parse_effect(effect)
    notes = []
    personas = None
    have = set(responses["persona"].unique())
    if {"none", matched} <= have:
        try:
            personas = plan_personas(responses, model=model, matched=matched, control=control, by=by, sesoi=sesoi,
                                     usable_share=usable_share)
        except ValueError as e:
            notes.append(f"persona planning: {e}")
    pair_plans = [plan_pair(responses, b, p, by=by) for b, p in pairs]
    if personas is None and not pair_plans:
        raise ValueError("nothing to plan: " + ("; ".join(notes) or "the pilot needs none, the matched persona and "
                         "its control (persona planning) or --pair BASE,POST (misalignment)"))
    return Plan(personas=personas, pairs=pair_plans, effect=effect, d=d, power=power, notes=notes)
