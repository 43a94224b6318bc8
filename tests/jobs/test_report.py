"""`surrogate report`: every figure the runs support is drawn, is a valid image of sensible
size, is embedded in the HTML, and has its table beside it."""

from __future__ import annotations

import base64
import html
import io
import re

import matplotlib.image as mpimg
import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.models import HashBackend
from surrogate.jobs.run import run

from ..conftest import PSYCH201

STUDIES = ["thoma2025problearn", "guenther2022relational", "busch2024_stroop"]


def _check_png(data: bytes) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(io.BytesIO(data), format="png")
    h, w = img.shape[:2]
    assert 400 <= w <= 3000 and 250 <= h <= 4000, (w, h)
    assert img[..., :3].std() > 0.05  # not blank


MODELS = [("small-base", False), ("small-it", True), ("large-base", False), ("large-it", True)]
EXPECTED = {"nll_by_size", "nll_by_study", "misalignment", "generation_trend", "misalignment_domains", "metadata_benefit",
            "choice_rates", *(f"persona_{m}" for m, _ in MODELS)}


@pytest.fixture(scope="module")
def made(psych201, qwen_dir, tmp_path_factory):
    """A report over four toy models in two pairs, with closed-set choices: (folder, page, CLI output)."""
    tmp = tmp_path_factory.mktemp("report")
    run([HashBackend(n, chat=c) for n, c in MODELS], psych201, "none,interview,shuffled", tmp / "run",
        studies=STUDIES, max_participants=12)
    # Closed-set choices need a model that scores options (a real HF checkpoint, tiny).
    run([f"tiny={qwen_dir}"], psych201, "none", tmp / "choices", studies=["busch2024_stroop"],
        max_participants=6, chat="off", device="cpu")
    pairs = tmp / "pairs.toml"
    pairs.write_text(
        '[[pairs]]\nbase = "small-base"\npost_trained = "small-it"\nfamily = "Toy"\ngeneration = "1"\n'
        'post_training = "instruct"\nsize_b = 0.5\n'
        '[[pairs]]\nbase = "large-base"\npost_trained = "large-it"\nfamily = "Toy"\ngeneration = "2"\n'
        'post_training = "instruct"\nsize_b = 7\n')
    res = CliRunner().invoke(app, ["report", str(tmp / "run"), str(tmp / "choices"), "--pairs", str(pairs),
                                   "--categories", str(PSYCH201 / "categories.csv"), "--out", str(tmp / "rep")])
    assert res.exit_code == 0, res.output
    return tmp / "rep", (tmp / "rep" / "report.html").read_text(), res.output


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_figure_is_drawn_with_its_table(made, name):
    folder, page, _ = made
    _check_png((folder / "figures" / f"{name}.png").read_bytes())
    assert (folder / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert not pd.read_csv(folder / "tables" / f"{name}.csv").empty
    assert f'id="{name}"' in page


def test_the_figures_are_embedded(made):
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', made[1])
    assert len(embedded) == len(EXPECTED)
    for data in embedded:
        _check_png(base64.b64decode(data))


def test_the_report_opens_with_its_findings(made):
    page = made[1]
    findings = page.split("<h2>Findings</h2>", 1)[1].split("</ul>", 1)[0]
    assert findings.count("<li>") == 2 + 4 and "paper&#x27;s d" in findings and "individual" in findings
    assert page.index("Findings") < page.index("Methods") and "Mean NLL per response by study and model" in page


def test_methods_and_calibration_come_with_it(made):
    page = made[1]
    # The methods paragraph comes from run.json; the calibration table ships with the package.
    assert "small-base" in page and "32768 characters" in page and "torch" in page
    from surrogate.jobs.report import calibration_table

    shipped = calibration_table()
    assert "Calibration of the estimators" in page and len(shipped) > 0
    assert all(html.escape(s, quote=False) in page for s in set(shipped["scenario"]))  # as pandas escapes
    assert "<details><summary>The calibration table" in page
    assert "/work/" not in page.split("<h2>Methods</h2>", 1)[1].split("</p>", 1)[0]  # no machine paths


def test_misalignment_tables_hold_both_pairs(made):
    folder = made[0]
    # Misalignment by type and across generations: the table behind Fig. 3 has both pairs.
    table = pd.read_csv(folder / "tables" / "misalignment.csv")
    assert set(table["pair"]) == {"small-it vs small-base", "large-it vs large-base"}
