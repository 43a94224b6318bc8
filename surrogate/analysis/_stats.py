"""Shared statistical pieces: the Estimate record and Cohen's d."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

CONFIDENCE = 0.95


class Estimate(BaseModel):
    """A point estimate with a 95% confidence interval, a p-value where one is defined, and
    the number of units it rests on."""

    model_config = ConfigDict(frozen=True)
    value: float
    lo: float
    hi: float
    p: float | None = None
    n: int
    se: float | None = None
    df: float | None = None  # of the t reference distribution; inf = normal

    def __str__(self) -> str:
        if not math.isfinite(self.value):
            return f"not defined (n={self.n})"
        if self.p is None:
            ci = " (no interval: too few units)" if not math.isfinite(self.lo) else f" [{self.lo:+.4f}, {self.hi:+.4f}]"
            return f"{self.value:+.4f}{ci} (n={self.n})"
        p = "p < 1e-4" if self.p < 1e-4 else f"p={self.p:.3g}"
        return f"{self.value:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}], {p} (n={self.n})"


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of mean(a) - mean(b) with the pooled SD sqrt((var_a + var_b) / 2)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else math.nan
