"""compare-personas and analyze, end to end, on shared studies that carry metadata."""

import pandas as pd
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.runner import analyze, read_responses

STUDIES = ["thoma2025problearn", "sandbrink2024metacontrol", "guenther2022relational"]


def test_compare_personas_on_real_data(qwen_dir, psych201, tmp_path):
    out = tmp_path / "personas"
    args = ["compare-personas", "--model", f"tiny={qwen_dir}", "--data", str(psych201), "--chat", "off",
            "--max-participants", "4", "--n-boot", "200", "--n-perm", "199", "--out", str(out)]
    for s in STUDIES:
        args += ["--study", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Persona effects" in res.output and "individual component" in res.output
    table = pd.read_csv(out / "persona_effects.csv")
    expected = ["model", "experiment", "n_participants", "total", "total_lo", "total_hi",
                "population_component", "population_component_lo", "population_component_hi",
                "individual_component", "individual_component_lo", "individual_component_hi",
                "individual_p", "d_z_individual"]
    assert list(table.columns[: len(expected)]) == expected
    assert sorted(table["experiment"]) == sorted([*STUDIES, "pooled"])
    row = table.set_index("experiment")
    assert row.loc["pooled", "n_participants"] == 12 and (row.drop("pooled")["n_participants"] == 4).all()
    # total = population + individual, per experiment and pooled.
    assert ((row["total"] - row["population_component"] - row["individual_component"]).abs() < 1e-9).all()
    assert (row["total_lo"] <= row["total"]).all() and (row["total"] <= row["total_hi"]).all()
    responses = read_responses(out)
    assert set(responses["persona"]) == {"none", "interview", "shuffled", "population"}
    # sandbrink has questionnaire scores only: the paper's interview shows nothing there.
    sb = responses[(responses.study == "sandbrink2024metacontrol") & (responses.persona == "interview")]
    assert (sb["persona_fields"] == "").all()
    th = responses[(responses.study == "thoma2025problearn") & (responses.persona == "shuffled")]
    assert (th["persona_donor"] != th["participant"]).all()
    assert (out / "persona_summary.txt").read_text().startswith("Persona decomposition for tiny")


def test_analyze_reads_earlier_runs(qwen_dir, psych201, tmp_path):
    from surrogate.runner import compare_personas, run

    base, chat = tmp_path / "base", tmp_path / "chat"
    common = dict(studies=["thoma2025problearn", "busch2024_stroop"], max_participants=4)
    compare_personas([f"base={qwen_dir}"], psych201, base, chat="off", n_boot=100, n_perm=99, **common)
    run([f"post={qwen_dir}"], psych201, "none", chat, chat="on", **common)
    pairs = tmp_path / "pairs.toml"
    pairs.write_text('[[pairs]]\nbase = "base"\npost_trained = "post"\nfamily = "tiny"\n')
    result = analyze([base, chat], pairs=pairs, categories=psych201 / "categories.csv", n_boot=100,
                     out=tmp_path / "analysis")
    files = {p.name for p in (tmp_path / "analysis").iterdir()}
    assert {"persona_effects.csv", "metadata_benefit.csv", "misalignment.csv", "choice_fit.csv",
            "choice_individual.csv", "choice_participants.csv", "summary.txt"} <= files
    mis = pd.read_csv(tmp_path / "analysis" / "misalignment.csv")
    assert set(mis[mis.level == "domain"]["name"]) == {"Reinforcement Learning", "Cognitive Control"}
    assert "base" in result.decompositions and "post" not in result.decompositions
    res = CliRunner().invoke(app, ["analyze", str(base), str(chat), "--pairs", str(pairs), "--n-boot", "50",
                                   "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "Post-training misalignment" in res.output
