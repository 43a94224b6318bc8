"""The paper's grid as data, the cluster jobs it becomes, their progress and the paper's
figures: the shipped manifest read and filtered, memory estimated from real configs, and a
stand-in grid (hub ids mapped to small local models of the right architecture) taken through
grid script -> two array tasks run by the script itself -> status -> the other tasks ->
status -> merge -> report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surrogate.cli import app
from surrogate.jobs.grid import GridModel, estimate_memory, expand, model_string, read_grid

STANDIN = ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B",
           "meta-llama/Llama-3.2-1B-Instruct"]


def test_the_paper_manifest_holds_every_model_of_its_pairs():
    grid = read_grid(["paper"])
    assert len(grid.models) == 85 and len(grid.pairs) == 52
    hubs = {m.hub for m in grid.models}
    assert all(p.base in hubs and p.post_trained in hubs for p in grid.pairs)
    by_hub = {m.hub: m for m in grid.models}
    assert by_hub["Qwen/Qwen2.5-7B"].post_training == "base"
    assert by_hub["Qwen/Qwen2.5-VL-7B-Instruct"].vision and by_hub["meta-llama/Llama-3.2-11B-Vision"].vision
    assert not by_hub["Qwen/Qwen2.5-7B-Instruct"].vision
    assert model_string(by_hub["Qwen/Qwen2.5-7B"]) == "Qwen/Qwen2.5-7B,chat=off"
    assert model_string(by_hub["Qwen/Qwen2.5-7B-Instruct"]) == "Qwen/Qwen2.5-7B-Instruct,chat=on"
    # the analysis reads the same pairs
    from surrogate.analysis import read_pairs

    assert read_pairs("paper") == grid.pairs


def test_filters_select_models_and_the_pairs_both_of_whose_models_remain():
    grid = read_grid(["paper"])
    small = grid.select(family=["llama"], max_size=8, types=["base", "instruction-tuned"])
    assert {m.hub for m in small.models} == {
        "meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Llama-3.1-8B",
        "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct",
        "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct"}
    assert len(small.pairs) == 4 and all(p.post_training == "instruction-tuned" for p in small.pairs)
    with pytest.raises(ValueError, match="no family"):
        grid.select(family=["Gemma"])
    with pytest.raises(ValueError, match="no post-training type"):
        grid.select(types=["rlhf"])


def test_a_users_manifest_adds_models_and_a_conflict_names_both_files(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('[[models]]\nhub = "allenai/Olmo-3-1025-7B"\nfamily = "OLMo"\ngeneration = 3\nsize_b = 7\n'
                    '[[models]]\nhub = "allenai/Olmo-3-7B-Instruct"\nfamily = "OLMo"\ngeneration = 3\nsize_b = 7\n'
                    'post_training = "instruction-tuned"\n'
                    '[[pairs]]\nbase = "allenai/Olmo-3-1025-7B"\npost_trained = "allenai/Olmo-3-7B-Instruct"\n'
                    'family = "OLMo"\ngeneration = 3\npost_training = "instruction-tuned"\nsize_b = 7\n')
    grid = read_grid(["paper", mine])
    assert len(grid.models) == 87 and len(grid.pairs) == 53
    assert grid.select(family=["OLMo"]).pairs[0].post_trained == "allenai/Olmo-3-7B-Instruct"
    clash = tmp_path / "clash.toml"
    clash.write_text('[[models]]\nhub = "Qwen/Qwen2.5-7B"\nfamily = "Qwen"\ngeneration = "2.5"\nsize_b = 8\n')
    with pytest.raises(ValueError, match=r"clash.toml: model 1: Qwen/Qwen2.5-7B is also in paper"):
        read_grid(["paper", clash])
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models]]\nhub = "x/y"\nsize_b = -1\n')
    with pytest.raises(ValueError, match=r"bad.toml: model 1 \(x/y\): size_b"):
        read_grid([bad])
    orphan = tmp_path / "orphan.toml"
    orphan.write_text('[[models]]\nhub = "x/y"\nsize_b = 1\n[[pairs]]\nbase = "x/y"\npost_trained = "x/z"\n')
    with pytest.raises(ValueError, match=r"orphan.toml: pair 1: x/z is not among the \[\[models]]"):
        read_grid([orphan])


def _qwen2_5_0_5b():
    from transformers import Qwen2Config

    return Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)


def _llama(hidden, inter, layers, heads, kv):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv, vocab_size=128256,
                       tie_word_embeddings=False)


def test_the_memory_estimate_counts_the_parameters_of_real_configs():
    """Configs as published on the hub; parameter counts as their model cards state them."""
    qwen = estimate_memory(GridModel(hub="Qwen/Qwen2.5-0.5B", size_b=0.5), config=_qwen2_5_0_5b(),
                           window_tokens=8192)
    assert qwen.source == "config"
    assert round(qwen.parameters / 1e9, 2) == 0.49  # card: 0.49B, 0.36B without embeddings
    assert round((qwen.parameters - 151936 * 896) / 1e9, 2) == 0.36
    llama8 = estimate_memory(GridModel(hub="meta-llama/Llama-3.1-8B", size_b=8), window_tokens=8192,
                             config=_llama(4096, 14336, 32, 32, 8))
    assert llama8.parameters == 8_030_261_248
    assert llama8.weights_bytes == 2 * 8_030_261_248
    assert llama8.kv_cache_bytes == 2 * 32 * 8 * 128 * 8192 * 2  # K and V, 32 layers, 8 KV heads of 128, bf16
    assert llama8.logits_bytes == 8192 * 128256 * 4
    assert llama8.gpus(80) == 1
    llama70 = estimate_memory(GridModel(hub="meta-llama/Llama-3.1-70B", size_b=70), window_tokens=8192,
                              config=_llama(8192, 28672, 80, 64, 8))
    assert round(llama70.parameters / 1e9, 1) == 70.6
    # 131 GiB of bf16 weights + 6 GiB of KV cache and logits; 90% of each GPU, 2 GiB of it overhead
    assert llama70.gpus(80) == 2 and llama70.gpus(40) == 5
    # no config readable (offline, not in the model map): the manifest's size, said so
    guess = estimate_memory(GridModel(hub="nobody/not-a-model-xyz", size_b=7))
    assert guess.source == "size_b" and guess.parameters == 7_000_000_000


@pytest.fixture()
def standin(tmp_path, llama_dir, monkeypatch):
    """The stand-in grid: four hub ids of the paper's Llama grid mapped to a local Llama-architecture model."""
    mapping = tmp_path / "models.toml"
    mapping.write_text("".join(f'"{hub}" = "{llama_dir}"\n' for hub in STANDIN))
    monkeypatch.setenv("SURROGATE_MODEL_MAP", str(mapping))
    from surrogate.data import load
    from surrogate.organisms import sample_dir

    people = load(sample_dir(), studies=["guenther2022relational", "thoma2025problearn"], max_participants=6)
    data = tmp_path / "people"  # a Psych-201 tree of two studies: the paper's d averages over studies

    def first_responses(text: str, n: int = 8) -> str:
        end = 0
        for _ in range(n):
            end = text.index(">>", end) + 2
        return text[:end]

    for study in ("guenther2022relational", "thoma2025problearn"):
        (data / study).mkdir(parents=True)
        (data / study / "prompts.jsonl").write_text("".join(
            json.dumps({"text": first_responses(p.text), "experiment": p.experiment, "participant": p.participant})
            + "\n" for p in people.participants if p.study == study))
    return data


def _status(out: Path) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["status", str(out)])
    return r.exit_code, r.output


def _standin_manifest(path: Path) -> Path:
    """The paper's entries for the stand-in models and their pairs, as a user's manifest."""
    grid = read_grid(["paper"])
    lines = []
    for m in grid.models:
        if m.hub in STANDIN:
            lines += ["[[models]]", *(f"{k} = {json.dumps(v)}" for k, v in m.model_dump(exclude_none=True).items()), ""]
    for p in grid.pairs:
        if p.base in STANDIN and p.post_trained in STANDIN:
            lines += ["[[pairs]]", *(f"{k} = {json.dumps(v)}" for k, v in p.model_dump(exclude_none=True).items()), ""]
    path.write_text("\n".join(lines))
    return path


def _script(out: Path, manifest: Path, data: Path, hours: float) -> dict:
    r = CliRunner().invoke(app, ["grid", "script", "--grid", str(manifest), "--data", str(data), "--out", str(out),
                                 "--tokens-per-second", "1", "--hours", str(hours)])
    assert r.exit_code == 0, r.output
    assert "torchrun --nproc-per-node 8 --no-python surrogate run" in r.output and "GPU-hours" in r.output
    return json.loads((out / "grid" / "plan.json").read_text())


@pytest.mark.slow
def test_a_stand_in_grid_runs_from_script_to_the_papers_figures(standin, tmp_path):
    out = tmp_path / "paper"
    manifest = _standin_manifest(tmp_path / "standin.toml")
    grid = read_grid([manifest])
    assert len(grid.models) == 4 and len(grid.pairs) == 2
    assert expand(grid)[0] == "meta-llama/Llama-3.1-8B,chat=off"
    # shards from tokens: at 1 token/s, a task of tokens / 1.5 hours gives every model two shards
    tokens = {m["hub"]: m["tokens"] for m in _script(out, manifest, standin, 1e6)["models"]}
    assert len(set(tokens.values())) == 1 and all(t > 1000 for t in tokens.values())  # one tokenizer, one data
    plan = _script(out, manifest, standin, next(iter(tokens.values())) / 3600 / 1.5)
    assert [m["shards"] for m in plan["models"]] == [2, 2, 2, 2] and all(m["gpus"] == 1 for m in plan["models"])
    script = out / "grid" / "array-1gpu.sbatch"
    text = script.read_text()
    assert "#SBATCH --gpus=1" in text and "#SBATCH --array=0-7" in text
    lines = (out / "grid" / "tasks-1gpu.tsv").read_text().splitlines()
    assert lines[:2] == ["meta-llama/Llama-3.1-8B,chat=off\t0/2", "meta-llama/Llama-3.1-8B,chat=off\t1/2"]
    assert _status(out)[0] == 2  # nothing started: every task pending
    # two array tasks, run by the script itself as SLURM runs them
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    for task in (0, 1):
        done = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    code, shown = _status(out)
    assert code == 2 and "meta-llama/Llama-3.1-8B " in shown.replace("│", " "), shown
    from surrogate.jobs.status import status

    st = {m.model: m for m in status(out).models}
    first = st["meta-llama/Llama-3.1-8B"]
    assert first.tasks_done == first.tasks == 2 and first.units_done == first.units_total > 0
    assert first.tokens > 0 and first.tokens_per_second > 0
    assert sum(m.tasks_pending for m in st.values()) == 6 and st["meta-llama/Llama-3.2-1B"].units_total is None
    # the other six tasks, in process: the same command lines
    for line in lines[2:]:
        model, shard = line.split("\t")
        r = CliRunner().invoke(app, ["run", "--model", model, "--shard", shard, "--data", str(standin),
                                     "--out", str(out)])
        assert r.exit_code == 0, r.output
    code, shown = _status(out)
    assert code == 0 and "all done" in shown, shown
    assert all(m.tasks_done == m.tasks == 2 and m.units_done == m.units_total for m in status(out).models)
    merged = tmp_path / "merged"
    assert CliRunner().invoke(app, ["merge", str(out), "--out", str(merged)]).exit_code == 0
    # the paper's pairs on a partial grid: the two pairs with results
    categories = tmp_path / "categories.csv"
    categories.write_text("dataset,learning,language\nguenther2022relational,0,1\nthoma2025problearn,1,0\n")
    r = CliRunner().invoke(app, ["report", str(merged), "--pairs", "paper", "--categories", str(categories),
                                 "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "report" / "report.html").read_text()
    for figure in ("nll_by_size", "misalignment", "generation_trend", "misalignment_domains"):
        assert f'id="{figure}"' in page, figure
        assert (tmp_path / "report" / "figures" / f"{figure}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_status_names_a_failed_task_and_says_so_in_its_exit_code(standin, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", "--model", f"{STANDIN[2]},chat=off", "--shard", "0/2", "--data", str(standin),
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    (written,) = out.glob("run-shard-0-of-2-*.json")
    info = json.loads(written.read_text())
    info["status"], info["error"] = "failed", "CUDA out of memory"
    written.write_text(json.dumps(info))
    code, shown = _status(out)
    assert code == 1 and "CUDA out of memory" in shown


@pytest.mark.slow
def test_run_takes_a_grid_with_its_filters(standin, tmp_path):
    manifest = _standin_manifest(tmp_path / "standin.toml")
    r = CliRunner().invoke(app, ["run", "--grid", str(manifest), "--max-size", "1", "--type", "instruction-tuned",
                                 "--data", str(standin), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert list(info["models"]) == ["meta-llama/Llama-3.2-1B-Instruct"] and info["models"][
        "meta-llama/Llama-3.2-1B-Instruct"]["chat"] is True  # post-trained: through its chat template
    r = CliRunner().invoke(app, ["run", "--family", "Llama", "--data", str(standin), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "give --grid too" in r.output
