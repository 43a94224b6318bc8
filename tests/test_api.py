"""The top-level API: every function a command has is there, typed for IDEs (imported under
TYPE_CHECKING as well as lazily), and `import surrogate` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import surrogate

INIT = Path(surrogate.__file__)


def test_every_lazy_name_resolves_and_is_visible_to_type_checkers():
    from surrogate import _API

    tree = ast.parse(INIT.read_text())
    typed = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.If)
             and getattr(node.test, "id", None) == "TYPE_CHECKING" for imp in node.body
             if isinstance(imp, ast.ImportFrom) for a in imp.names}
    assert set(_API) == typed
    for name in _API:
        assert callable(getattr(surrogate, name)), name
    assert set(surrogate.__all__) == {"__version__", *_API}


def test_every_command_has_its_function():
    from surrogate import _API
    from surrogate.cli import app

    import typer

    group = typer.main.get_command(app)
    commands = ({n.replace("-", "_") for n in group.commands} - {"organisms", "grid"}
                | {"build_organisms", "read_grid", "grid_script"})
    commands = {"import_table" if c == "import" else c for c in commands}
    assert commands <= set(_API), commands - set(_API)
    assert "default_job" in _API


def test_importing_the_package_does_not_import_torch():
    code = "import sys, surrogate; surrogate.__version__; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
