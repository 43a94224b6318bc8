"""Scoring speed and memory: surrogate's scorer against the paper's reference procedure.

Both score the same participants with the same random-weight model in separate processes
(so peak memory is each one's own), alternating for --repeats rounds; the median of each
is reported. Both time scoring only (model loading excluded), count the same input tokens,
and their per-response NLLs are compared wherever the reference's marker search is well
defined.

    python bench/score_bench.py                      # CPU target: Qwen3, 4 layers, d=256, V=32k
    python bench/score_bench.py --device cuda --preset qwen3-0.6b  # Qwen3-0.6B shape, bfloat16
    python bench/score_bench.py --device cuda --preset qwen3-8b    # Qwen3-8B shape (MFU target)

Defaults: 20 participants from each of thoma2025problearn, guenther2022relational and
busch2024_stroop in ../shared/psych201.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from surrogate.data import shared_psych201

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_psych201(ROOT).parent
REFERENCE = SHARED / "reference" / "psych201_reference.py"
PRESETS = {
    # The CPU target of the scoring-core issue.
    "cpu-small": dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2,
                      intermediate_size=768, vocab_size=32000),
    # Qwen3-0.6B's shape (28 layers, d=1024, 16 query / 8 KV heads of 128, MLP 3072); the
    # vocabulary is what a local tokenizer can learn, the rest of the 151,936 rows padded.
    "qwen3-0.6b": dict(hidden_size=1024, num_layers=28, num_heads=16, num_kv_heads=8,
                       intermediate_size=3072, vocab_size=32000, head_dim=128, pad_vocab=151936),
    # Qwen3-8B's shape (36 layers, d=4096, 32 query / 8 KV heads of 128, MLP 12288), saved in
    # bfloat16 (16 GB; building it needs about 40 GB of host memory).
    "qwen3-8b": dict(hidden_size=4096, num_layers=36, num_heads=32, num_kv_heads=8,
                     intermediate_size=12288, vocab_size=32000, head_dim=128, pad_vocab=151936,
                     save_dtype="bfloat16"),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16


def records(studies: list[str], n: int) -> list[dict]:
    out = []
    for study in studies:
        with zipfile.ZipFile(SHARED / "psych201" / study / "prompts.jsonl.zip") as zf, \
                zf.open("prompts.jsonl") as f:
            for i, line in enumerate(f):
                if i == n:
                    break
                out.append(json.loads(line))
    return out


def build_model(preset: str, folder: Path) -> Path:
    """Random weights of the preset's shape; tokenizer trained on Psych-201 text (cached)."""
    if (folder / "config.json").exists():
        return folder
    from surrogate.testing.tiny import build_model as build, train_tokenizer

    shape = dict(PRESETS[preset])
    vocab, pad_vocab = shape.pop("vocab_size"), shape.pop("pad_vocab", None)
    save_dtype = shape.pop("save_dtype", None)
    texts = [r["text"] for s in sorted(p.name for p in (SHARED / "psych201").iterdir() if p.is_dir())
             for r in records([s], 60)]
    # '>>' kept whole so that the reference's marker search is well defined on every study.
    tok = train_tokenizer(texts, vocab_size=vocab, style="qwen", isolate_close_marker=True)
    model = build(tok, arch="qwen3", vocab_size=pad_vocab, **shape)
    if save_dtype:
        import torch

        model = model.to(getattr(torch, save_dtype))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def worker(args) -> None:
    """Score the records with surrogate (one process, like the reference)."""
    import torch

    from surrogate.data import load, prepare_transcript
    from surrogate.models import ModelSpec, ScoreRequest, load_backend, score_all

    backend = load_backend(ModelSpec(path=str(args.model), dtype=args.dtype, chat="off",
                                     batch_tokens=args.batch_tokens))
    participants = load(args.data).participants
    requests = [ScoreRequest(transcript=prepare_transcript(p.text)) for p in participants]
    score_all(backend, requests[:1])  # warm-up, as the reference's first call pays it too
    cuda = backend.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    results = score_all(backend, requests)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = {"participants": [{"participant": p.participant, "nll": r.nll} for p, r in zip(participants, results)],
           "seconds": seconds, "tokens": sum(r.n_input_tokens for r in results),
           "scored_tokens": sum(sum(r.n_tokens) for r in results),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "device": backend.device, "fast_path": backend.fast_path,
           "row_restricted": backend._rows is not None,
           "lengths": [len(backend.encode(r)) for r in requests]}
    if cuda:
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    Path(args.out).write_text(json.dumps(out))


def well_defined(data: Path, model: Path) -> list[bool]:
    """Per record: does the reference label exactly the tokens that spell each response?"""
    from transformers import AutoTokenizer

    from surrogate.data import load, prepare_transcript
    from surrogate.models import TranscriptEncoder

    spec = importlib.util.spec_from_file_location("ref", REFERENCE)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    tok = AutoTokenizer.from_pretrained(model)
    enc = TranscriptEncoder(tok, chat=False)
    open_ids = tok(" <<", add_special_tokens=False).input_ids
    close_ids = tok(">>", add_special_tokens=False).input_ids
    out = []
    for p in load(data).participants:
        mine = enc.encode(prepare_transcript(p.text))
        ids = tok(ref.clean_transcript(p.text, 32768)).input_ids
        labels = ref.response_labels(ids, open_ids, close_ids)
        out.append(ids == mine.ids.tolist()
                   and [i for i, x in enumerate(labels) if x != -100]
                   == [i for i, r in enumerate(mine.response_of) if r >= 0])
    return out


def model_flops(model: Path, lengths: list[int], scored: int) -> float:
    """Forward FLOPs the scorer needs: matmuls of every layer, causal attention, and the LM
    head at scored positions only."""
    cfg = json.loads((model / "config.json").read_text())
    d, L, ff = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    hd = cfg.get("head_dim") or d // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    per_token = 2 * L * (d * q + 2 * d * kv + q * d + 3 * d * ff)
    attention = sum(2 * L * T * T * q for T in lengths)  # QK^T and AV, causal half, 2 FLOP/MAC
    return per_token * sum(lengths) + attention + 2 * d * cfg["vocab_size"] * scored


def cpu_matmul_peak() -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    ap.add_argument("--model", type=Path, help="Use this checkpoint instead of building the preset.")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="Where both scorers run (the reference takes CUDA whenever it is visible).")
    ap.add_argument("--studies", default="thoma2025problearn,guenther2022relational,busch2024_stroop")
    ap.add_argument("--participants", type=int, default=20, help="Per study.")
    ap.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (GPU default).")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--cache", type=Path, default=ROOT / ".bench")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    import torch

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # for both subprocesses
    gpu = torch.cuda.is_available() and args.device != "cpu"
    if args.device == "cuda" and not gpu:
        sys.exit("--device cuda: no CUDA device is visible")
    dtype = args.dtype or ("bfloat16" if gpu else "float32")
    model = args.model or build_model(args.preset, args.cache / args.preset)
    studies = args.studies.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "prompts.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in records(studies, args.participants)))
        ours, theirs = [], []
        for i in range(args.repeats):
            for who in (["ref", "ours"] if i % 2 == 0 else ["ours", "ref"]):
                out = Path(tmp) / f"{who}{i}.json"
                if who == "ref":
                    cmd = [sys.executable, str(REFERENCE), "--model", str(model), "--data", str(data),
                           "--dtype", dtype, "--out", str(out)]
                else:
                    cmd = [sys.executable, __file__, "--worker", "--model", str(model), "--data",
                           str(data), "--dtype", dtype, "--out", str(out)]
                    if args.batch_tokens:
                        cmd += ["--batch-tokens", str(args.batch_tokens)]
                subprocess.run(cmd, check=True, capture_output=True)
                (theirs if who == "ref" else ours).append(json.loads(out.read_text()))
                r = (theirs if who == "ref" else ours)[-1]
                print(f"  round {i + 1} {who:>4}: {r['tokens'] / r['seconds']:,.0f} tokens/s", flush=True)
        defined = well_defined(data, model)

    def tps(rs):
        return statistics.median(r["tokens"] / r["seconds"] for r in rs)

    a, b = ours[0], theirs[0]
    assert a["tokens"] == b["tokens"], "the two scorers saw different token counts"
    diffs, compared = [], 0
    for ok, pa, pb in zip(defined, a["participants"], b["participants"]):
        if ok:
            compared += 1
            diffs += [abs(x - y) for x, y in zip(pa["nll"], pb["nll"])]
    ratio = tps(ours) / tps(theirs)
    flops = model_flops(Path(model), a["lengths"], a["scored_tokens"])
    seconds = statistics.median(r["seconds"] for r in ours)
    print(f"\nmodel: {model} ({args.preset}, {dtype}) on {a['device']}"
          + (f" [{a['gpu']}]" if "gpu" in a else ""))
    print(f"data: {len(a['participants'])} participants ({args.participants} from each of "
          f"{', '.join(studies)}), {a['tokens']:,} tokens, {a['scored_tokens']:,} scored")
    print(f"reference: {tps(theirs):>10,.0f} tokens/s   peak RSS {b['peak_rss_mb']:,.0f} MB"
          + (f"   peak CUDA {b['peak_cuda_mb']:,.0f} MB" if "peak_cuda_mb" in b else ""))
    print(f"surrogate: {tps(ours):>10,.0f} tokens/s   peak RSS {a['peak_rss_mb']:,.0f} MB"
          + (f"   peak CUDA {a['peak_cuda_mb']:,.0f} MB" if "peak_cuda_mb" in a else ""))
    print(f"speed-up:  {ratio:.2f}x (median of {args.repeats} alternating rounds)")
    if "peak_cuda_mb" in a:
        print(f"GPU memory: {a['peak_cuda_mb'] / b['peak_cuda_mb']:.2f} of the reference's peak")
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in a.get("gpu", "")), None)
        if peak:
            print(f"model FLOP utilisation: {flops / seconds / (peak * 1e12):.1%} "
                  f"of {peak:.0f} TFLOP/s dense bf16")
    else:
        print(f"model FLOP rate: {flops / seconds / 1e9:.0f} GFLOP/s = "
              f"{flops / seconds / cpu_matmul_peak():.0%} of this CPU's float32 matmul rate")
    print(f"NLL check: reference well defined for {compared}/{len(defined)} participants; "
          f"max |difference| {max(diffs, default=float('nan')):.2e} nats over {len(diffs)} responses"
          f" -> {'OK' if diffs and max(diffs) < 1e-3 else 'MISMATCH'}")
    print(f"surrogate path: gathered head {a['fast_path']}, row-restricted last layer {a['row_restricted']}")


if __name__ == "__main__":
    main()
