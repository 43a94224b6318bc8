"""Closed-loop play: cost of tokenizing the history, windowed (GrowingContext) against
encoding the whole history every trial, on the same agents, people and seeds.

    python bench/play_bench.py                       # organism-base, restless bandit, 300 trials
    python bench/play_bench.py --model PATH --device cuda --agents 64

Prints wall time, trials per second, the characters tokenized, the seconds spent in
tokenization, and whether both modes made the same choices with the same probabilities.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="organism-base")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--agents", type=int, default=16)
    ap.add_argument("--trials", type=int, default=300)
    args = ap.parse_args()

    from surrogate.agents import _play
    from surrogate.experiments import RestlessBandit, SyntheticSpec
    from surrogate.models import ModelSpec, load_backend
    from surrogate.models._encode import GrowingContext
    from surrogate.personas import Interview

    backend = load_backend(ModelSpec.parse(args.model, device=args.device))
    exp = RestlessBandit(n_trials=args.trials)
    people = _play.simulated_people(exp, args.agents, seed=0, spec=SyntheticSpec(), id_prefix="bench")
    conditionings = Interview().render(people)
    encode_seconds = 0.0
    real_context = GrowingContext.context

    def timed(self, transcript, system=None):
        nonlocal encode_seconds
        t = time.perf_counter()
        try:
            return real_context(self, transcript, system)
        finally:
            encode_seconds += time.perf_counter() - t

    GrowingContext.context = timed
    results = {}
    for window in (False, True):
        encode_seconds = 0.0
        counts: dict[str, int] = {}
        t = time.perf_counter()
        records, exact = _play._play_batch(exp, backend, people, conditionings, range(args.agents), 0, "sample",
                                           window=window, counts=counts)
        wall = time.perf_counter() - t
        results[window] = records
        name = "windowed" if window else "whole history"
        print(f"{name:>14}: {wall:7.1f} s wall, {args.agents * args.trials / wall:7.1f} trials/s, "
              f"tokenizer {encode_seconds:6.2f} s on {counts['encoded_chars']:,} characters "
              f"(whole histories: {counts['encoded_chars_without_reuse']:,}); model ran "
              f"{counts['processed']:,} tokens; contexts equal the finished transcripts': {exact}")
    same = all(a.choices == b.choices for a, b in zip(results[False], results[True]))
    gap = max(float(np.max(np.abs(np.subtract(a.option_logprobs, b.option_logprobs))))
              for a, b in zip(results[False], results[True]))
    print(f"same choices: {same}; largest option log-probability difference {gap:.1e}")
    print(f"model: {args.model} on {backend.device}; {args.agents} agents x {args.trials} trials of {exp.name}")


if __name__ == "__main__":
    main()
