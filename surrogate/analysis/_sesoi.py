"""The smallest effect of interest (light: the command line reads its default)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .._errors import OptionError


class Sesoi(BaseModel):
    """The smallest effect of interest for equivalence tests. `%`: per cent of the
    experiment's no-persona NLL per response (the default, 1%: the same meaning in a study at
    0.5 nats per response and one at 235); `nats`: nats per response; `nats/token`: nats per
    response token (converted per experiment by its mean tokens per response)."""

    model_config = ConfigDict(frozen=True)
    value: float
    unit: Literal["%", "nats", "nats/token"] = "%"

    @classmethod
    def parse(cls, text: "str | float | Sesoi") -> "Sesoi":
        """`1%`, `0.01` or `0.01nats` (per response), `0.002/token` or `0.002nats/token`."""
        if isinstance(text, Sesoi):
            return text
        if isinstance(text, (int, float)):
            value, unit = float(text), "nats"
        else:
            t = text.strip().replace(" ", "")
            unit = "%" if t.endswith("%") else "nats/token" if t.endswith("/token") else "nats"
            number = t.removesuffix("%").removesuffix("/token").removesuffix("nats")
            try:
                value = float(number)
            except ValueError:
                raise OptionError("sesoi", text, "expected a per cent (1%), nats per response (0.01) or "
                                 "nats per token (0.002/token)") from None
        if not (math.isfinite(value) and value > 0):
            raise OptionError("sesoi", text, "the smallest effect of interest must be a positive number")
        return cls(value=value, unit=unit)

    def margin(self, none_nll: float, tokens_per_response: float) -> float:
        """The margin in nats per response for an experiment with this no-persona NLL and
        this many tokens per response."""
        if self.unit == "%":
            return self.value / 100 * none_nll
        if self.unit == "nats/token":
            return self.value * tokens_per_response
        return self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.unit == "%" else f"{self.value:g} {self.unit}"


# Smallest effect of interest for equivalence tests: 1% of the experiment's no-persona NLL
# per response (about a 1% change in the probability of each response at 1 nat; the same
# relative size in studies whose NLL per response differs a hundredfold).
DEFAULT_SESOI = Sesoi(value=1.0, unit="%")
