"""Behaviour indices that the planted parameters move.

Learning from feedback (bandits, reversal learning): mean reward, switch rate, win-stay
(staying after a better-than-usual outcome) and lose-shift (switching after a worse one);
with a higher learning rate people follow the last outcome more, so win-stay and lose-shift
both rise. Risky choice: how often the riskier lottery is taken, and how often a mixed
gamble (one with a possible loss) is accepted, which loss aversion lowers. Intertemporal
choice: how often the later reward is taken, and the indifference discount rate (the log of
the k at which choices switch from later to sooner), which a higher discount rate raises.
The fitted parameters of the generating model sit beside them (`fit_session`).
"""

from __future__ import annotations

import math

import numpy as np

from ._base import SessionRecord


def switch_rate(choices) -> float:
    if len(choices) < 2:
        return float("nan")
    return float(np.mean([a != b for a, b in zip(choices[:-1], choices[1:])]))


def learning_indices(record: SessionRecord) -> dict[str, float]:
    """Mean reward, switch rate, win-stay and lose-shift (a win: a reward above the session's
    median, or any reward where rewards are 0 or a constant win)."""
    rewards = np.array([f.reward if f.reward is not None else np.nan for f in record.feedback], dtype=float)
    out = {"mean_reward": float(np.nanmean(rewards)) if np.isfinite(rewards).any() else math.nan,
           "switch_rate": switch_rate(record.choices)}
    if len(rewards) < 3 or not np.isfinite(rewards).all():
        return {**out, "win_stay": math.nan, "lose_shift": math.nan}
    values = np.unique(rewards)
    win = rewards > 0 if len(values) <= 2 else rewards > np.median(rewards)
    stay = np.array([a == b for a, b in zip(record.choices[:-1], record.choices[1:])])
    w = win[:-1]
    out["win_stay"] = float(stay[w].mean()) if w.any() else math.nan
    out["lose_shift"] = float((~stay[~w]).mean()) if (~w).any() else math.nan
    return out


def lottery_indices(record: SessionRecord) -> dict[str, float]:
    """Riskier-lottery rate (the wider outcome range) and mixed-gamble acceptance (choosing
    the lottery whose loss is larger, when both can lose)."""
    risky, larger_loss = [], []
    for trial, choice in zip(record.trials, record.choices):
        outcomes = trial.info["outcomes"]
        k = trial.options.index(choice)
        ranges = [max(o) - min(o) for o in outcomes]
        risky.append(k == int(np.argmax(ranges)))
        losses = [min(o) for o in outcomes]
        larger_loss.append(k == int(np.argmin(losses)))
    return {"risky_rate": float(np.mean(risky)), "loss_acceptance": float(np.mean(larger_loss))}


def delay_indices(record: SessionRecord) -> dict[str, float]:
    """Later-reward rate, and the log indifference discount rate: per trial the k at which
    the two options are worth the same under hyperbolic discounting; the log-k threshold that
    best separates later (k below) from sooner choices."""
    later, logk = [], []
    for trial, choice in zip(record.trials, record.choices):
        amounts, delays = trial.info["amounts"], trial.info["delays"]
        k = trial.options.index(choice)
        j_late = int(np.argmax(delays))
        later.append(k == j_late)
        a_soon, a_late, d = amounts[1 - j_late], amounts[j_late], delays[j_late]
        logk.append(math.log(max((a_late / a_soon - 1) / d, 1e-6)))
    later_arr, logk_arr = np.array(later), np.array(logk)
    # The threshold with the fewest choices on its wrong side (later above it, sooner below).
    grid = np.unique(logk_arr)
    errors = [np.sum(later_arr & (logk_arr < g)) + np.sum(~later_arr & (logk_arr >= g)) for g in grid]
    threshold = float(grid[int(np.argmin(errors))]) if len(grid) else math.nan
    return {"later_rate": float(later_arr.mean()), "log_discount_threshold": threshold}
