"""Importing: `module:attribute` or `path/to/file.py:attribute` for user-defined parts (no
registry), and the one lazy-export scheme surrogate's packages use (`lazy_exports`)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any


def lazy_exports(package: str, names: dict[str, str]):
    """A package's `__getattr__` and `__dir__` that import `name` from `names[name]` (a module
    relative to the package) on first use and keep it, so that importing the package stays
    light while every public name resolves. Packages list the same names under
    `typing.TYPE_CHECKING` for type checkers and IDEs."""
    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(names) | set(vars(sys.modules[package])))

    return __getattr__, __dir__


def load_object(spec: str) -> Any:
    """The attribute named after ':' in a module (dotted name) or a Python file."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"expected module:attribute or file.py:attribute, got {spec!r}")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        name = f"surrogate_user_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{target} has no attribute {attr!r}") from None
