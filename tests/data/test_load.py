import json
import zipfile

import pandas as pd
import pytest

from surrogate.data import DataError, from_hf_dataset, load


def _write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


GOOD = {"text": "You see A. You press <<J>>.", "experiment": "e1", "participant": 1, "age": "34"}


def test_loads_a_psych201_tree_with_study_names(psych201):
    ds = load(psych201, max_participants=2)
    assert len(ds.studies) == 19
    assert all(sum(p.study == s for p in ds) == 2 for s in ds.studies)
    p = next(p for p in ds if p.study == "thoma2025problearn")
    assert p.metadata["gender"] == "female" and isinstance(p.metadata["age"], float)
    assert p.source.file.endswith("thoma2025problearn/prompts.jsonl.zip!prompts.jsonl")


def test_reads_every_record_of_a_study(psych201):
    ds = load(psych201 / "guenther2022relational")
    assert len(ds) == 400
    assert {p.study for p in ds} == {"guenther2022relational"}
    assert ds.participants[0].metadata == {"age": 37.0}


def test_macosx_entries_are_skipped(tmp_path):
    z = tmp_path / "s" / "prompts.jsonl.zip"
    z.parent.mkdir()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("prompts.jsonl", json.dumps(GOOD) + "\n")
        zf.writestr("__MACOSX/._prompts.jsonl", b"\x00\x05\x16\x07 binary resource fork")
    ds = load(z)
    assert len(ds) == 1 and ds.participants[0].study == "s"


def test_metadata_parsing(tmp_path):
    rec = {**GOOD, "age": "N/A", "gender": "", "score": "12.5", "n": "7", "RTs": ["100", "200"],
           "note": None}
    ds = load(_write_jsonl(tmp_path / "prompts.jsonl", [rec]))
    p = ds.participants[0]
    assert p.metadata == {"score": 12.5, "n": 7, "RTs": [100, 200]}
    assert p.metadata_text["score"] == "12.5"
    assert p.participant == "1" and p.experiment == "e1"


@pytest.mark.parametrize("line, reason", [
    ('{"text": "a <<b>>", "participant": 1', "invalid JSON"),
    (json.dumps({"participant": 7}), "missing 'text'"),
    (json.dumps({"text": "a <<b>>"}), "missing 'participant'"),
    (json.dumps({"text": 5, "participant": 7}), "'text' must be a string"),
    (json.dumps({"text": "a <<b>>", "participant": [1]}), "'participant' must be"),
    (json.dumps({"text": "a <<b <<c>>", "participant": 7}), "nested"),
    (json.dumps({"text": "a <<b>> >>", "participant": 7}), "without an opening"),
    (json.dumps({"text": "a <<>>", "participant": 7}), "empty response"),
    (json.dumps({"text": "a <<b>>", "participant": 7, "age": {"x": 1}}), "field 'age' has type dict"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_input_names_file_line_and_participant(tmp_path, line, reason):
    path = _write_jsonl(tmp_path / "prompts.jsonl", [GOOD, line])
    with pytest.raises(DataError) as err:
        load(path)
    assert err.value.line == 2 and reason in err.value.reason
    assert str(path) in str(err.value) and ":2" in str(err.value)
    if '"participant": 7' in line:
        assert err.value.participant == "7" and "participant 7" in str(err.value)


def test_skip_invalid_keeps_going_and_reports(tmp_path):
    path = _write_jsonl(tmp_path / "prompts.jsonl",
                        [GOOD, "{broken", {**GOOD, "participant": 2, "text": "x <<>>"},
                         {**GOOD, "participant": 3}])
    ds = load(path, skip_invalid=True)
    assert [p.participant for p in ds] == ["1", "3"]
    assert [(r.line, r.participant) for r in ds.invalid] == [(2, None), (3, "2")]
    assert ds.invalid[0].record == "{broken"


def test_duplicate_participants_are_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "prompts.jsonl", [GOOD, GOOD])
    with pytest.raises(DataError, match="duplicate participant"):
        load(path)


def test_parquet_file_and_hf_dataset_share_the_jsonl_path(tmp_path, psych201):
    rows = [{"text": p.text, "experiment": p.experiment, "participant": p.participant,
             **p.metadata_text} for p in load(psych201 / "thoma2025problearn", max_participants=5)]
    frame = pd.DataFrame(rows)
    study = tmp_path / "thoma2025problearn"
    study.mkdir()
    frame.to_parquet(study / "prompts.parquet")
    from_parquet = load(study)
    from_jsonl = load(psych201 / "thoma2025problearn", max_participants=5)
    assert [p.text for p in from_parquet] == [p.text for p in from_jsonl]
    assert [p.metadata for p in from_parquet] == [p.metadata for p in from_jsonl]

    datasets = pytest.importorskip("datasets")
    hf = datasets.load_dataset("parquet", data_files=str(study / "prompts.parquet"), split="train")
    from_hf = from_hf_dataset(hf, source="hf:local")
    assert [p.text for p in from_hf] == [p.text for p in from_jsonl]
    # The study comes from the experiment field for hub datasets.
    assert from_hf.participants[0].study == "Thoma_et_al_2025_probability_learning"

    # Hub copies of Psych-201 carry `study` and bookkeeping columns: the study is taken from
    # `study`, and neither becomes persona metadata.
    frame.assign(study="thoma2025problearn", participant_reindexed=range(len(frame))).to_parquet(
        tmp_path / "hub.parquet")
    hub = from_hf_dataset(datasets.load_dataset("parquet", data_files=str(tmp_path / "hub.parquet"),
                                                split="train"), source="hf:local")
    assert {p.study for p in hub} == {"thoma2025problearn"}
    assert [p.metadata for p in hub] == [p.metadata for p in from_jsonl]


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no prompts.jsonl"):
        load(tmp_path)


def test_mistyped_local_paths_are_not_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    for typo in ("study/prompts.jsonl", "study/promts.jsonl.zip", "./study/x", "study/x"):
        with pytest.raises(DataError, match="no such file or folder"):
            load(typo)
