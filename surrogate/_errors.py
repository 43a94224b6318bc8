"""Errors a user can act on, named as the user named the thing."""

from __future__ import annotations

from typing import Any


class OptionError(ValueError):
    """A bad value for an option: says which, by its Python name (the command line shows the
    flag, `--name`)."""

    def __init__(self, option: str, value: Any, problem: str):
        super().__init__(f"{option}={value!r}: {problem}")
        self.option, self.value, self.problem = option, value, problem
