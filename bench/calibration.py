"""Calibration of surrogate's estimators: simulated tables with known truth, run through the
same functions `surrogate compare-personas` / `analyze` / `plan` / `compare-agents` call,
over many replications. Each section writes its rows to bench/results/calibration.json with
a fingerprint of its code path; `tests/test_bench_records.py` checks every recorded figure
against its target and that the fingerprint still matches the code.

    python bench/calibration.py --only trend              # one section (default replications)
    python bench/calibration.py --only verdicts --reps 200
    python bench/calibration.py                           # every section (several hours on 2 cores)
    python bench/calibration.py --table                   # the docs' table, from the record

Sections: decomposition (type-I error, coverage and power of every component, per
experiment and pooled), identity (real studies whose ids repeat across experiments),
trend (misalignment across generations and sizes on grids like the paper's), planner
(predicted against simulated power, detection and equivalence, participants as recruited),
verdicts (the one-line verdict's error rates), multiplicity (four strategies under a global
null), choices, agents, recovery, misalignment, oracle. Targets: type-I error in
[0.03, 0.07], coverage in [0.92, 0.98] (each within two Monte-Carlo SEs), predictions within
0.05 (+ two Monte-Carlo SEs) of simulation.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import _record
import numpy as np
from surrogate.data import shared_psych201
from surrogate.testing import calibration as cal

SHORT = {"total": "total", "population_component": "population", "individual_component": "individual",
         "individual_content": "content"}
SHARED = shared_psych201(_record.ROOT)
# The trend scenarios' tables are made small (the unit is the pair; its d needs only a few
# experiments), so that a thousand replications of the paper's grid take minutes, not hours.
TREND_TABLE = dict(experiments=6, participants=8, responses=3)
REPS = {"decomposition": 1000, "identity": 400, "trend": 1000, "planner": 400, "verdicts": 1000,
        "multiplicity": 600, "choices": 1000, "agents": 1000, "recovery": 400, "misalignment": 1000, "oracle": 400}


def decomposition(reps: int, seed: int) -> list[dict]:
    rows = []
    for name, s in cal.SCENARIOS.items():
        t0 = time.time()
        for level, tallies in cal.replicate_levels(s, reps, seed=seed).items():
            target = cal._row_truth(s, level)
            for comp, t in tallies.items():
                rej, cov = t["reject"], t["cover"]
                if not rej.hits:
                    continue
                note = cal.verdict(s, level, comp, target[comp], rej, cov)
                truth = round(target[comp], 4)
                test = f"{SHORT[comp]} ({level})"
                biased = note.startswith("biased")
                if biased:
                    kind = "known bias"
                elif s.scales and level == "pooled":
                    kind = "known limitation"  # raw nats across scales: the summary warns, the verdict reads the relative row
                elif target[comp] == 0 and (level != "experiments" or (s.tau == 0 and not s.scales)):
                    kind = "type-I"
                elif target[comp] == 0:
                    kind = "info"  # each experiment's own effect is random under tau > 0
                else:
                    kind = "power"
                rows.append(_record.row(name, f"reject: {test}", kind, rej.rate, len(rej.hits), truth=truth, note=note))
                if cov.hits:
                    cover_kind = ("known bias" if biased else "known limitation" if s.scales and level == "pooled"
                                  else "coverage")  # the raw-nats pooled row across scales, as its tests above
                    rows.append(_record.row(name, f"coverage: {test}", cover_kind, cov.rate, len(cov.hits), truth=truth))
        print(f"# {name}: {time.time() - t0:.0f} s", flush=True)
    return rows


def identity(reps: int, seed: int) -> list[dict]:
    """Real participants of two studies whose ids repeat across their experiments, under a
    null (no individual information; persona effects SD 0.2), through decompose_personas and
    compare_strategies as the CLI calls them."""
    from surrogate.analysis import compare_strategies, decompose_personas
    from surrogate.data import load

    studies = ["guenther2024associations_sentences_texts", "guenther2024substitutions"]
    people = load(SHARED, studies=studies).participants
    t = {k: cal.Tally() for k in ("per experiment", "pooled relative", "study-person per experiment",
                                  "study-person not estimable", "difference per experiment", "difference undefined p",
                                  "unpaired")}
    for k in range(reps):
        table = cal.simulate_sessions(people, ["none", "interview", "shuffled", "narrative", "shuffled-narrative"],
                                      seed=seed * 100_003 + k)
        d = decompose_personas(table)
        for r in d.rows:
            t["per experiment"].add(r.individual_component.p < 0.05)
            t["unpaired"].add(r.n_unpaired > 0)
        t["pooled relative"].add(d.pooled_row("pooled_relative").individual_component.p < 0.05)
        for r in decompose_personas(table, by="study-person").rows:
            p = r.individual_component.p
            t["study-person not estimable"].add(p is None)
            if p is not None:
                t["study-person per experiment"].add(p < 0.05)
        for r in compare_strategies(table, ["interview", "narrative"]).differences[0].rows:
            p = r.individual_component.p
            t["difference undefined p"].add(p is None)
            if p is not None:
                t["difference per experiment"].add(p < 0.05)
    scenario = "guenther2024 (ids repeat across experiments), null"
    return [_record.row(scenario, "reject: individual (per experiment)", "type-I", t["per experiment"].rate,
                        len(t["per experiment"].hits)),
            _record.row(scenario, "reject: individual (pooled relative, K=2)", "type-I", t["pooled relative"].rate,
                        len(t["pooled relative"].hits)),
            _record.row(scenario, "reject: individual (per experiment, --by study-person)", "info",
                        t["study-person per experiment"].rate, len(t["study-person per experiment"].hits),
                        note="ids here are different people, so clustering them is valid but conservative"),
            _record.row(scenario, "--by study-person: individual component not estimable", "info",
                        t["study-person not estimable"].rate, len(t["study-person not estimable"].hits),
                        note="each experiment's swaps and the shared ids link the sessions into a few large "
                             "clusters, too few for a t interval: the design cannot tell people apart"),
            _record.row(scenario, "reject: interview - narrative difference (per experiment)", "type-I",
                        t["difference per experiment"].rate, len(t["difference per experiment"].hits)),
            _record.row(scenario, "difference rows with no p", "at most", t["difference undefined p"].rate,
                        len(t["difference undefined p"].hits), hi=0.0),
            _record.row(scenario, "experiments reporting unpaired participants", "at most", t["unpaired"].rate,
                        len(t["unpaired"].hits), hi=0.0)]


def trend(reps: int, seed: int) -> list[dict]:
    rows = []
    for name, s in cal.PAIR_SCENARIOS.items():
        t0 = time.time()
        planted = s.trend or s.size_trend
        n = reps if not planted else max(100, reps // 4)
        for key, t in cal.replicate_trend(replace(s, **TREND_TABLE), n, seed=seed).items():
            untestable = t["not testable"]
            if untestable.rate == 1:
                rows.append(_record.row(name, f"{key}: not testable", "info", 1.0, len(untestable.hits)))
                continue
            truth = s.trend if key.startswith("generation") else s.size_trend
            kind = "power" if truth else "type-I"
            rows.append(_record.row(name, f"reject: {key}", kind, t["reject"].rate, len(t["reject"].hits),
                                    truth=truth))
            if t["cover"].hits:
                rows.append(_record.row(name, f"coverage of 0: {key}", "coverage", t["cover"].rate,
                                        len(t["cover"].hits), truth=0.0))
        print(f"# {name}: {time.time() - t0:.0f} s", flush=True)
    return rows


def planner(reps: int, seed: int) -> list[dict]:
    rows = []
    pilots = max(20, reps // 10)
    for name, effect in cal.PLANNER_CHECKS.items():
        r = cal.check_planner(name, effect, reps, pilots, seed=seed)
        rows.append(_record.row(name, f"detection power, effect {effect} nats (true components)", "agreement",
                                r["simulated"], reps, predicted=round(r["true_components"], 4),
                                pilots=[round(r["pilot_p10"], 3), round(r["pilot_median"], 3), round(r["pilot_p90"], 3)],
                                interval_holds=round(r["range_covers"], 3)))
        print(f"# planner {name}", flush=True)
    for name, sesoi in cal.EQUIVALENCE_CHECKS.items():
        r = cal.check_equivalence_planner(name, sesoi, reps, pilots, seed=seed)
        rows.append(_record.row(name, f"equivalence power within {sesoi} (true components)", "agreement",
                                r["simulated"], reps, predicted=round(r["true_components"], 4),
                                pilots=[round(r["pilot_p10"], 3), round(r["pilot_median"], 3), round(r["pilot_p90"], 3)]))
        rows.append(_record.row(name, f"pilots that find equivalence within {sesoi} not reachable at their tau^2",
                                "info", r["pilot_unreachable"], pilots))
        print(f"# equivalence {name}", flush=True)
    name = "half without metadata, individual 0.03"
    r = cal.check_recruitment(name, 0.03, reps, seed=seed)
    rows.append(_record.row(name, f"power when recruiting the recommended {r['recommended']:.0f} per experiment "
                                  f"({r['usable_share']:.0%} usable)", "agreement", r["achieved"], reps, predicted=0.8,
                            pilot_recommends=r["pilot_recommends"]))
    return rows


VERDICT_SCENARIOS = {
    "unequal scales (one experiment x30), null": ("individual or negative", "type-I"),
    "unequal scales (one experiment x30), individual 1.5%": ("individual", "power"),
    "population 0.1, no individual information": ("individual or negative", "type-I"),
    "individual -0.05 (the own persona misleads)": ("negative", "power"),
    "individual at the SESOI (1% = 0.03 nats)": ("TOST alone", "type-I"),
}


def verdicts(reps: int, seed: int) -> list[dict]:
    scenarios = {
        "unequal scales (one experiment x30), null": cal.SCENARIOS["unequal scales (one experiment x30), null"],
        "unequal scales (one experiment x30), individual 1.5%":
            cal.SCENARIOS["unequal scales (one experiment x30), individual 1.5%"],
        "population 0.1, no individual information": cal.Scenario("pop", pop=0.1, persona_sd=0.2),
        "individual -0.05 (the own persona misleads)": cal.Scenario("neg", ind=-0.05, persona_sd=0.2),
        "individual at the SESOI (1% = 0.03 nats)": cal.Scenario("edge", ind=0.03, persona_sd=0.1, participants=200),
    }
    rows = []
    for name, s in scenarios.items():
        tallies = cal.replicate_verdicts(s, reps, seed=seed)
        main, kind = VERDICT_SCENARIOS[name]
        rows.append(_record.row(name, f"verdict: {main}", kind, tallies[main].rate, reps))
        if name.startswith("individual at the SESOI"):
            rows.append(_record.row(name, "verdict: equivalent (TOST and prediction interval)", "at most",
                                    tallies["equivalent"].rate, reps, hi=0.07))
        for other in ("individual", "negative", "equivalent", "no evidence"):
            if other != main:
                rows.append(_record.row(name, f"verdict: {other}", "info", tallies[other].rate, reps))
        print(f"# verdicts {name}", flush=True)
    return rows


def multiplicity(reps: int, seed: int) -> list[dict]:
    s = cal.SCENARIOS["null, persona SD 0.1"]
    t = cal.replicate_multiplicity(s, reps, seed=seed)
    scenario = "four strategies, none informative (global null)"
    return [_record.row(scenario, "some verdict claims an individual effect (Holm over strategies)", "type-I",
                        t["any verdict, Holm"].rate, reps),
            _record.row(scenario, "some strategy's p < .05 (unadjusted)", "info", t["any verdict, unadjusted"].rate, reps),
            _record.row(scenario, "some pairwise difference p < .05 (Holm over the 6 pairs)", "at most",
                        t["any difference, Holm"].rate, reps, hi=0.07),
            _record.row(scenario, "some pairwise difference p < .05 (unadjusted)", "info",
                        t["any difference, unadjusted"].rate, reps),
            _record.row(scenario, "interview - narrative individual difference, p < .05 (narrative's form helps "
                        "everyone by 0.05)", "type-I", t["interview - narrative"].rate,
                        len(t["interview - narrative"].hits))]


def misalignment(reps: int, seed: int) -> list[dict]:
    """Coverage of a planted misalignment d = 0.3 (2 experiments x 80 participants)."""
    t = cal.replicate_misalignment(reps, seed=seed)
    return [_record.row("planted d 0.3, 2 experiments x 80 participants", f"coverage: {name}", "coverage", x.rate,
                        len(x.hits), truth=0.3) for name, x in t.items()]


def _oracle_decomposition(true_links: str, n: int, seed: int):
    """Synthetic people in the lottery task; an oracle scorer (the cognitive model itself,
    believing that anxiety raises loss aversion, slope 0.6) scores them under none, interview
    and shuffled personas through `surrogate run`; the decomposition as compare-personas
    makes it."""
    import tempfile

    from surrogate.analysis import decompose_personas
    from surrogate.experiments import MixedLotteries, OracleBackend, ProspectTheory, SyntheticSpec, TraitLink
    from surrogate.jobs.run import run
    from surrogate.jobs.simulate import read_sessions, simulate

    believed = SyntheticSpec(links=(TraitLink(trait="STAI-T", param="loss_aversion", slope=0.6),))
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate(MixedLotteries(n_trials=40), [f"synthetic:{true_links}"], n, seed=seed, out=Path(tmp) / "sim",
                       fit=False)
        oracle = OracleBackend(read_sessions(sim.out), ProspectTheory, believed)
        result = run([oracle], sim.out, "none,interview,shuffled", Path(tmp) / "run", seed=seed, choices=False)
        return decompose_personas(result.responses)


def oracle(reps: int, seed: int) -> list[dict]:
    """The oracle gives the persona decomposition a ground truth on real scoring code paths."""
    rows = []
    for links, kind, what in (("none", "type-I", "no link (the oracle's belief is wrong)"),
                              ("STAI-T>loss_aversion=0.6", "power", "the link the oracle believes")):
        hits = [_oracle_decomposition(links, 60, seed * 100_003 + k).pooled.individual_component.p < 0.05
                for k in range(reps)]
        rows.append(_record.row(f"60 synthetic people, lotteries: {what}", "reject: individual (p < .05)", kind,
                                float(np.mean(hits)), reps))
        print(f"# oracle {links}", flush=True)
    return rows


def _fp_oracle() -> str:
    d = _oracle_decomposition("STAI-T>loss_aversion=0.6", 20, 1)
    return cal._digest(cal._frame_numbers(d.to_frame()))


def fingerprint(section: str) -> str:
    """The section's fingerprint: the package's (surrogate.testing.calibration) or, for a
    section that runs through the jobs, this bench's own."""
    return _fp_oracle() if section == "oracle" else cal.fingerprint(section)


def recovery(reps: int, seed: int) -> list[dict]:
    """Behaviour indices and maximum-likelihood fits recover planted trait links (60 people
    per study), and find none where there is none."""
    rows = []
    for case in cal.RECOVERY_CASES:
        t = cal.replicate_recovery(case, reps, seed=seed)
        rows.append(_record.row(case, "studies where the planted link shows as r > 0.5 (slope 1)", "at least",
                                t["planted r > 0.5"].rate, reps, lo=0.95))
        rows.append(_record.row(case, "studies with no link where r is significant (p < .05)", "type-I",
                                t["null p < .05"].rate, reps))
        print(f"# recovery {case}", flush=True)
    fits = [cal.fit_recovery(150, seed * 100_003 + k) for k in range(max(20, reps // 20))]
    rows.append(_record.row("two doors (learning rate raised by STAI-T), 150 people", "studies where the fitted "
                            "learning rate follows the true one with r > 0.6", "at least",
                            float(np.mean(np.array(fits) > 0.6)), len(fits), lo=0.95,
                            note=f"median r {np.median(fits):.2f}"))
    return rows


def choices(reps: int, seed: int) -> list[dict]:
    t = cal.replicate_choices(reps, seed=seed)
    scenario = "60 identical participants x 40 trials, p = 0.3"
    return [_record.row(scenario, "TVD test rejects a correct model", "type-I", t["tvd rejects a correct model"].rate,
                        reps),
            _record.row(scenario, "individual tracking reported with labels randomised per participant", "at most",
                        t["tracking reported, randomised labels"].rate, reps, hi=0.0)]


def agents(reps: int, seed: int) -> list[dict]:
    rows = []
    for like in ("independent", "copies", "shifted"):
        n = reps if like == "independent" else max(50, reps // 4)
        for what, t in cal.replicate_agents(n, agents_like=like, seed=seed).items():
            rows.append(_record.row(f"agents {like}", f"reject: {what}", "type-I" if like == "independent" else "power",
                                    t.rate, len(t.hits)))
        print(f"# agents {like}", flush=True)
    return rows


SECTIONS = {"decomposition": decomposition, "identity": identity, "trend": trend, "planner": planner,
            "verdicts": verdicts, "multiplicity": multiplicity, "choices": choices, "agents": agents,
            "recovery": recovery, "misalignment": misalignment, "oracle": oracle}


SECTION_TITLES = {
    "decomposition": "The persona decomposition: every component, per experiment and pooled "
                     "(default design 6 experiments x 60 participants x 30 responses)",
    "identity": "Real studies whose participant ids repeat across experiments (guenther2024), under a null",
    "trend": "Misalignment trend across generations and sizes, on grids shaped like the paper's",
    "planner": "surrogate plan: predicted against simulated power",
    "verdicts": "The one-line verdict",
    "multiplicity": "Several strategies under a global null",
    "choices": "Choice prediction",
    "agents": "compare-agents: agents against people (40 + 40 x 40 trials of the reversal task, 199 permutations)",
    "recovery": "Custom studies: behaviour indices and fits recover planted trait links (60 people per study)",
    "misalignment": "Post-training misalignment: intervals of the per-participant d and of the paper's d",
    "oracle": "The oracle scorer (the cognitive model itself) through surrogate run: the decomposition's ground truth",
}
TARGET_TEXT = {"type-I": "0.03–0.07", "coverage": "0.92–0.98", "power": "power", "known bias": "known bias",
               "known limitation": "known limitation", "info": "reported"}


def _target(r: dict) -> str:
    if r["kind"] == "agreement":
        return f"predicted {r['predicted']:.3f}"
    if r["kind"] == "at most":
        return f"≤ {r['hi']}"
    if r["kind"] == "at least":
        return f"≥ {r['lo']}"
    return TARGET_TEXT[r["kind"]]


def table(path: Path = _record.RESULTS / "calibration.json") -> str:
    """The calibration tables in Markdown, from the record: one per section, every row (those
    without a target as `reported`), with how the section was made."""
    record = json.loads(path.read_text())
    out = []
    for section, data in record["sections"].items():
        out += [f"### {section}: {SECTION_TITLES.get(section, section)}", "",
                f"`{data['command']}` ({data['reps']} replications, seed {data['seed']}, {data['seconds']} s on "
                f"{data['machine']}, {data['date']}, commit {data['commit']}; fingerprint `{data['fingerprint']}`)", "",
                "| scenario | test | n | rate ± MC SE | target | met | note |", "|---|---|---|---|---|---|---|"]
        for r in data["rows"]:
            met = {True: "yes", False: "**no**", None: ""}[r["pass"]]
            note = str(r.get("note", "")).replace("|", "\\|")
            if r.get("truth") not in (None, 0, 0.0):
                note = f"truth {r['truth']:g}" + (f"; {note}" if note else "")
            out.append(f"| {r['scenario']} | {r['test']} | {r['n']} | {r['rate']:.3f} ± {r['mcse']:.3f} "
                       f"| {_target(r)} | {met} | {note} |")
        out.append("")
    return "\n".join(out).rstrip("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated sections (default: all): " + ", ".join(SECTIONS))
    ap.add_argument("--reps", type=int, default=None, help="replications (default per section: "
                    + ", ".join(f"{k} {v}" for k, v in REPS.items()) + ")")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--table", action="store_true", help="print the Markdown table from the record and stop")
    a = ap.parse_args()
    if a.table:
        print(table())
        return
    wanted = [s.strip() for s in a.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s) {sorted(unknown)}; sections: {', '.join(SECTIONS)}")
    for section in wanted:
        reps = a.reps or REPS[section]
        t0 = time.time()
        rows = SECTIONS[section](reps, a.seed)
        path = _record.write("calibration", section, rows, fingerprint=fingerprint(section), reps=reps,
                             seed=a.seed, seconds=time.time() - t0)
        failed = [r for r in rows if r["pass"] is False]
        for r in rows:
            mark = {True: "ok", False: "MISSED", None: ""}[r["pass"]]
            print(f"{section:<13} {r['scenario'][:50]:<50} {r['test'][:60]:<60} {r['rate']:.3f} ±{r['mcse']:.3f} "
                  f"(n={r['n']}) {r['kind']} {mark}", flush=True)
        print(f"# {section}: {time.time() - t0:.0f} s, {len(failed)} row(s) missed their target; written to {path}",
              flush=True)


if __name__ == "__main__":
    main()
