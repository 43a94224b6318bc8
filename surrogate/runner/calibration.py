"""Simulated response tables with known truth, and replications of the estimators on them.

`simulate_table` writes the same per-response table `surrogate run` writes (study,
experiment, participant, response_index, model, persona, nll, persona_fields,
persona_donor), so the estimators are exercised exactly as the CLI calls them. The
generative model, per response r of participant i in experiment e under persona p:

    nll = a_i + b_ir + [p is a persona] * (pop + g_p) + [p is i's own] * delta_i + noise

a_i: participant baseline; b_ir: response difficulty (shared by all conditions);
g_p ~ N(0, persona_sd): the persona's own effect on whoever receives it; delta_i ~
N(delta_e, ind_sd): individual-level information, delta_e ~ N(ind, tau) per experiment;
pop: the population-level effect of any persona. Participants without metadata have an
empty persona (their persona rows equal `none`), and the derangement is drawn among
participants with metadata only, as `surrogate run` draws it.

Positive effects lower NLL, as in the decomposition (benefits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..analysis import decompose_personas
from ..personas import derangement


@dataclass(frozen=True)
class Scenario:
    """One simulated design; every field has the unit of the decomposition (nats/response)."""

    name: str
    experiments: int = 6
    participants: int = 60
    responses: int = 30
    pop: float = 0.0
    ind: float = 0.0
    ind_sd: float = 0.0
    tau: float = 0.0
    persona_sd: float = 0.0
    noise_sd: float = 0.5
    share_without_metadata: float = 0.0
    unequal_responses: bool = False
    control: str = "shuffled"
    # Population control: persona effect grows with the fields a persona fills, and the
    # pooled persona fills only the common ones.
    field_effect: float = 0.0


def simulate_table(s: Scenario, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for e in range(s.experiments):
        n, exp = s.participants, f"exp{e}"
        counts = (rng.integers(max(2, s.responses // 5), 2 * s.responses, size=n) if s.unequal_responses
                  else np.full(n, s.responses))
        has_meta = rng.random(n) >= s.share_without_metadata
        if has_meta.sum() < 2:
            has_meta[:2] = True
        n_fields = rng.integers(1, 5, size=n)  # fields each participant's persona fills
        g = rng.normal(0, s.persona_sd, n) - s.field_effect * n_fields
        delta = rng.normal(rng.normal(s.ind, s.tau) if s.tau > 0 else s.ind, s.ind_sd, n) if s.ind_sd or s.ind or s.tau \
            else np.zeros(n)
        a = rng.normal(3.0, 0.5, n)
        meta_idx = np.flatnonzero(has_meta)
        donor = np.arange(n)
        donor[meta_idx] = meta_idx[derangement(len(meta_idx), rng)]
        g_pop = -s.field_effect * 1  # the pooled persona keeps the one field everyone fills
        pid = np.repeat(np.arange(n), counts)
        ridx = np.concatenate([np.arange(c) for c in counts])
        base = a[pid] + rng.normal(0, 1.0, len(pid))
        meta_r = has_meta[pid]
        for persona in ("none", "interview", s.control):
            if persona == "none":
                effect = np.zeros(len(pid))
                fields = np.full(n, "")
                donors = np.full(n, None, dtype=object)
            elif persona == "interview":
                effect = np.where(meta_r, s.pop + g[pid] + delta[pid], 0.0)
                fields = np.where(has_meta, "age", "")
                donors = np.full(n, None, dtype=object)
            elif persona == "shuffled":
                effect = np.where(meta_r, s.pop + g[donor[pid]], 0.0)
                fields = np.where(has_meta, "age", "")
                donors = np.where(has_meta, donor.astype(str), None)
            else:  # population
                effect = np.full(len(pid), s.pop + g_pop)
                fields = np.full(n, "age")
                donors = np.full(n, None, dtype=object)
            # persona effects here lower NLL (a benefit), hence the minus sign
            nll = base - effect + rng.normal(0, s.noise_sd, len(pid))
            frames.append(pd.DataFrame({
                "study": exp, "experiment": exp, "participant": pid.astype(str), "response_index": ridx,
                "model": "m", "persona": persona, "nll": nll, "persona_fields": fields[pid],
                "persona_donor": donors[pid]}))
    return pd.concat(frames, ignore_index=True)


@dataclass
class Tally:
    """Rejections and coverage over replications, with Monte-Carlo standard errors."""

    hits: list[bool] = field(default_factory=list)

    def add(self, x: bool) -> None:
        self.hits.append(bool(x))

    @property
    def rate(self) -> float:
        return float(np.mean(self.hits)) if self.hits else float("nan")

    @property
    def mcse(self) -> float:
        n = len(self.hits)
        return float(np.sqrt(self.rate * (1 - self.rate) / n)) if n else float("nan")


MEAN_FIELDS = 2.5  # fields a simulated persona fills: uniform on 1..4


def truth(s: Scenario) -> dict[str, float]:
    """The estimands, for participants with metadata: mean over experiments of each component
    (persona effects average to zero over personas; a field-count effect does not). For the
    individual component this is the individual-level information itself, which the
    population control does not estimate without bias (its S - M adds the completeness gap)."""
    own = s.pop - s.field_effect * MEAN_FIELDS
    control = s.pop - s.field_effect * (1 if s.control == "population" else MEAN_FIELDS)
    return {"total": own + s.ind, "population_component": control, "individual_component": s.ind}


def replicate(s: Scenario, reps: int, *, seed: int = 0, rows: str = "experiments",
              estimate: Callable = decompose_personas) -> dict[str, dict[str, Tally]]:
    """Per component: rejection of H0 (p < .05) and coverage of the truth by the 95% CI,
    over per-experiment rows (`rows="experiments"`) or the pooled random-effects row."""
    return replicate_levels(s, reps, seed=seed, estimate=estimate)[rows]


def replicate_levels(s: Scenario, reps: int, *, seed: int = 0, estimate: Callable = decompose_personas
                     ) -> dict[str, dict[str, dict[str, Tally]]]:
    """`replicate` for both levels from the same replications."""
    target = truth(s)
    out = {level: {c: {"reject": Tally(), "cover": Tally()} for c in target} for level in ("experiments", "pooled")}
    for k in range(reps):
        result = estimate(simulate_table(s, seed * 100_003 + k), control=s.control)
        for level, picked in (("experiments", [r for r in result.rows if r.status == "ok"]),
                              ("pooled", [result.pooled])):
            for row in picked:
                for comp, t in out[level].items():
                    est = getattr(row, comp)
                    if est.p is None:
                        continue
                    t["reject"].add(est.p < 0.05)
                    # An experiment's own mean effect is random under tau > 0, so per-experiment
                    # coverage is checked only where it is fixed (tau = 0); pooled always.
                    if level == "pooled" or s.tau == 0:
                        t["cover"].add(est.lo <= target[comp] <= est.hi)
    return out


SCENARIOS = {
    "null, persona SD 0": Scenario("null, persona SD 0"),
    "null, persona SD 0.1": Scenario("null, persona SD 0.1", persona_sd=0.1),
    "null, persona SD 0.3": Scenario("null, persona SD 0.3", persona_sd=0.3),
    "individual 0.025, persona SD 0.2": Scenario("individual 0.025, persona SD 0.2", ind=0.025, persona_sd=0.2),
    "individual 0.05, persona SD 0.3, n=200": Scenario("individual 0.05, persona SD 0.3, n=200", experiments=1,
                                                      participants=200, ind=0.05, persona_sd=0.3),
    "half without metadata, individual 0.03": Scenario("half without metadata, individual 0.03", ind=0.03,
                                                       persona_sd=0.2, share_without_metadata=0.5),
    "population 0.1 + individual 0.05": Scenario("population 0.1 + individual 0.05", pop=0.1, ind=0.05,
                                                  ind_sd=0.05, persona_sd=0.2),
    "heterogeneity tau 0.2, K=3": Scenario("heterogeneity tau 0.2, K=3", experiments=3, tau=0.2),
    "heterogeneity tau 0.2, K=10": Scenario("heterogeneity tau 0.2, K=10", experiments=10, tau=0.2),
    "heterogeneity tau 0.2, K=30": Scenario("heterogeneity tau 0.2, K=30", experiments=30, tau=0.2,
                                            participants=30),
    "small n=8": Scenario("small n=8", participants=8, persona_sd=0.2, ind_sd=0.1, pop=0.1),
    "small n=15": Scenario("small n=15", participants=15, persona_sd=0.2, ind_sd=0.1, pop=0.1),
    "small n=40": Scenario("small n=40", participants=40, persona_sd=0.2, ind_sd=0.1, pop=0.1),
    "unequal response counts": Scenario("unequal response counts", unequal_responses=True, persona_sd=0.2,
                                        ind_sd=0.1),
    "population control, unequal fields (null)": Scenario("population control, unequal fields (null)",
                                                          control="population", field_effect=0.05),
    "shuffled control, unequal fields (null)": Scenario("shuffled control, unequal fields (null)",
                                                        field_effect=0.05),
}


def simulate_choices(n: int, trials: int, *, randomised_labels: bool, correct_model: bool, seed: int
                     ) -> pd.DataFrame:
    """A choices table (as choices.parquet) of identical participants choosing between two
    options with probability 0.3 / 0.7; labels drawn per participant or shared; the model
    predicts 0.3 / 0.7 (correct) or 0.5 / 0.5 for everyone."""
    rng = np.random.default_rng(seed)
    rows = []
    pool = list("ABCDEFGHJK")
    for i in range(n):
        labels = list(rng.choice(pool, 2, replace=False)) if randomised_labels else ["A", "B"]
        probs = [0.7, 0.3] if correct_model else [0.5, 0.5]
        for t in range(trials):
            k = int(rng.random() < 0.3)
            rows.append({"study": "s", "experiment": "s", "participant": str(i), "response_index": t,
                         "model": "m", "persona": "none", "options": labels, "chosen": labels[k],
                         "probs": probs, "p_chosen": probs[k], "correct": probs[k] == max(probs),
                         "nll_choice": -np.log(probs[k]), "nll_uniform": np.log(2), "condition": None,
                         "unit_key": str(i)})
    return pd.DataFrame(rows)


def replicate_choices(reps: int, *, seed: int = 0) -> dict[str, Tally]:
    """Rates over replications: the TVD test rejecting a correct model (shared labels), and an
    individual-tracking result reported for identical participants with randomised labels."""
    from ..analysis import choice_prediction

    out = {"tvd rejects a correct model": Tally(), "tracking reported, randomised labels": Tally()}
    for k in range(reps):
        shared = choice_prediction(simulate_choices(60, 40, randomised_labels=False, correct_model=True,
                                                    seed=seed * 100_003 + k), n_boot=0, seed=k)
        out["tvd rejects a correct model"].add(shared.population[0].tvd.p < 0.05)
        random = choice_prediction(simulate_choices(60, 40, randomised_labels=True, correct_model=True,
                                                    seed=seed * 100_003 + k), n_boot=0, seed=k)
        out["tracking reported, randomised labels"].add(bool(random.individual))
    return out
