"""Simulated response tables with known truth, and replications of the estimators on them.

`simulate_table` writes the same per-response table `surrogate run` writes (study,
experiment, participant, response_index, model, persona, nll, n_tokens, persona_fields,
persona_donor), so the estimators are exercised exactly as the CLI calls them; the swaps of
the shuffled control are drawn by `surrogate.personas.swap_pairing`, the function the
`shuffled` strategy itself uses. The generative model, per response r of participant i in
experiment e (of scale c_e) under persona p:

    nll = c_e * (a_i + b_ir + [p is a persona] * -(pop + g_p + form(p -> i))
                 - [p is i's own] * delta_i(r) + noise)

a_i: participant baseline; b_ir: response difficulty (shared by all conditions);
g_p ~ N(0, persona_sd): the persona's own effect on whoever receives it; form(p -> i) =
form_effect * fields_p * a_i: a persona x recipient interaction through the persona's form
(how many fields it fills, which correlates with its owner's baseline); delta_i(r): the
individual-level information, delta_e ~ N(ind, tau) per experiment, individual SD ind_sd,
fading over responses as exp(-r / fade) when `fade` is set (scaled so that a participant
with the mean number of responses keeps the same mean). Participants without metadata have
an empty persona; `strata` puts participants into levels of a field that the shuffled
swaps are stratified by (singletons stay unpaired, as in `surrogate run --stratify`).

Positive effects lower NLL, as in the decomposition (benefits).

`simulate_pairs` does the same for (base, post-trained) model pairs with pair-level
variation in misalignment and a planted trend over generations, through
`post_training_misalignment`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..analysis import decompose_personas
from ..data import Participant, SourceRef
from ..personas import Stratify, swap_pairing


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
    # A persona's benefit = form_effect x its fields x the recipient's baseline; the fields
    # a persona fills correlate with its owner's baseline (a persona x recipient interaction
    # that passes as individual information unless the form-matched control is used).
    form_effect: float = 0.0
    # Stratified swaps: `singletons` participants per experiment alone in their level, the
    # rest in levels of `stratum_size`.
    singletons: int = 0
    stratum_size: int = 10
    # The individual benefit fades over responses with this time constant (responses).
    fade: float | None = None
    # Per-experiment scale of every NLL (an experiment of free text is tens of times larger).
    scales: tuple[float, ...] = ()
    weight: str = "participant"
    # Score placebo and shuffled-placebo rows (the form-matched control).
    form_control: bool = False

    def scale(self, e: int) -> float:
        return self.scales[e] if self.scales else 1.0


def _counts(s: Scenario, n: int, rng: np.random.Generator) -> np.ndarray:
    if s.unequal_responses:
        return rng.integers(max(2, s.responses // 5), 2 * s.responses, size=n)
    return np.full(n, s.responses)


def _fading(s: Scenario, r: np.ndarray) -> np.ndarray:
    """Per-response multiplier of the individual benefit (mean 1 over a session of the mean
    length, so `ind` keeps its meaning for a typical participant)."""
    if s.fade is None:
        return np.ones(len(r))
    mean_len = s.responses if not s.unequal_responses else (max(2, s.responses // 5) + 2 * s.responses - 1) / 2
    norm = np.mean(np.exp(-np.arange(int(round(mean_len))) / s.fade))
    return np.exp(-r / s.fade) / norm


def _people(e: int, n: int, levels: list[str]) -> list[Participant]:
    return [Participant(study=f"exp{e}", experiment=f"exp{e}", participant=str(i), text="",
                        metadata={"level": lv}, metadata_text={"level": lv}, source=SourceRef(file="<sim>", line=i + 1))
            for i, lv in enumerate(levels)]


def _levels(s: Scenario, n: int) -> list[str]:
    if not s.singletons:
        return ["all"] * n
    out = [f"single{i}" for i in range(s.singletons)]
    rest = n - s.singletons
    out += [f"group{k // s.stratum_size}" for k in range(rest)]
    return out


def simulate_table(s: Scenario, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for e in range(s.experiments):
        n, exp, scale = s.participants, f"exp{e}", s.scale(e)
        counts = _counts(s, n, rng)
        has_meta = rng.random(n) >= s.share_without_metadata
        if has_meta.sum() < 2:
            has_meta[:2] = True
        a = rng.normal(3.0, 0.5, n)
        if s.form_effect:
            # Fields filled correlate with the owner's baseline.
            n_fields = np.clip(np.round(2.5 + 1.2 * (a - 3.0) / 0.5 + rng.normal(0, 0.6, n)), 1, 4)
        else:
            n_fields = rng.integers(1, 5, size=n).astype(float)
        g = rng.normal(0, s.persona_sd, n) - s.field_effect * n_fields
        g_placebo = rng.normal(0, s.persona_sd, n)  # a withheld persona's own effect
        delta = rng.normal(rng.normal(s.ind, s.tau) if s.tau > 0 else s.ind, s.ind_sd, n) \
            if s.ind_sd or s.ind or s.tau else np.zeros(n)
        levels = _levels(s, n)
        stratify = Stratify(field="level") if s.singletons else None
        donors = swap_pairing(_people(e, n, levels), has_meta.tolist(), seed=seed, stratify=stratify)
        donor = np.array([i if d is None else d for i, d in enumerate(donors)])
        paired = np.array([d is not None for d in donors])
        g_pop = -s.field_effect * 1  # the pooled persona keeps the one field everyone fills
        pid = np.repeat(np.arange(n), counts)
        ridx = np.concatenate([np.arange(c) for c in counts])
        base = a[pid] + rng.normal(0, 1.0, len(pid))
        meta_r = has_meta[pid]
        fade = _fading(s, ridx)
        form_own = s.form_effect * n_fields[pid] * a[pid]
        form_donor = s.form_effect * n_fields[donor[pid]] * a[pid]
        personas = ["none", "interview", s.control]
        if s.form_control:
            personas += ["placebo", "shuffled-placebo"]
        for persona in personas:
            donors_col = np.full(n, None, dtype=object)
            fields = np.where(has_meta, "age", "")
            if persona == "none":
                effect = np.zeros(len(pid))
                fields = np.full(n, "")
            elif persona == "interview":
                effect = np.where(meta_r, s.pop + g[pid] + form_own + delta[pid] * fade, 0.0)
            elif persona == "shuffled":
                ok = paired[pid]
                effect = np.where(ok, s.pop + g[donor[pid]] + form_donor, 0.0)
                fields = np.where(paired, "age", "")
                donors_col = np.where(paired, donor.astype(str), None)
            elif persona == "placebo":  # the own form, values withheld
                effect = np.where(meta_r, s.pop + g_placebo[pid] + form_own, 0.0)
            elif persona == "shuffled-placebo":  # the partner's form, values withheld
                ok = paired[pid]
                effect = np.where(ok, s.pop + g_placebo[donor[pid]] + form_donor, 0.0)
                fields = np.where(paired, "age", "")
                donors_col = np.where(paired, donor.astype(str), None)
            else:  # population
                effect = np.full(len(pid), s.pop + g_pop)
                fields = np.full(n, "age")
            # persona effects here lower NLL (a benefit), hence the minus sign
            nll = scale * (base - effect + rng.normal(0, s.noise_sd, len(pid)))
            frames.append(pd.DataFrame({
                "study": exp, "experiment": exp, "participant": pid.astype(str), "response_index": ridx,
                "model": "m", "persona": persona, "nll": nll, "n_tokens": 2,
                "persona_fields": fields[pid], "persona_donor": donors_col[pid]}))
    return pd.concat(frames, ignore_index=True)


def simulate_sessions(participants: Sequence[Participant], personas: Sequence[str], *, seed: int,
                      ind: float | dict[str, float] = 0.0, persona_sd: float = 0.2, pop: float = 0.05,
                      responses: int = 10, noise_sd: float = 0.5, stratify: str | None = None,
                      record_donor_experiment: bool = True) -> pd.DataFrame:
    """The per-response table `surrogate run --persona ...` writes for real participants
    (their studies, experiments, ids and metadata, and the conditioning the named strategies
    render for them, swaps and donors included), with NLLs drawn from the generative model
    above instead of a language model: known truth on the real data's shape. `ind`: the
    individual benefit of the own persona, one value or per matched strategy; each strategy's
    personas have effects of their own (SD persona_sd) on whoever receives them.
    `record_donor_experiment=False` writes the table as runs before the donor's experiment was
    recorded."""
    from ..personas import control_renders, resolve_strategies

    rng = np.random.default_rng(seed)
    strategies = resolve_strategies(list(personas), seed=seed, stratify=stratify)
    keys = [p.key for p in participants]
    row_of = {k: i for i, k in enumerate(keys)}
    n = len(participants)
    base = rng.normal(3.0, 0.5, n)
    difficulty = rng.normal(0, 1.0, (n, responses))
    persona_effect: dict[str, np.ndarray] = {}
    frames = []
    for strategy in strategies:
        name = strategy.name
        renders = control_renders(name)
        root = renders[1] if renders is not None else name
        if root not in persona_effect:
            persona_effect[root] = rng.normal(0, persona_sd, n)
        delta = ind.get(root, 0.0) if isinstance(ind, dict) else ind
        effect = np.zeros(n)
        conds = strategy.render(participants)
        for i, c in enumerate(conds):
            if not c.fields or name == "none":
                continue
            if c.donor is not None and c.donor != "population":
                owner = row_of[(participants[i].study, c.donor_experiment, c.donor)]
                effect[i] = pop + persona_effect[root][owner]
            elif c.donor == "population":
                effect[i] = pop
            else:
                effect[i] = pop + persona_effect[root][i] + delta
        nll = base[:, None] + difficulty - effect[:, None] + rng.normal(0, noise_sd, (n, responses))
        frames.append(pd.DataFrame({
            "study": np.repeat([p.study for p in participants], responses),
            "experiment": np.repeat([p.experiment for p in participants], responses),
            "participant": np.repeat([p.participant for p in participants], responses),
            "response_index": np.tile(np.arange(responses), n), "model": "m", "persona": name,
            "nll": nll.reshape(-1), "n_tokens": 2,
            "persona_fields": np.repeat([",".join(c.fields) for c in conds], responses),
            "persona_donor": np.repeat(np.array([c.donor for c in conds], dtype=object), responses),
            "persona_donor_experiment": np.repeat(np.array([c.donor_experiment for c in conds], dtype=object),
                                                  responses)}))
    table = pd.concat(frames, ignore_index=True)
    return table if record_donor_experiment else table.drop(columns="persona_donor_experiment")


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


def _individual_truths(s: Scenario, reps: int = 4000, seed: int = 99) -> dict[str, float]:
    """Mean individual benefit per participant, per response (the paper's scale), and under
    cycle-common response weights, by Monte Carlo over the design's response counts."""
    rng = np.random.default_rng(seed)
    n = _counts(s, reps * 2, rng).astype(int)
    per = np.array([_fading(s, np.arange(k)).sum() for k in range(int(n.max()) + 1)])
    mean_delta = s.ind * per[n] / n  # each participant's mean benefit per response
    a, b = n[:reps], n[reps:]
    cycle = (a + b) / 2.0
    return {"participant": float(mean_delta.mean()),
            "paper": float(s.ind * per[n].sum() / n.sum()),
            "response": float((cycle * (mean_delta[:reps] + mean_delta[reps:])).sum() / (2 * cycle.sum()))}


def truth(s: Scenario) -> dict[str, float]:
    """The estimands, for participants with metadata: mean over experiments of each component
    (persona effects average to zero over personas; a field-count effect does not). For the
    individual component this is the individual-level information itself, which the
    population control does not estimate without bias (its S - M adds the completeness gap),
    nor S - M under a persona x recipient interaction (the content component does)."""
    own = s.pop - s.field_effect * MEAN_FIELDS
    control = s.pop - s.field_effect * (1 if s.control == "population" else MEAN_FIELDS)
    ind = _individual_truths(s)[s.weight] if s.fade is not None or s.unequal_responses else s.ind
    own_form, other_form = _form_truths(s)
    return {"total": own + ind + own_form, "population_component": control + other_form,
            "individual_component": ind, "individual_content": ind}


def _form_truths(s: Scenario, n: int = 400_000, seed: int = 98) -> tuple[float, float]:
    """E[form effect of one's own persona], E[of someone else's] (fields and baseline
    correlate within a person, not across people), as simulate_table draws them."""
    if not s.form_effect:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    a = rng.normal(3.0, 0.5, n)
    fields = np.clip(np.round(2.5 + 1.2 * (a - 3.0) / 0.5 + rng.normal(0, 0.6, n)), 1, 4)
    return float(s.form_effect * np.mean(fields * a)), float(s.form_effect * fields.mean() * a.mean())


def truth_relative(s: Scenario) -> dict[str, float]:
    """The same estimands in per cent of the no-persona NLL (whose mean is 3 at every scale)."""
    return {k: 100 * v / 3.0 for k, v in truth(s).items()}


def _row_truth(s: Scenario, level: str) -> dict[str, float]:
    if level == "pooled_relative":
        return truth_relative(s)
    t = truth(s)
    if level == "pooled" and s.scales:  # mean over experiments of the experiments' own effects
        mean_scale = float(np.mean([s.scale(e) for e in range(s.experiments)]))
        return {k: v * mean_scale for k, v in t.items()}
    return t


def replicate(s: Scenario, reps: int, *, seed: int = 0, rows: str = "experiments",
              estimate: Callable = decompose_personas) -> dict[str, dict[str, Tally]]:
    """Per component: rejection of H0 (p < .05) and coverage of the truth by the 95% CI,
    over per-experiment rows (`rows="experiments"`) or a pooled row (`pooled`,
    `pooled_relative`)."""
    return replicate_levels(s, reps, seed=seed, estimate=estimate)[rows]


LEVELS = ("experiments", "pooled", "pooled_relative")


def replicate_levels(s: Scenario, reps: int, *, seed: int = 0, estimate: Callable = decompose_personas
                     ) -> dict[str, dict[str, dict[str, Tally]]]:
    """`replicate` for every level from the same replications."""
    comps = ["total", "population_component", "individual_component"] + (["individual_content"] if s.form_control else [])
    out = {level: {c: {"reject": Tally(), "cover": Tally()} for c in comps} for level in LEVELS}
    per_exp_fixed = s.tau == 0 and not s.scales
    for k in range(reps):
        result = estimate(simulate_table(s, seed * 100_003 + k), control=s.control, weight=s.weight)
        picked = {"experiments": [r for r in result.rows if r.status == "ok"],
                  "pooled": [result.pooled], "pooled_relative": [result.pooled_row("pooled_relative")]}
        for level, rows in picked.items():
            target = _row_truth(s, level)
            for row in rows:
                if row is None:
                    continue
                for comp, t in out[level].items():
                    est = getattr(row, comp)
                    if est is None or est.p is None:
                        continue
                    t["reject"].add(est.p < 0.05)
                    # An experiment's own mean effect is random under tau > 0 (and differs in
                    # nats between scales), so per-experiment coverage is checked only where
                    # it is fixed; pooled always.
                    if level != "experiments" or per_exp_fixed:
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
    "stratified, 30 singletons, population 0.1 (null)": Scenario(
        "stratified, 30 singletons, population 0.1 (null)", pop=0.1, persona_sd=0.2, singletons=30),
    "interaction through the form (null)": Scenario("interaction through the form (null)", form_effect=0.03,
                                                    persona_sd=0.1, form_control=True),
    "interaction through the form, individual 0.05": Scenario(
        "interaction through the form, individual 0.05", form_effect=0.03, persona_sd=0.1, ind=0.05,
        form_control=True),
    "fading benefit 0.05, participant weights": Scenario(
        "fading benefit 0.05, participant weights", ind=0.05, fade=8.0, unequal_responses=True, persona_sd=0.1),
    "fading benefit 0.05, response weights": Scenario(
        "fading benefit 0.05, response weights", ind=0.05, fade=8.0, unequal_responses=True, persona_sd=0.1,
        weight="response"),
    "constant 0.025, unequal counts, participant weights": Scenario(
        "constant 0.025, unequal counts, participant weights", ind=0.025, unequal_responses=True, persona_sd=0.1),
    "constant 0.025, unequal counts, response weights": Scenario(
        "constant 0.025, unequal counts, response weights", ind=0.025, unequal_responses=True, persona_sd=0.1,
        weight="response"),
    "unequal scales (one experiment x30), null": Scenario(
        "unequal scales (one experiment x30), null", persona_sd=0.2, pop=0.05, scales=(30, 1, 1, 1, 1, 1)),
    "unequal scales (one experiment x30), individual 1.5%": Scenario(
        "unequal scales (one experiment x30), individual 1.5%", persona_sd=0.2, ind=0.045,
        scales=(30, 1, 1, 1, 1, 1)),
}


def verdict(s: Scenario, level: str, comp: str, target: float, reject: Tally, cover: Tally) -> str:
    """What a calibration row shows, against the targets (type-I error in [0.025, 0.075],
    coverage in [0.92, 0.98]), with the known biases named."""
    if s.control == "population" and comp == "individual_component":
        return "biased by design: includes persona completeness (README)"
    if s.form_effect and comp == "individual_component":
        return "biased by design: persona x recipient interaction (use the form-matched control)"
    if s.scales and level == "pooled":
        return (f"raw nats across scales ({reject.rate:.3f} rejections, coverage {cover.rate:.2f}): the summary "
                "warns and points to pooled_relative")
    out = []
    if target == 0 and (level != "experiments" or (s.tau == 0 and not s.scales)):
        out.append("size ok" if 0.025 <= reject.rate <= 0.075 else "SIZE OFF")
    if cover.hits:
        out.append("coverage ok" if 0.92 <= cover.rate <= 0.98 else "COVERAGE OFF")
    return ", ".join(out)


def simulate_strategies(s: Scenario, seed: int, *, ind_b: float = 0.0, format_b: float = 0.0,
                        extra: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Several matched strategies on one pairing: `interview` with the scenario's individual
    effect and `narrative` with `ind_b` and a format effect of its own (`format_b`: what the
    narrative form does for anyone who receives it), or the strategies of `extra` (name ->
    (individual effect, format effect)), each with its shuffled control drawn on the same swaps
    (as `surrogate run` draws them); each strategy's personas have their own persona effects
    (SD persona_sd)."""
    table = simulate_table(s, seed)
    rng = np.random.default_rng([seed, 1])
    frames = [table]
    strategies = extra if extra is not None else {"narrative": (ind_b, format_b)}
    for study, g in table.groupby("study", sort=False):
        none = g[g["persona"] == "none"]
        own = g[g["persona"] == "interview"]
        shuffled = g[g["persona"] == "shuffled"]
        people = sorted(none["participant"].unique(), key=int)
        donor = shuffled.groupby("participant")["persona_donor"].first()
        base = none["nll"].to_numpy()
        for name, (ind, fmt) in strategies.items():
            effect_of = dict(zip(people, rng.normal(0, s.persona_sd, len(people))))  # this strategy's personas
            for persona, src in ((name, own), (f"shuffled-{name}", shuffled)):
                has = (src["persona_fields"] != "").to_numpy()
                if persona == name:
                    persona_effect = src["participant"].map(effect_of).to_numpy() + ind
                else:
                    persona_effect = src["participant"].map(lambda p: effect_of.get(donor.get(p), 0.0)).to_numpy()
                effect = np.where(has, s.pop + fmt + persona_effect, 0.0)
                frames.append(src.assign(persona=persona, nll=base - effect + rng.normal(0, s.noise_sd, len(src))))
    return pd.concat(frames, ignore_index=True)


def replicate_verdicts(s: Scenario, reps: int, *, seed: int = 0, sesoi: str = "1%") -> dict[str, Tally]:
    """How often each verdict kind is given (`PersonaDecomposition.verdict`, the line the
    report and the default job print), and TOST alone on the verdict's row."""
    out = {k: Tally() for k in ("individual", "negative", "equivalent", "no evidence", "not estimable",
                                "individual or negative", "TOST alone")}
    for k in range(reps):
        d = decompose_personas(simulate_table(s, seed * 100_003 + k), control=s.control, weight=s.weight,
                               sesoi=sesoi)
        v = d.verdict()
        for kind in ("individual", "negative", "equivalent", "no evidence", "not estimable"):
            out[kind].add(v.kind == kind)
        out["individual or negative"].add(v.kind in ("individual", "negative"))
        eq = d.equivalence()
        out["TOST alone"].add(eq is not None and eq.tost_p < 0.05)
    return out


FOUR_STRATEGIES = {"narrative": (0.0, 0.05), "demographics": (0.0, 0.0), "questionnaires": (0.0, -0.05)}


def replicate_multiplicity(s: Scenario, reps: int, *, seed: int = 0) -> dict[str, Tally]:
    """Four matched strategies, none with individual information (a global null), each
    against its own shuffled control on one pairing, through compare_strategies as
    compare-personas runs it: how often at least one verdict claims an individual effect,
    with Holm over the strategies and without, and at least one pairwise difference."""
    from ..analysis import compare_strategies

    out = {k: Tally() for k in ("any verdict, Holm", "any verdict, unadjusted", "any difference, Holm",
                                "any difference, unadjusted", "interview - narrative")}
    names = ["interview", *FOUR_STRATEGIES]
    for k in range(reps):
        c = compare_strategies(simulate_strategies(s, seed * 100_003 + k, extra=FOUR_STRATEGIES), names)
        verdicts = [d.verdict() for d in c.decompositions.values()]
        raw = [d.verdict_row().individual_component.p for d in c.decompositions.values()]
        out["any verdict, Holm"].add(any(v.kind in ("individual", "negative") for v in verdicts))
        out["any verdict, unadjusted"].add(any(p is not None and p < 0.05 for p in raw))
        diffs = [d for d in c.differences if d.pooled is not None]
        out["any difference, Holm"].add(any(d.individual_p_holm is not None and d.individual_p_holm < 0.05
                                            for d in diffs))
        out["any difference, unadjusted"].add(any((d.pooled.individual_component.p or 1) < 0.05 for d in diffs))
        # One pre-specified difference, between strategies whose forms differ (narrative's
        # helps everyone by 0.05): the individual difference on the shared swap cycles.
        first = next(d for d in c.differences if {d.a, d.b} == {"interview", "narrative"})
        if first.pooled is not None and first.pooled.individual_component.p is not None:
            out["interview - narrative"].add(first.pooled.individual_component.p < 0.05)
    return out


# --- misalignment across generations ----------------------------------------------------

@dataclass(frozen=True)
class GridPair:
    """One pair's place in a grid: which cell (family, generation) it is in, its type, size
    and base (pairs may share a base)."""

    family: str
    generation: str
    post_training: str
    size_b: float
    base: str


def simple_grid(families: int, generations: int, sizes: int) -> tuple[GridPair, ...]:
    """families x generations x sizes pairs, one type, each with its own base."""
    return tuple(GridPair(f"fam{f}", str(g), "instruction-tuned", float(2 ** s), f"f{f}-g{g}-s{s}-base")
                 for f in range(families) for g in range(1, generations + 1) for s in range(sizes))


def paper_grid() -> tuple[GridPair, ...]:
    """The paper's grid (analysis/data/paper_grid.toml): two families, seven generations,
    five post-training types, 33 bases for 52 pairs."""
    from ..analysis import read_pairs

    return tuple(GridPair(p.family, p.generation, p.post_training, float(p.size_b or 1.0), p.base)
                 for p in read_pairs("paper"))


@dataclass(frozen=True)
class PairScenario:
    """Base / post-trained pairs on a grid (`simple_grid(families, generations, sizes)`, or
    `grid`), each pair's misalignment (d scale) in experiment e:

        mean_d + family + recipe(cell) + type + base + size_slope(cell) * log10 size
        + pair * uneven[step] + trend * step + size_trend * log10 size + experiment_e + residual

    recipe: per (family, generation) cell, shared by its pairs; base: shared by the pairs of
    one base; uneven: the pair SD's multiplier per generation step (noise that differs between
    generations); size_slope: a cell's own size effect."""

    name: str
    families: int = 2
    generations: int = 3
    sizes: int = 1
    grid: tuple[GridPair, ...] = ()
    experiments: int = 19
    participants: int = 12
    responses: int = 5
    mean_d: float = 0.3
    pair_sd: float = 0.3
    family_sd: float = 0.3
    recipe_sd: float = 0.0
    base_sd: float = 0.0
    type_sd: float = 0.0
    size_slope_sd: float = 0.0
    uneven: tuple[float, ...] = ()
    experiment_sd: float = 0.2
    residual_sd: float = 0.1
    trend: float = 0.0
    size_trend: float = 0.0

    def pairs(self) -> tuple[GridPair, ...]:
        return self.grid or simple_grid(self.families, self.generations, self.sizes)


def _generation_steps(grid: Sequence[GridPair]) -> list[int]:
    gens: dict[str, set[float]] = {}
    for g in grid:
        gens.setdefault(g.family, set()).add(float(g.generation))
    order = {f: {v: i for i, v in enumerate(sorted(vs))} for f, vs in gens.items()}
    return [order[g.family][float(g.generation)] for g in grid]


def simulate_pairs(s: PairScenario, seed: int):
    """A responses table (persona none) of every base and post-trained model of the grid, and
    the pairs file entries (family, generation, type, size), per-response NLL SD 1, so a mean
    shift of d is a paper's d of about d. Pairs that share a base share its rows."""
    from ..analysis import ModelPair

    rng = np.random.default_rng(seed)
    grid = s.pairs()
    steps = _generation_steps(grid)
    E = s.experiments
    exp_effect = rng.normal(0, s.experiment_sd, E)
    draws: dict[tuple, float] = {}

    def effect(kind: str, key, sd: float) -> float:
        if (kind, key) not in draws:
            draws[(kind, key)] = rng.normal(0, sd) if sd else 0.0
        return draws[(kind, key)]

    pairs, shifts = [], []
    for i, (g, step) in enumerate(zip(grid, steps)):
        cell = (g.family, g.generation)
        size = math.log10(g.size_b)
        scale = s.uneven[min(step, len(s.uneven) - 1)] if s.uneven else 1.0
        level = (s.mean_d + effect("family", g.family, s.family_sd) + effect("recipe", cell, s.recipe_sd)
                 + effect("type", g.post_training, s.type_sd) + effect("base", g.base, s.base_sd)
                 + effect("size", cell, s.size_slope_sd) * size + rng.normal(0, s.pair_sd * scale)
                 + s.trend * step + s.size_trend * size)
        shifts.append(level + exp_effect + rng.normal(0, s.residual_sd, E))
        pairs.append(ModelPair(base=g.base, post_trained=f"{g.family}-{g.generation}-{i}-post", family=g.family,
                               generation=g.generation, post_training=g.post_training, size_b=g.size_b))
    bases = list(dict.fromkeys(g.base for g in grid))
    models = bases + [p.post_trained for p in pairs]
    shift = np.vstack([np.zeros((len(bases), E)), np.array(shifts)])
    n, r = s.participants, s.responses
    a = rng.normal(0, 0.6, (E, n))  # participant baselines, shared by every model
    # models x experiments x participants x responses
    nll = 5 + a[None, :, :, None] + shift[:, :, None, None] + rng.normal(0, 0.8, (len(models), E, n, r))
    idx = np.indices(nll.shape).reshape(4, -1)
    exp = np.array([f"exp{e}" for e in range(E)])[idx[1]]
    table = pd.DataFrame({"study": exp, "experiment": exp, "participant": idx[2].astype(str),
                          "response_index": idx[3], "model": np.array(models)[idx[0]], "persona": "none",
                          "nll": nll.reshape(-1)})
    return table, pairs


def replicate_trend(s: PairScenario, reps: int, *, seed: int = 0) -> dict[str, dict[str, Tally]]:
    """Per (covariate, d): rejection of a zero slope (p < .05), and coverage of 0 where the
    planted trend is 0, through `post_training_misalignment` exactly as `analyze --pairs`
    calls it. Designs that cannot support a test count as "not testable"."""
    from ..analysis import post_training_misalignment

    out: dict[str, dict[str, Tally]] = {}
    for k in range(reps):
        table, pairs = simulate_pairs(s, seed * 100_003 + k)
        result = post_training_misalignment(table, pairs, n_boot=0)
        for t in result.trends:
            tally = out.setdefault(f"{t.covariate} ({t.d})", {"reject": Tally(), "cover": Tally(),
                                                             "not testable": Tally()})
            tally["not testable"].add(t.status != "ok")
            if t.status != "ok":
                continue
            tally["reject"].add(t.slope.p is not None and t.slope.p < 0.05)
            planted = s.trend if t.covariate == "generation" else s.size_trend
            if planted == 0:
                tally["cover"].add(t.slope.lo <= 0 <= t.slope.hi)
    return out


PAIR_SCENARIOS = {
    "pairs: no trend, pair SD 0.3": PairScenario("pairs: no trend, pair SD 0.3"),
    "pairs: no trend, pair SD 0.1": PairScenario("pairs: no trend, pair SD 0.1", pair_sd=0.1),
    "pairs: trend 0.3 per generation, pair SD 0.1": PairScenario("pairs: trend 0.3 per generation, pair SD 0.1",
                                                                 pair_sd=0.1, trend=0.3),
    "grid 3x3x3: recipe SD 0.2, no trend": PairScenario(
        "grid 3x3x3: recipe SD 0.2, no trend", families=3, sizes=3, pair_sd=0.1, recipe_sd=0.2),
    "grid 3x3x3: recipe SD 0.15, no trend": PairScenario(
        "grid 3x3x3: recipe SD 0.15, no trend", families=3, sizes=3, pair_sd=0.1, recipe_sd=0.15),
    "grid 3x3x3: uneven noise (x1, x1, x3), no trend": PairScenario(
        "grid 3x3x3: uneven noise (x1, x1, x3), no trend", families=3, sizes=3, pair_sd=0.1, uneven=(1, 1, 3)),
    "grid 3x3x3: recipe SD 0.2, trend 0.3": PairScenario(
        "grid 3x3x3: recipe SD 0.2, trend 0.3", families=3, sizes=3, pair_sd=0.1, recipe_sd=0.2, trend=0.3),
    "paper grid: recipe SD 0.2, shared bases, types, no trend": PairScenario(
        "paper grid: recipe SD 0.2, shared bases, types, no trend", grid=paper_grid(), pair_sd=0.1,
        recipe_sd=0.2, base_sd=0.1, type_sd=0.1),
    "paper grid: uneven noise, size slopes per cell, no trend": PairScenario(
        "paper grid: uneven noise, size slopes per cell, no trend", grid=paper_grid(), pair_sd=0.1,
        recipe_sd=0.05, base_sd=0.1, type_sd=0.1, uneven=(1, 1, 2, 3), size_slope_sd=0.1),
    "paper grid: recipe SD 0.2, trend 0.3, size trend 0.2": PairScenario(
        "paper grid: recipe SD 0.2, trend 0.3, size trend 0.2", grid=paper_grid(), pair_sd=0.1, recipe_sd=0.2,
        base_sd=0.1, type_sd=0.1, trend=0.3, size_trend=0.2),
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



# --- the study planner against simulation ----------------------------------------------

def _true_plan(s: Scenario, effect: float = 0.0, sesoi: str = "1%"):
    """The planner's model filled with the scenario's true variance components (the
    no-persona NLL is 3 nats per response at scale 1)."""
    from ..analysis import ExperimentVariance, PersonaPlan, Sesoi

    rng = np.random.default_rng(7)
    m = _counts(s, 200_000, rng).astype(float)
    inv_m = float(np.mean(1 / m))
    usable = 1 - s.share_without_metadata
    n_meta = round(s.participants * usable)
    experiments = [ExperimentVariance(experiment=f"exp{e}", n=n_meta, recruited=s.participants, responses=1 / inv_m,
                                      none_nll=3.0, sigma2_response=2 * s.noise_sd**2, sigma2_participant=s.ind_sd**2,
                                      sigma2_persona=s.persona_sd**2, estimate=effect)
                   for e in range(s.experiments)]
    return PersonaPlan(model="m", matched="interview", control="shuffled", experiments=experiments,
                       sesoi=Sesoi.parse(sesoi), usable_share=usable,
                       tau2={"nats": s.tau**2, "%": (s.tau / 0.03) ** 2})


PLANNER_CHECKS = {  # scenario (the pilot's design, and the design whose power is predicted), effect
    "individual 0.025, persona SD 0.2": 0.025,
    "small n=15": 0.05,
    "small n=40": 0.03,
    "half without metadata, individual 0.03": 0.03,
    "unequal response counts": 0.03,
    "heterogeneity tau 0.2, K=10": 0.1,
}


def check_planner(name: str, effect: float, reps: int, pilots: int, *, seed: int = 0) -> dict[str, float]:
    """Simulated power of the pooled individual test at the scenario's design with the
    effect planted, against the planner's prediction from the true components and from
    `pilots` independent pilot tables of the same design (median, 10th and 90th percentile),
    participants counted as recruited."""
    from ..analysis import plan_personas

    s = SCENARIOS[name]
    simulated = replicate(replace(s, ind=effect), reps, seed=seed, rows="pooled")["individual_component"]["reject"]
    predictions, covered = [], []
    for k in range(pilots):
        pilot = plan_personas(simulate_table(s, seed * 100_003 + 50_000 + k))
        predictions.append(pilot.power(effect, s.participants, s.experiments))
        lo, hi = pilot.power_range(effect, s.participants, s.experiments)
        covered.append(lo <= simulated.rate <= hi)
    return {"simulated": simulated.rate, "mcse": simulated.mcse,
            "true_components": _true_plan(s, effect).power(effect, s.participants, s.experiments),
            "pilot_median": float(np.median(predictions)), "pilot_p10": float(np.percentile(predictions, 10)),
            "pilot_p90": float(np.percentile(predictions, 90)), "range_covers": float(np.mean(covered))}


EQUIVALENCE_CHECKS = {  # scenario (no individual effect), SESOI: power of the verdict's equivalence claim
    "null, persona SD 0.1": "1%",
    "null, persona SD 0.3": "1.5%",
    "heterogeneity tau 0.2, K=10": "20%",
    "half without metadata, individual 0.03": "1.5%",
    "small n=40": "2%",
    "heterogeneity tau 0.2, K=3": "30%",
}


def check_equivalence_planner(name: str, sesoi: str, reps: int, pilots: int, *, seed: int = 0) -> dict[str, float]:
    """The share of simulated studies (true individual effect 0) whose decomposition claims
    equivalence (`equivalence().equivalent`, the verdict's rule) against the planner's
    simulated equivalence power from the true components and from pilots of the design."""
    from ..analysis import plan_personas

    s = replace(SCENARIOS[name], ind=0.0)
    hits = Tally()
    for k in range(reps):
        eq = decompose_personas(simulate_table(s, seed * 100_003 + k), sesoi=sesoi, weight=s.weight).equivalence()
        hits.add(eq is not None and eq.equivalent)
    predictions, unreachable = [], []
    for k in range(pilots):
        pilot = plan_personas(simulate_table(s, seed * 100_003 + 70_000 + k), sesoi=sesoi)
        predictions.append(pilot.equivalence_power(s.participants, s.experiments))
        unreachable.append(pilot.participants_for_equivalence(0.8, s.experiments) is None)
    return {"simulated": hits.rate, "mcse": hits.mcse,
            "true_components": _true_plan(s, sesoi=sesoi).equivalence_power(s.participants, s.experiments),
            "pilot_median": float(np.median(predictions)), "pilot_p10": float(np.percentile(predictions, 10)),
            "pilot_p90": float(np.percentile(predictions, 90)), "pilot_unreachable": float(np.mean(unreachable))}


def check_recruitment(name: str, effect: float, reps: int, *, seed: int = 0, target: float = 0.8) -> dict[str, float]:
    """Recruit what a pilot's plan recommends for `target` power (participants counted as
    recruited, some of whom lack metadata) and simulate the study at that design: the power
    achieved."""
    from ..analysis import plan_personas

    s = SCENARIOS[name]
    pilot = plan_personas(simulate_table(s, seed * 100_003 + 90_000))
    truth_plan = _true_plan(s, effect)
    need = truth_plan.participants_for(effect, target, s.experiments)
    achieved = replicate(replace(s, ind=effect, participants=need), reps, seed=seed,
                         rows="pooled")["individual_component"]["reject"]
    return {"recommended": float(need), "pilot_recommends": float(pilot.participants_for(effect, target,
                                                                                          s.experiments) or math.nan),
            "usable_share": truth_plan.usable_share, "achieved": achieved.rate, "mcse": achieved.mcse}


# --- agents against people ---------------------------------------------------------------

def _two_doors(trials: int):
    from ..experiments import DeclarativeExperiment, ExperimentSpec

    return DeclarativeExperiment(ExperimentSpec(
        name="two_doors", instructions="Choose a door: {options}.", trials=trials, prompt="Trial {trial}: you open the",
        options=["left door", "right door"], links=[{"trait": "STAI-T", "param": "learning_rate", "slope": 1.0}],
        feedback={"kind": "bernoulli", "probabilities": [0.8, 0.2], "reward": 100, "reversal_every": 20,
                  "win": " and find a prize.", "loss": " and find nothing."}))


def agents_tables(n: int, trials: int, seed: int, *, agents_like: str) -> tuple:
    """People (synthetic, anxiety raising the learning rate) and an agent population with
    the same traits: `independent` (the same population, each agent's behaviour unrelated to
    its person: the null of both tests), `copies` (agent i with person i's parameters: the
    individual test's alternative), `shifted` (learning rates twice as high on the logit
    scale: the population test's alternative)."""
    from ..experiments import QLearner, SyntheticSpec, TraitLink, simulate_synthetic
    from ..experiments import behaviour_rows, trial_rows

    exp = _two_doors(trials)
    link = (TraitLink(trait="STAI-T", param="learning_rate", slope=1.0),)
    people = simulate_synthetic(exp, n, seed=seed, spec=SyntheticSpec(links=link), id_prefix="syn")
    if agents_like == "copies":
        agents = []
        for i, p in enumerate(people):
            rng = np.random.default_rng([seed, i, 5])
            agents += [_play_with(exp, p.params, rng).model_copy(update={"participant": f"agent-{i + 1:04d}",
                                                                         "metadata": p.metadata})]
    else:
        spec = SyntheticSpec(links=link, params={"learning_rate": QLearner.PARAMS["learning_rate"].model_copy(
            update={"mean": 0.75})} if agents_like == "shifted" else {})
        agents = simulate_synthetic(exp, n, seed=seed + 50_000, spec=spec, id_prefix="agent")
    agents = [a.model_copy(update={"agent": "agent", "person": f"syn-{i + 1:04d}"}) for i, a in enumerate(agents)]
    people = [p.model_copy(update={"agent": "syn"}) for p in people]
    return (behaviour_rows(exp, people, fit=False), behaviour_rows(exp, agents, fit=False), trial_rows(people),
            trial_rows(agents))


def _play_with(exp, params, rng):
    from ..experiments import QLearner, SessionRecord, play

    model = QLearner(**params)
    session = exp.session(np.random.default_rng(rng.integers(2**32)))
    trials, choices, feedback = play(session, lambda t: int(rng.choice(2, p=model.probs(t))), model.observe)
    return SessionRecord(experiment=exp.name, participant="x", instructions=session.instructions, trials=trials,
                         choices=choices, feedback=feedback)


def replicate_agents(reps: int, *, agents_like: str = "independent", n: int = 40, trials: int = 40, n_perm: int = 199,
                     seed: int = 0) -> dict[str, Tally]:
    """Rejection rates (p < .05) of the agents-vs-people tests, through `agent_comparison`."""
    from ..analysis import agent_comparison

    out: dict[str, Tally] = {}
    for k in range(reps):
        people, agents, p_trials, a_trials = agents_tables(n, trials, seed * 100_003 + k, agents_like=agents_like)
        c = agent_comparison(people, agents, p_trials, a_trials, n_perm=n_perm, seed=k)
        for i in c.indices:
            out.setdefault(f"population: {i.index}", Tally()).add(i.p < 0.05)
        if c.choices is not None:
            out.setdefault("population: choices per trial", Tally()).add(c.choices.p < 0.05)
        for m in c.individual:
            out.setdefault(f"individual: {m.on}", Tally()).add(m.p < 0.05)
    return out


# --- misalignment intervals ----------------------------------------------------------------

def simulate_two_models(d_by_exp: dict[str, float], n: int = 150, seed: int = 0) -> pd.DataFrame:
    """Per-participant NLL (one response each) of a base and a post-trained model whose
    difference has a planted Cohen's d per experiment (SD 1 for both)."""
    rng = np.random.default_rng(seed)
    rows = []
    for exp, d in d_by_exp.items():
        for i in range(n):
            for model, shift in (("base", 0.0), ("chat", d)):
                rows.append({"study": exp, "experiment": exp, "participant": str(i), "response_index": 0,
                             "model": model, "persona": "none", "nll": 3 + shift + rng.normal(0, 1)})
    return pd.DataFrame(rows)


def replicate_misalignment(reps: int, *, d: float = 0.3, n: int = 80, n_boot: int = 400, seed: int = 0
                           ) -> dict[str, Tally]:
    """Coverage of a planted d by misalignment's intervals: the per-participant d's delta-method
    interval per experiment, the paper's d's participant bootstrap per experiment and pooled."""
    from ..analysis import ModelPair, post_training_misalignment

    out = {k: Tally() for k in ("cohens_d (per experiment)", "d_paper bootstrap (per experiment)",
                                "d_paper bootstrap (pooled)")}
    for k in range(reps):
        frame = simulate_two_models({"a": d, "b": d}, n=n, seed=seed * 100_003 + k)
        pm = post_training_misalignment(frame, [ModelPair(base="base", post_trained="chat")], n_boot=n_boot,
                                        seed=k).pairs[0]
        for est in pm.per_experiment.values():
            out["cohens_d (per experiment)"].add(est.lo <= d <= est.hi)
        for lo, hi in pm.d_paper_interval.values():
            out["d_paper bootstrap (per experiment)"].add(lo <= d <= hi)
        lo, hi = pm.mean_paper_interval
        out["d_paper bootstrap (pooled)"].add(lo <= d <= hi)
    return out


# --- recovery of planted trait links by behaviour indices and fits ---------------------

# (paradigm, its parameter a trait moves, the index that should follow, the sign it follows with)
RECOVERY_CASES = {
    "restless bandit: inverse temperature -> switch rate": ("restless_bandit", "inverse_temperature", "switch_rate", -1),
    "mixed lotteries: loss aversion -> acceptance": ("mixed_lotteries", "loss_aversion", "loss_acceptance", -1),
    "delay discounting: discount rate -> switch point": ("intertemporal_choice", "discount_rate",
                                                          "log_discount_threshold", 1),
    "delay discounting: discount rate -> later rate": ("intertemporal_choice", "discount_rate", "later_rate", -1),
}


def _paradigm(name: str, trials: int = 60):
    from ..experiments import IntertemporalChoice, MixedLotteries, RestlessBandit

    return {"restless_bandit": RestlessBandit, "mixed_lotteries": MixedLotteries,
            "intertemporal_choice": IntertemporalChoice}[name](n_trials=trials)


def index_correlation(case: str, *, linked: bool, n: int, seed: int) -> tuple[float, float]:
    """One simulated study of n synthetic people (STAI-T moving the case's parameter with
    slope 1 when `linked`): Pearson r and p between the trait and the index, signed so that
    the expected direction is positive."""
    from scipy import stats

    from ..experiments import SyntheticSpec, TraitLink, simulate_synthetic

    paradigm, param, index, sign = RECOVERY_CASES[case]
    exp = _paradigm(paradigm)
    links = (TraitLink(trait="STAI-T", param=param, slope=1.0),) if linked else ()
    recs = simulate_synthetic(exp, n, seed=seed, spec=SyntheticSpec(links=links))
    trait = np.array([x.metadata["STAI-T"] for x in recs], dtype=float)
    values = np.array([exp.behaviour(x)[index] for x in recs], dtype=float)
    ok = np.isfinite(values)
    r = stats.pearsonr(trait[ok], values[ok])
    return float(sign * r.statistic), float(r.pvalue)


def replicate_recovery(case: str, reps: int, *, n: int = 60, seed: int = 0) -> dict[str, Tally]:
    """Over `reps` studies: how often the planted link shows as r > 0.5, and how often a
    study with no link finds r significant at p < .05."""
    out = {"planted r > 0.5": Tally(), "null p < .05": Tally()}
    for k in range(reps):
        out["planted r > 0.5"].add(index_correlation(case, linked=True, n=n, seed=seed * 100_003 + k)[0] > 0.5)
        out["null p < .05"].add(index_correlation(case, linked=False, n=n, seed=seed * 100_003 + k)[1] < 0.05)
    return out


def fit_recovery(n: int, seed: int) -> float:
    """The two-doors task (learning rate raised by STAI-T): r between the true and the
    maximum-likelihood learning rate over n synthetic people."""
    from ..experiments import SyntheticSpec, TraitLink, behaviour_rows, simulate_synthetic

    exp = _two_doors(60)
    link = (TraitLink(trait="STAI-T", param="learning_rate", slope=1.0),)
    people = simulate_synthetic(exp, n, seed=seed, spec=SyntheticSpec(links=link), id_prefix="syn")
    rows = behaviour_rows(exp, people, fit=True)
    return float(np.corrcoef(rows["true:learning_rate"].astype(float), rows["fit:learning_rate"].astype(float))[0, 1])


# --- fingerprints of the code paths the bench records measured -------------------------

def _digest(obj) -> str:
    """A digest of numbers rounded to 6 significant digits (stable across BLAS builds, not
    across a change of what the code computes)."""
    import hashlib
    import json

    def norm(x):
        if isinstance(x, dict):
            return {str(k): norm(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, (bool, np.bool_)) or x is None or isinstance(x, str):
            return x if not isinstance(x, np.bool_) else bool(x)
        if isinstance(x, (int, float, np.integer, np.floating)):
            v = float(x)
            return None if not math.isfinite(v) else float(f"{v:.6g}")
        return str(x)

    return hashlib.sha256(json.dumps(norm(obj), sort_keys=True).encode()).hexdigest()[:16]


def _frame_numbers(frame: pd.DataFrame) -> dict:
    return {c: frame[c].tolist() for c in frame.columns if frame[c].dtype.kind in "fiub"}


def _fp_decomposition() -> str:
    out = {}
    for name, s in {"plain": Scenario("fp", experiments=3, participants=16, ind=0.05, persona_sd=0.2),
                    "form": Scenario("fp", experiments=2, participants=12, form_effect=0.03, form_control=True),
                    "strata": Scenario("fp", experiments=2, participants=24, singletons=4, pop=0.1),
                    "scales": Scenario("fp", experiments=3, participants=12, scales=(10, 1, 1)),
                    "response": Scenario("fp", experiments=2, participants=12, unequal_responses=True,
                                         weight="response")}.items():
        d = decompose_personas(simulate_table(s, 1), control=s.control, weight=s.weight)
        out[name] = _frame_numbers(d.to_frame())
    return _digest(out)


def _repeated_ids(n: int = 12) -> list[Participant]:
    """Two experiments of one study whose participant ids repeat (as in guenther2024's)."""
    return [Participant(study="s", experiment=f"s/e{e}", participant=str(i), text="",
                        metadata={"age": 20 + i + e}, metadata_text={"age": str(20 + i + e)},
                        source=SourceRef(file="<sim>", line=i + 1)) for e in (1, 2) for i in range(n)]


def _fp_identity() -> str:
    from ..analysis import compare_strategies
    from ..analysis import cr2_mean_estimate

    table = simulate_sessions(_repeated_ids(), ["none", "interview", "shuffled", "narrative", "shuffled-narrative"],
                              seed=2, ind=0.05)
    out = {by: _frame_numbers(decompose_personas(table, by=by).to_frame()) for by in ("study", "study-person")}
    # Person mode's estimator on a case with several clusters of unequal size.
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=30), rng.uniform(1, 3, 30)
    clusters = [np.arange(0, 18), *[np.array([k]) for k in range(18, 30)]]
    out["cr2"] = cr2_mean_estimate(x, clusters, w).model_dump()
    out["differences"] = _frame_numbers(compare_strategies(table, ["interview", "narrative"]).differences_frame())
    return _digest(out)


def _fp_trend() -> str:
    from ..analysis import post_training_misalignment

    out = {}
    for name in ("grid 3x3x3: uneven noise (x1, x1, x3), no trend",
                 "paper grid: recipe SD 0.2, shared bases, types, no trend"):
        s = replace(PAIR_SCENARIOS[name], experiments=3, participants=5, responses=2)
        out[name] = _frame_numbers(post_training_misalignment(*simulate_pairs(s, 3), n_boot=0).trend_frame())
    return _digest(out)


def _fp_planner() -> str:
    from ..analysis import plan_personas

    pilot = plan_personas(simulate_table(SCENARIOS["half without metadata, individual 0.03"], 5))
    return _digest({"components": _frame_numbers(pilot.components_frame()),
                    "power": [pilot.power("1%", n, k) for n in (40, 160) for k in (3, 10)],
                    "equivalence": [pilot.equivalence_power(n, k, draws=500) for n in (40, 400) for k in (2, 6)],
                    "need": [pilot.participants_for(0.03), pilot.participants_for_equivalence(0.8, 6)],
                    "truth": _true_plan(SCENARIOS["heterogeneity tau 0.2, K=10"], 0.1).power(0.1, 60, 10)})


def _fp_verdicts() -> str:
    out = []
    for name in ("unequal scales (one experiment x30), individual 1.5%", "population 0.1 + individual 0.05",
                 "null, persona SD 0.1"):
        v = decompose_personas(simulate_table(replace(SCENARIOS[name], participants=20), 4)).verdict()
        out.append([v.kind, v.p, v.row])
    return _digest(out)


def _fp_multiplicity() -> str:
    from ..analysis import compare_strategies

    s = replace(SCENARIOS["null, persona SD 0.1"], experiments=3, participants=12)
    c = compare_strategies(simulate_strategies(s, 6, extra=FOUR_STRATEGIES), ["interview", *FOUR_STRATEGIES])
    return _digest({"differences": _frame_numbers(c.differences_frame()), "ranking": _frame_numbers(c.ranking())})


def _fp_choices() -> str:
    from ..analysis import choice_prediction

    c = choice_prediction(simulate_choices(20, 10, randomised_labels=False, correct_model=True, seed=1), n_boot=50)
    return _digest({k: _frame_numbers(v) for k, v in c.frames().items()})


def _fp_agents() -> str:
    from ..analysis import agent_comparison

    people, agents, p_trials, a_trials = agents_tables(12, 12, 1, agents_like="copies")
    c = agent_comparison(people, agents, p_trials, a_trials, n_perm=19, seed=1)
    return _digest({"indices": [[i.index, i.p] for i in c.indices], "individual": [[m.on, m.p] for m in c.individual]})


def _fp_misalignment() -> str:
    from ..analysis import ModelPair, post_training_misalignment

    pm = post_training_misalignment(simulate_two_models({"a": 0.3, "b": 0.1}, n=20, seed=1),
                                    [ModelPair(base="base", post_trained="chat")], n_boot=50, seed=1).pairs[0]
    return _digest({"d": pm.per_experiment, "paper": pm.d_paper_interval, "pooled": pm.mean_paper_interval})


def _fp_recovery() -> str:
    return _digest({"index": [[index_correlation(case, linked=linked, n=20, seed=3) for linked in (True, False)]
                              for case in RECOVERY_CASES], "fit": fit_recovery(20, 3)})


FINGERPRINTS: dict[str, Callable[[], str]] = {
    "decomposition": _fp_decomposition, "identity": _fp_identity, "trend": _fp_trend, "planner": _fp_planner,
    "verdicts": _fp_verdicts, "multiplicity": _fp_multiplicity, "choices": _fp_choices, "agents": _fp_agents,
    "recovery": _fp_recovery, "misalignment": _fp_misalignment,
}


def fingerprint(section: str) -> str:
    """The digest of what a bench section's code path computes on a few fixed tables: a bench
    record is valid only while this is unchanged."""
    return FINGERPRINTS[section]()
