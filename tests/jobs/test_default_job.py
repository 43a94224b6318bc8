"""The default job (README's first command) on the shipped organisms: its findings themselves,
not only that its sections exist — misalignment per group of studies with its dose and the
control, and the persona decomposition on real people beside the positive and the null
synthetic control — and the report's persona figures, one per arm."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from surrogate.jobs.default import ARMS, default_job
from surrogate.organisms import IN, OUT_CHOICE, OUT_TEXT, SYNTHETIC, sample_groups

pytestmark = pytest.mark.slow  # the default job runs once for the module (about a minute)

POSITIVE = "organism-base: positive control (synthetic, informative)"
NULL = "organism-base: negative control (synthetic, null)"
REAL = "organism-base: real participants"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return default_job(tmp_path_factory.mktemp("default") / "default")


def _pairs(job):
    return {pm.pair.post_trained: pm for pm in job.analysis.misalignment.pairs}


def test_one_misalignment_line_per_group_in_the_papers_direction_with_its_dose(job):
    pairs = _pairs(job)
    lines = [x for x in job.findings if x.startswith("Misalignment, ")]
    groups = set(sample_groups().values())
    assert [re.match(r"Misalignment, ([^(]+) \(", x).group(1) for x in lines] == \
        [g for g in (IN, OUT_CHOICE, OUT_TEXT, SYNTHETIC) if g in groups]
    light, full, control = pairs["organism-post-light"], pairs["organism-post"], pairs["organism-control"]
    for group in (IN, OUT_CHOICE):
        line = next(x for x in lines if x.startswith(f"Misalignment, {group} ("))
        # the paper's direction: the full dose predicts people worse than the base (bootstrap CI
        # above 0), more than the light dose, and the line says so with the numbers it rests on
        assert full.paper_domain_interval[group][0] > 0, (group, full.paper_domain_interval[group])
        assert full.paper_by_domain[group] > light.paper_by_domain[group]
        assert f"full dose d {full.paper_by_domain[group]:+.3f}" in line
        # the control is named as the control, and its line says what its interval shows
        lo, hi = control.paper_domain_interval[group]
        assert "The control (as many extra steps, the base's own predictions" in line
        assert ("within 0.1 of the base" in line and "not shown" not in line) == (-0.1 < lo and hi < 0.1)
    # in distribution, both doses misalign, the full dose more, and the control stays at the base
    line = next(x for x in lines if x.startswith(f"Misalignment, {IN} ("))
    assert light.paper_domain_interval[IN][0] > 0
    assert "both doses predict people worse than the base, more so at the full dose" in line
    assert -0.1 < control.paper_domain_interval[IN][0] and control.paper_domain_interval[IN][1] < 0.1
    # on the never-seen choice studies the light dose is not distinguishable, and the line says that
    line = next(x for x in lines if x.startswith(f"Misalignment, {OUT_CHOICE} ("))
    lo, hi = light.paper_domain_interval[OUT_CHOICE]
    assert lo < 0 < hi and "the light dose is not distinguishable from the base" in line


def test_a_finding_never_claims_what_its_interval_does_not_show(job):
    pairs = _pairs(job)
    for line in (x for x in job.findings if x.startswith("Misalignment, ")):
        group = re.match(r"Misalignment, ([^(]+) \(", line).group(1)
        for name, what in (("organism-post-light", "light dose"), ("organism-post", "full dose")):
            lo, hi = pairs[name].paper_domain_interval[group]
            assert f"{what} d {pairs[name].paper_by_domain[group]:+.3f} [{lo:+.3f}, {hi:+.3f}]" in line
        said = {n: "worse" if lo > 0 else "better" if hi < 0 else "neither"
                for n in ("organism-post-light", "organism-post")
                for lo, hi in [pairs[n].paper_domain_interval[group]]}
        assert ("both doses predict people worse" in line) == (set(said.values()) == {"worse"})
        assert ("the full dose predicts people worse" in line) == (said["organism-post"] == "worse"
                                                                   and said["organism-post-light"] != "worse")
        assert ("do not predict people worse here" in line) == (said["organism-post"] != "worse")


def test_the_persona_finding_beside_a_positive_and_a_null_control(job):
    decs = job.analysis.decompositions
    assert set(decs) == {REAL, POSITIVE, NULL}
    positive, null = decs[POSITIVE], decs[NULL]
    assert positive.pooled.individual_component.value > 0 and positive.pooled.individual_component.p < 0.05
    assert positive.verdict().kind == "individual"
    assert null.verdict().kind == "equivalent"
    persona_lines = [x for x in job.findings if x.startswith("Personas, ")]
    assert len(persona_lines) == 3
    for label in (REAL, POSITIVE, NULL):
        assert sum(label in x for x in persona_lines) == 1, label


def test_the_reports_persona_figures_are_one_per_arm_with_that_arms_experiments(job):
    tables = sorted((job.report.parent / "tables").glob("persona*.csv"))
    assert len(tables) == len(ARMS), [t.name for t in tables]
    seen = []
    for t in tables:
        frame = pd.read_csv(t)
        experiments = set(frame["experiment"]) - {"pooled"}
        seen.append(experiments)
        assert frame["label"].nunique() == 1
    # each arm shows its own experiments: the two controls one study each, the real arm the rest
    assert sorted(len(s) for s in seen)[:2] == [1, 1]
    assert {"synthetic-lotteries-informative"} in seen and {"synthetic-lotteries-null"} in seen
    assert not any(s & {"synthetic-lotteries-informative", "synthetic-lotteries-null"} for s in seen if len(s) > 1)
