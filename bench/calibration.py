"""Calibration of surrogate's estimators: simulated tables with known truth, run through the
same functions `surrogate compare-personas` / `analyze` / `plan` call, over many replications.

    python bench/calibration.py                 # 400 replications per scenario (~40 min, 2 cores)
    python bench/calibration.py --reps 100      # quicker, wider Monte-Carlo error
    python bench/calibration.py --only small    # scenarios whose name contains "small"
    python bench/calibration.py --csv out.csv   # also write the rows as CSV

Prints, per scenario, component and level (per-experiment rows, the pooled row in nats, the
pooled row in per cent of the no-persona NLL): the rejection rate of p < .05 (type-I error
where the component's truth is 0, power otherwise) and the coverage of the 95% CI, each with
its Monte-Carlo standard error; then the generation trend across model pairs, the choice
tests, the study planner against simulated power, and the agents-vs-people tests of
`surrogate compare-agents`.
Targets: type-I error in [0.025, 0.075], coverage in [0.92, 0.98].
"""

from __future__ import annotations

import argparse
import csv
import time

from surrogate.runner.calibration import (PAIR_SCENARIOS, PLANNER_CHECKS, SCENARIOS, _row_truth, check_planner,
                                          replicate_agents, replicate_choices, replicate_levels, replicate_trend,
                                          verdict)

SHORT = {"total": "total", "population_component": "population", "individual_component": "individual",
         "individual_content": "content"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--only", default="", help="run scenarios whose name contains this text")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--csv", default=None, help="write the decomposition rows here too")
    a = ap.parse_args()
    rows = []
    print(f"{'scenario':<52} {'component':<11} {'level':<16} {'rows':>6} {'truth':>7} "
          f"{'reject (p<.05)':>16} {'coverage':>16}  verdict")
    for name, s in SCENARIOS.items():
        if a.only not in name:
            continue
        t0 = time.time()
        for level, tallies in replicate_levels(s, a.reps, seed=a.seed).items():
            target = _row_truth(s, level)
            for comp, t in tallies.items():
                rej, cov = t["reject"], t["cover"]
                if not rej.hits:
                    continue
                v = verdict(s, level, comp, target[comp], rej, cov)
                cover = f"{cov.rate:>8.3f} ±{cov.mcse:.3f}" if cov.hits else "       -        "
                print(f"{name:<52} {SHORT[comp]:<11} {level:<16} {len(rej.hits):>6} {target[comp]:>7.3f} "
                      f"{rej.rate:>8.3f} ±{rej.mcse:.3f} {cover:>16}  {v}", flush=True)
                rows.append({"scenario": name, "component": SHORT[comp], "level": level, "rows": len(rej.hits),
                             "truth": round(target[comp], 4), "reject": round(rej.rate, 4),
                             "reject_mcse": round(rej.mcse, 4), "coverage": round(cov.rate, 4) if cov.hits else None,
                             "coverage_mcse": round(cov.mcse, 4) if cov.hits else None, "verdict": v})
        print(f"# {name}: {time.time() - t0:.0f} s", flush=True)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    print("\nmisalignment trend across generations (2 families x 3 generations x 19 experiments; "
          "two-stage, family fixed effects, t on n_pairs - n_families - 1 = 3 df)")
    for name, s in PAIR_SCENARIOS.items():
        if a.only not in name:
            continue
        for key, t in replicate_trend(s, a.reps, seed=a.seed).items():
            rej, cov = t["reject"], t["cover"]
            cover = f"coverage {cov.rate:.3f} ±{cov.mcse:.3f}" if cov.hits else ""
            status = ("size ok" if 0.025 <= rej.rate <= 0.075 else "SIZE OFF") if s.trend == 0 else "power"
            print(f"  {name:<48} {key:<24} reject {rej.rate:.3f} ±{rej.mcse:.3f}  {cover}  {status}", flush=True)

    if a.only in "choices":
        print("\nchoices (60 identical participants x 40 trials, p = 0.3)")
        for what, t in replicate_choices(a.reps, seed=a.seed).items():
            target = 0.05 if "tvd" in what else 0.0
            print(f"  {what:<40} {t.rate:.3f} ±{t.mcse:.3f} over {len(t.hits)} (target {target:.2f})", flush=True)

    if a.only in "planner":
        print("\nstudy planner: power of the pooled individual test at the scenario's design, simulated vs "
              "predicted (from the true components; from pilots of the same design: median, 10th-90th percentile, "
              "and how often the pilot's 80% interval holds the simulated power)")
        for name, effect in PLANNER_CHECKS.items():
            r = check_planner(name, effect, a.reps, max(20, a.reps // 10), seed=a.seed)
            ok = "ok" if abs(r["true_components"] - r["simulated"]) <= 0.05 else "OFF"
            print(f"  {name:<44} effect {effect:<6} simulated {r['simulated']:.3f} ±{r['mcse']:.3f}  "
                  f"predicted {r['true_components']:.3f} ({ok})  pilots {r['pilot_median']:.3f} "
                  f"[{r['pilot_p10']:.3f}, {r['pilot_p90']:.3f}], interval holds it {r['range_covers']:.2f}",
                  flush=True)

    if a.only in "agents":
        print("\nagents vs people (compare-agents; 40 people and 40 agents x 40 trials of a reversal task, "
              "199 permutations): independent = the same population, each agent unrelated to its person (the "
              "null of every test); copies = agent i plays person i's parameters; shifted = learning rates "
              "twice as high on the logit scale")
        for like in ("independent", "copies", "shifted"):
            for what, t in replicate_agents(a.reps if like == "independent" else max(50, a.reps // 4),
                                            agents_like=like, seed=a.seed).items():
                status = ("size ok" if 0.025 <= t.rate <= 0.075 else "SIZE OFF") if like == "independent" else "power"
                print(f"  {like:<12} {what:<36} reject {t.rate:.3f} ±{t.mcse:.3f} over {len(t.hits)}  {status}",
                      flush=True)


if __name__ == "__main__":
    main()
