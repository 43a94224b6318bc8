"""compare-personas and analyze, end to end, on shared studies that carry metadata."""

import importlib.util

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.jobs.analyze import analyze
from surrogate.store import read_responses

STUDIES = ["thoma2025problearn", "sandbrink2024metacontrol", "guenther2022relational"]


@pytest.mark.slow
def test_compare_personas_on_real_data(qwen_dir, psych201, tmp_path):
    out = tmp_path / "personas"
    args = ["compare-personas", "--model", f"tiny={qwen_dir}", "--data", str(psych201), "--chat", "off",
            "--max-participants", "8", "--max-chars", "6000", "--out", str(out)]
    for s in STUDIES:
        args += ["--study", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Persona effects" in res.output and "individual component" in res.output
    table = pd.read_csv(out / "persona_effects.csv")
    expected = ["label", "model", "matched", "control", "role", "experiment", "n_participants", "total", "total_lo", "total_hi",
                "population_component", "population_component_lo", "population_component_hi",
                "individual_component", "individual_component_lo", "individual_component_hi",
                "individual_p", "d_z_individual"]
    assert list(table.columns[: len(expected)]) == expected
    assert sorted(table["experiment"]) == sorted([*STUDIES, "pooled", "pooled_fixed", "pooled_relative"])
    row = table.set_index("experiment")
    # sandbrink's questionnaire scores are not among the paper's interview fields: nobody
    # there has an interview persona, and the experiment says so instead of reporting zeros.
    assert row.loc["sandbrink2024metacontrol", "status"] == "no metadata"
    assert row.loc["sandbrink2024metacontrol", "n_without_metadata"] == 8
    assert np.isnan(row.loc["sandbrink2024metacontrol", "individual_p"])
    ok = row.loc[["thoma2025problearn", "guenther2022relational"]]
    assert (ok["n_participants"] == 8).all() and (ok["status"] == "ok").all()
    assert row.loc["pooled", "n_participants"] == 16
    assert (ok["total_lo"] < ok["total"]).all() and (ok["total"] < ok["total_hi"]).all()
    responses = read_responses(out)
    assert set(responses["persona"]) == {"none", "interview", "shuffled", "population", "placebo", "shuffled-placebo"}
    # The form-matched control swaps the same partners as the shuffled control.
    sh = responses[responses.persona == "shuffled"].groupby("participant")["persona_donor"].first()
    fp = responses[responses.persona == "shuffled-placebo"].groupby("participant")["persona_donor"].first()
    assert sh.dropna().to_dict() == fp.dropna().to_dict()
    assert "individual_content" in table.columns and "population component" in res.output
    # The individual component is the mean of shuffled - matched over participants, from the
    # table itself (not an identity of the output columns).
    thoma = responses[responses.study == "thoma2025problearn"].pivot_table(
        index=["participant", "response_index"], columns="persona", values="nll").dropna()
    per = thoma.groupby(level="participant").mean()
    assert row.loc["thoma2025problearn", "individual_component"] == pytest.approx(
        (per["shuffled"] - per["interview"]).mean())
    # Swaps: each shuffled persona comes from a participant who received this one's persona.
    sh = responses[(responses.study == "thoma2025problearn") & (responses.persona == "shuffled")]
    donor = sh.groupby("participant")["persona_donor"].first()
    assert all(donor[donor[p]] == p or donor[donor[donor[p]]] == p for p in donor.index)
    placebo = responses[(responses.study == "thoma2025problearn") & (responses.persona == "placebo")]
    assert (placebo["persona_fields"] == "age,gender").all()
    # sandbrink has questionnaire scores only: the paper's interview shows nothing there.
    sb = responses[(responses.study == "sandbrink2024metacontrol") & (responses.persona == "interview")]
    assert (sb["persona_fields"] == "").all()
    th = responses[(responses.study == "thoma2025problearn") & (responses.persona == "shuffled")]
    assert (th["persona_donor"] != th["participant"]).all()
    assert (out / "persona_summary.txt").read_text().startswith("Persona decomposition for tiny")


@pytest.mark.slow
def test_analyze_reads_earlier_runs(qwen_dir, psych201, tmp_path):
    from surrogate.jobs.compare_personas import compare_personas
    from surrogate.jobs.run import run

    base, chat = tmp_path / "base", tmp_path / "chat"
    common = dict(studies=["thoma2025problearn", "busch2024_stroop"], max_participants=4)
    compare_personas([f"base={qwen_dir}"], psych201, base, chat="off", **common)
    run([f"post={qwen_dir}"], psych201, "none", chat, chat="on", **common)
    pairs = tmp_path / "pairs.toml"
    pairs.write_text('[[pairs]]\nbase = "base"\npost_trained = "post"\nfamily = "tiny"\n')
    result = analyze([base, chat], pairs=pairs, categories=psych201 / "categories.csv", n_boot=100,
                     out=tmp_path / "analysis")
    files = {p.name for p in (tmp_path / "analysis").iterdir()}
    assert {"persona_effects.csv", "metadata_benefit.csv", "misalignment.csv", "choice_fit.csv",
            "choice_individual.csv", "choice_participants.csv", "choice_persona_effects.csv",
            "summary.txt"} <= files
    assert "base" in result.choice_decompositions
    acc = pd.read_csv(tmp_path / "analysis" / "accuracy_paper.csv")
    single = responses_all = pd.concat([read_responses(base), read_responses(chat)], ignore_index=True)
    single = single[(single.n_tokens == 1) & (single.model == "base") & (single.persona == "none")]
    row = acc[(acc.model == "base") & (acc.persona == "none") & (acc.experiment == "pooled")]
    assert row["n_responses"].item() == len(single) > 0
    assert row["accuracy"].item() == pytest.approx(single["top1"].mean())
    assert responses_all["top1"].notna().any()
    mis = pd.read_csv(tmp_path / "analysis" / "misalignment.csv")
    assert set(mis[mis.level == "domain"]["experiment"]) == {"Reinforcement Learning", "Cognitive Control"}
    assert "base" in result.decompositions and "post" not in result.decompositions

    # The paper's d, equal to the restated paper analysis on the same rows.
    spec = importlib.util.spec_from_file_location("paper", psych201.parent / "reference" /
                                                  "psych201_analysis_reference.py")
    paper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper)
    responses = pd.concat([read_responses(base), read_responses(chat)], ignore_index=True)
    expected = paper.misalignment(responses[responses.persona == "none"], "base", "post")
    exp_rows = mis[mis.level == "experiment"].set_index("experiment")
    for study, d in expected["per_study"].items():
        assert exp_rows.loc[study, "d_paper"] == pytest.approx(d, abs=1e-6)
    assert mis[mis.level == "pooled"]["d_paper"].item() == pytest.approx(expected["d"], abs=1e-6)
    meta = pd.read_csv(tmp_path / "analysis" / "metadata_benefit.csv")
    meta = meta[meta.model == "base"].set_index("experiment")
    expected = paper.metadata_benefit(responses, "base")
    assert len(expected["per_study"]) == 2
    for study, d in expected["per_study"].items():
        assert meta.loc[study, "d_paper"] == pytest.approx(d, abs=1e-6)
    assert meta.loc["pooled", "d_paper"] == pytest.approx(expected["d"], abs=1e-6)
    res = CliRunner().invoke(app, ["analyze", str(base), str(chat), "--pairs", str(pairs), "--n-boot", "50",
                                   "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "Post-training misalignment" in res.output


def test_results_over_several_derangements(psych201, tmp_path):
    from surrogate.models import HashBackend
    from surrogate.jobs.compare_personas import compare_personas

    res = compare_personas([HashBackend("h")], psych201, tmp_path / "p", studies=["thoma2025problearn"],
                           max_participants=20, derangements=3, persona="none,interview,shuffled")
    responses = read_responses(tmp_path / "p")
    assert {"shuffled", "shuffled.2", "shuffled.3"} <= set(responses["persona"])
    donors = [responses[responses.persona == c].groupby("participant")["persona_donor"].first()
              for c in ("shuffled", "shuffled.2", "shuffled.3")]
    assert not donors[0].equals(donors[1]) and not donors[1].equals(donors[2])  # independent pairings
    rows = res.table[res.table.experiment == "thoma2025problearn"]
    assert list(rows["control"]) == ["shuffled", "shuffled.2", "shuffled.3"]
    assert (rows["n_participants"] == 20).all()


@pytest.mark.slow
def test_compare_several_strategies_each_on_its_own_control(qwen_dir, psych201, tmp_path):
    out = tmp_path / "strategies"
    res = CliRunner().invoke(app, ["compare-personas", "--model", f"tiny={qwen_dir}", "--data", str(psych201),
                                   "--chat", "off", "--study", "thoma2025problearn", "--max-participants", "10",
                                   "--matched", "interview,narrative", "--out", str(out)])
    assert res.exit_code == 0, res.output
    responses = read_responses(out)
    assert {"narrative", "shuffled-narrative", "shuffled"} <= set(responses["persona"])
    table = pd.read_csv(out / "persona_effects.csv")
    assert set(zip(table["matched"], table["control"])) == {("interview", "shuffled"), ("narrative", "shuffled-narrative")}
    ranking = pd.read_csv(out / "strategy_ranking.csv")
    assert set(ranking["strategy"]) == {"interview", "narrative"} and {"rank_individual"} <= set(ranking.columns)
    diffs = pd.read_csv(out / "strategy_differences.csv")
    assert set(diffs["experiment"]) == {"thoma2025problearn", "pooled"}
    # The difference of individual components is the mean over participants of
    # (S_a - M_a) - (S_b - M_b), from the table itself.
    wide = responses.pivot_table(index=["participant", "response_index"], columns="persona", values="nll").dropna()
    per = wide.groupby(level="participant").mean()
    expected = ((per["shuffled"] - per["interview"]) - (per["shuffled-narrative"] - per["narrative"])).mean()
    got = diffs.set_index("experiment").loc["thoma2025problearn", "individual_component"]
    assert got == pytest.approx(expected)
    res = CliRunner().invoke(app, ["compare-personas", "--model", f"tiny={qwen_dir}", "--data", str(psych201),
                                   "--chat", "off", "--study", "thoma2025problearn", "--max-participants", "10",
                                   "--matched", "narrative", "--control", "shuffled", "--out", str(out)])
    assert res.exit_code == 2 and "shuffled-narrative" in res.output


def test_a_stratify_field_some_lack_is_counted_not_a_stratum(tmp_path):
    """--stratify on a field 4 of 12 participants lack: they get no shuffled persona, the run
    says how many, and the decomposition leaves them out and counts them as unpaired."""
    import json

    from surrogate.analysis import decompose_personas
    from surrogate.models import HashBackend
    from surrogate.jobs.run import run

    data = tmp_path / "study"
    data.mkdir()
    lines = []
    for i in range(12):
        rec = {"text": "Choose. You press <<J>>. Again. You press <<K>>.", "experiment": "e", "participant": i,
               "age": 20 + i}
        if i >= 4:
            rec["group"] = "a" if i % 2 else "b"
        lines.append(json.dumps(rec))
    (data / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    result = run([HashBackend("m")], data, "none,interview,shuffled", tmp_path / "out", stratify="group")
    notes = " ".join(result.info.notes)
    assert "--stratify group: 4 participant(s) lack 'group'" in notes
    shuffled = result.responses[result.responses.persona == "shuffled"].groupby("participant")["persona_donor"].first()
    assert shuffled.loc[["0", "1", "2", "3"]].isna().all() and shuffled.drop(["0", "1", "2", "3"]).notna().all()
    row = decompose_personas(result.responses).rows[0]
    assert row.n_unpaired == 4 and row.n_participants == 8
