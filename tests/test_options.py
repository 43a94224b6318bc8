"""One option vocabulary: the models in surrogate.options are the Python keyword arguments and
the command line's flags, and a bad value is named as the caller spelled it."""

from __future__ import annotations

import inspect
import typing

import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.options import AnalysisArgs, AnalysisOptions, ScoringArgs, ScoringOptions


@pytest.mark.parametrize("model,args", [(ScoringOptions, ScoringArgs), (AnalysisOptions, AnalysisArgs)])
def test_the_typing_mirror_is_the_model(model, args):
    hints = typing.get_type_hints(args)
    assert list(hints) == list(model.model_fields)
    for name, field in model.model_fields.items():
        assert hints[name] == field.annotation, name


def _flags(command: str) -> set[str]:
    params = {p.name for p in next(c for c in app.registered_commands if (c.name or c.callback.__name__.replace(
        "_", "-")) == command).callback.__signature__.parameters.values()}
    return params


@pytest.mark.parametrize("command,model,skipped", [
    ("run", ScoringOptions, set()),
    ("compare-personas", ScoringOptions, set()),
    ("compare-personas", AnalysisOptions, {"n_boot", "resample_seed", "separate_labels"}),
    ("analyze", AnalysisOptions, set()),
    ("report", AnalysisOptions, set()),
])
def test_every_option_of_the_model_is_a_flag_of_the_command(command, model, skipped):
    assert set(model.model_fields) - skipped <= _flags(command)


def test_bad_values_are_named_as_the_caller_spelled_them(psych201, tmp_path):
    from pydantic import ValidationError

    from surrogate import run

    with pytest.raises(ValidationError, match="max_participants"):
        run(["demo-base"], psych201, "none", tmp_path / "a", max_participants=0)
    with pytest.raises(TypeError, match="unexpected keyword argument.*maxparticipants"):
        run(["demo-base"], psych201, "none", tmp_path / "b", maxparticipants=2)
    with pytest.raises(ValueError, match="stratify='age:1'"):
        run(["demo-base"], psych201, "none", tmp_path / "c", stratify="age:1")
    res = CliRunner().invoke(app, ["run", "--model", "demo-base", "--data", str(psych201), "--max-participants", "0",
                                   "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "--max-participants" in res.output and "max_participants" not in res.output
    res = CliRunner().invoke(app, ["run", "--model", "demo-base", "--data", str(psych201), "--stratify", "age:1",
                                   "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "--stratify age:1" in res.output
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_the_python_functions_are_typed():
    import surrogate

    for name in ("run", "analyze", "compare_personas", "report", "plan", "merge", "simulate", "finetune"):
        fn = getattr(surrogate, name)
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, name
