"""Probabilistic reversal learning (as in Cools, Clark, Owen & Robbins, 2002): one of two
doors usually hides a prize, and which one it is reverses every 20 trials."""

from dataclasses import dataclass
from typing import ClassVar

from surrogate.experiments import Feedback, QLearner, TraitLink, Trial

DOORS = ("left door", "right door")


@dataclass(frozen=True)
class TwoDoors:
    name: str = "two_doors"
    n_trials: int = 60
    p_prize: float = 0.8
    cognitive_model: ClassVar = QLearner  # how synthetic participants choose
    default_links: ClassVar = (TraitLink(trait="STAI-T", param="learning_rate", slope=0.8),)

    def session(self, rng):
        return DoorsSession(self, rng)


class DoorsSession:
    def __init__(self, spec, rng):
        self.spec, self.rng, self.t, self.good = spec, rng, 0, int(rng.integers(2))
        self.instructions = ("Behind one of two doors there is usually a prize worth 100 points. "
                             "Which door that is can change. Win as many prizes as you can.")

    def next_trial(self):
        if self.t == self.spec.n_trials:
            return None
        self.t += 1
        if self.t % 20 == 1 and self.t > 1:
            self.good = 1 - self.good  # reversal
        return Trial(prompt=f"Trial {self.t}: you open the", options=DOORS)

    def respond(self, choice):
        p = self.spec.p_prize if DOORS.index(choice) == self.good else 1 - self.spec.p_prize
        win = self.rng.random() < p
        return Feedback(text=" and find a prize." if win else " and find nothing.", reward=100.0 * win)
