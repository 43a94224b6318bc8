"""Calibration of surrogate's estimators: simulated tables with known truth, run through the
same functions `surrogate compare-personas` / `analyze` call, over many replications.

    python bench/calibration.py                 # 400 replications per scenario (~25 min, 2 cores)
    python bench/calibration.py --reps 100      # quicker, wider Monte-Carlo error
    python bench/calibration.py --only small    # scenarios whose name contains "small"

Prints, per scenario, component and level (per-experiment rows, pooled random-effects row):
the rejection rate of p < .05 (type-I error where the component's truth is 0, power
otherwise) and the coverage of the 95% CI, each with its Monte-Carlo standard error.
Targets: type-I error in [0.025, 0.075], coverage in [0.92, 0.98].
"""

from __future__ import annotations

import argparse
import time

from surrogate.runner.calibration import SCENARIOS, replicate_choices, replicate_levels, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--only", default="", help="run scenarios whose name contains this text")
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()
    print(f"{'scenario':<44} {'component':<13} {'level':<11} {'rows':>6} {'truth':>7} "
          f"{'reject (p<.05)':>16} {'coverage':>16}  verdict")
    for name, s in SCENARIOS.items():
        if a.only not in name:
            continue
        t0 = time.time()
        target = truth(s)
        for level, tallies in replicate_levels(s, a.reps, seed=a.seed).items():
            for comp, t in tallies.items():
                rej, cov = t["reject"], t["cover"]
                if not rej.hits:
                    continue
                verdict = []
                if s.control == "population" and comp == "individual_component":
                    verdict.append("biased by design: includes persona completeness (README)")
                elif target[comp] == 0 and (level == "pooled" or s.tau == 0):
                    verdict.append("size ok" if 0.025 <= rej.rate <= 0.075 else "SIZE OFF")
                if cov.hits and not verdict[-1:] == ["biased by design: includes persona completeness (README)"]:
                    verdict.append("coverage ok" if 0.92 <= cov.rate <= 0.98 else "COVERAGE OFF")
                short = {"total": "total", "population_component": "population",
                         "individual_component": "individual"}[comp]
                print(f"{name:<44} {short:<13} {level:<11} {len(rej.hits):>6} {target[comp]:>7.3f} "
                      f"{rej.rate:>8.3f} ±{rej.mcse:.3f} "
                      f"{(f'{cov.rate:>8.3f} ±{cov.mcse:.3f}' if cov.hits else '       -        '):>16}  "
                      f"{', '.join(verdict)}", flush=True)
        print(f"# {name}: {time.time() - t0:.0f} s", flush=True)
    if a.only in "choices":
        print("\nchoices (60 identical participants x 40 trials, p = 0.3)")
        for what, t in replicate_choices(a.reps, seed=a.seed).items():
            target = 0.05 if "tvd" in what else 0.0
            print(f"  {what:<40} {t.rate:.3f} ±{t.mcse:.3f} over {len(t.hits)} (target {target:.2f})", flush=True)


if __name__ == "__main__":
    main()
