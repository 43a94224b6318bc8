"""The HF scorer's shortcuts change nothing: batching, gathered heads, row restriction,
logits chunking and the token budget all give the brute-force answer."""

import numpy as np
import pytest
import torch

from surrogate.data import load, prepare_transcript
from surrogate.models import ModelSpec, ScoreRequest, load_backend, score_all
from surrogate.models import _hf, _loading, _rows


@pytest.fixture(scope="module")
def requests(psych201):
    ps = (load(psych201 / "busch2024_stroop", max_participants=2).participants
          + load(psych201 / "guenther2022relational", max_participants=3).participants
          + load(psych201 / "thoma2025problearn", max_participants=2).participants)
    return [ScoreRequest(transcript=prepare_transcript(p.text)) for p in ps]


def brute_force(backend, request):
    """Full logits of the plain model forward, summed over each response's tokens."""
    enc = backend.encode(request)
    ids = torch.tensor(enc.ids)[None]
    with torch.inference_mode():
        logp = torch.log_softmax(backend.model(input_ids=ids).logits[0].float(), -1)
    out = []
    for r in range(enc.n_responses):
        pos = np.nonzero(enc.response_of == r)[0]
        out.append(-logp[pos - 1, ids[0, pos]].double().sum().item())
    return out


def test_matches_brute_force(qwen_backend, requests):
    assert qwen_backend.fast_path and qwen_backend._rows is not None
    results = score_all(qwen_backend, requests)
    for req, res in zip(requests, results):
        np.testing.assert_allclose(res.nll, brute_force(qwen_backend, req), atol=1e-3, rtol=0)
        assert res.n_tokens == [int((qwen_backend.encode(req).response_of == r).sum())
                                for r in range(len(res.nll))]


def test_chunk_boundaries_at_response_tokens_change_nothing(qwen_backend, psych201):
    """A small token budget splits every transcript into chunks, some of which open with a
    response token (checked); the scores equal one pass per batch of everything. Transcripts are
    cut to their first 1,500 characters' responses so the chunks stay few."""
    short = []
    for p in (load(psych201 / "busch2024_stroop", max_participants=2).participants
              + load(psych201 / "guenther2022relational", max_participants=2).participants):
        end = max(p.text.rfind(">>", 0, 1500), p.text.find(">>"))  # at least one response
        short.append(ScoreRequest(transcript=prepare_transcript(p.text[: end + 2])))
    # The budget: the position of the first response token of the first transcript, so that
    # a chunk opens exactly there (and elsewhere wherever multiples of it land on responses).
    size = int(np.argmax(qwen_backend.encode(short[0]).response_of >= 0))
    budget = qwen_backend.batch_tokens
    try:
        qwen_backend.batch_tokens = size
        chunked = score_all(qwen_backend, short)
        qwen_backend.batch_tokens = 10**6
        assert len(qwen_backend.batches([len(qwen_backend.encode(r)) for r in short])) == 1
        whole = score_all(qwen_backend, short)
    finally:
        qwen_backend.batch_tokens = budget
    inside = 0
    for req in short:
        response_of = qwen_backend.encode(req).response_of
        edges = np.arange(size, len(response_of), size)
        # A response token opening a chunk: its probability comes from the previous chunk's last row.
        inside += int(np.sum(response_of[edges] >= 0))
    assert inside > 0
    for a, b in zip(chunked, whole):
        assert len(a.nll) == len(b.nll) > 0
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-4, rtol=0)


def test_row_restriction_and_full_logits_agree(qwen_dir, requests):
    spec = ModelSpec(path=str(qwen_dir), chat="off", dtype="float32", device="cpu")
    fast = load_backend(spec)
    plain = load_backend(spec)
    _rows.uninstall(plain._rows)
    plain._rows = None
    full = load_backend(spec)
    full.fast_path = False
    for a, b, c in zip(score_all(fast, requests), score_all(plain, requests), score_all(full, requests)):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-4, rtol=0)
        np.testing.assert_allclose(a.nll, c.nll, atol=1e-4, rtol=0)


def test_logits_are_chunked_without_changing_scores(qwen_backend, requests, monkeypatch):
    whole = score_all(qwen_backend, requests[:2])
    # 16 rows per chunk: many chunks per transcript.
    monkeypatch.setitem(_hf.LOGITS_CHUNK_BYTES, "cpu", 1)
    chunked = score_all(qwen_backend, requests[:2])
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-5, rtol=0)


def test_token_budget_marks_cut_responses(qwen_backend, requests):
    req = requests[0]
    n = len(qwen_backend.encode(req))
    full = score_all(qwen_backend, [req])[0]
    cut = score_all(qwen_backend, [req.model_copy(update={"max_tokens": n // 3})])[0]
    kept = [i for i, x in enumerate(cut.nll) if not np.isnan(x)]
    assert kept and cut.token_truncated
    assert set(cut.token_truncated) == {i for i, x in enumerate(cut.nll) if np.isnan(x)}
    np.testing.assert_allclose([cut.nll[i] for i in kept], [full.nll[i] for i in kept], atol=1e-4)
    assert cut.n_input_tokens == n // 3


def test_fingerprint_tracks_weights_and_settings(qwen_dir, tmp_path):
    import shutil

    a = load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32"))
    copy = shutil.copytree(qwen_dir, tmp_path / "copy")
    b = load_backend(ModelSpec(path=str(copy), chat="off", dtype="float32"))
    assert a.fingerprint()["weights"] == b.fingerprint()["weights"]
    with torch.no_grad():
        b.model.lm_head.weight.mul_(1.01)
    b.model.save_pretrained(copy)
    c = load_backend(ModelSpec(path=str(copy), chat="off", dtype="float32"))
    assert c.fingerprint()["weights"] != a.fingerprint()["weights"]
    d = load_backend(ModelSpec(path=str(qwen_dir), chat="on", dtype="float32"))
    assert d.fingerprint() != a.fingerprint()


def test_model_spec_parsing():
    from surrogate.models import ModelSpec

    m = ModelSpec.parse("chat=Qwen/Qwen3-0.6B@abc123", dtype="float32")
    assert (m.name, m.path, m.revision, m.dtype, m.label) == ("chat", "Qwen/Qwen3-0.6B", "abc123", "float32", "chat")
    assert ModelSpec.parse("Qwen/Qwen3-0.6B").label == "Qwen/Qwen3-0.6B"
    assert not ModelSpec.parse("Qwen/Qwen3-0.6B").trust_remote_code


def test_top1_is_the_vocabulary_argmax(qwen_backend, requests):
    """`top1` (the paper's accuracy on single-token responses) equals the argmax of the full
    logits at every token of each response. A random model is never right, so the LM head is
    biased towards one token that some responses consist of: exactly those become hits."""
    encs = [qwen_backend.encode(r) for r in requests]
    single = [e.ids[np.nonzero(e.response_of == r)[0][0]] for e in encs for r in range(e.n_responses)
              if (e.response_of == r).sum() == 1]
    favourite = max(set(single), key=single.count)

    def boost(module, args, output):
        output[..., favourite] += 1e4
        return output

    handle = qwen_backend._head.register_forward_hook(boost)
    try:
        results = score_all(qwen_backend, requests)
        hits = misses = 0
        for enc, res in zip(encs, results):
            with torch.inference_mode():
                top = qwen_backend.model(input_ids=torch.tensor(enc.ids)[None]).logits[0].argmax(-1).numpy()
            for r in range(enc.n_responses):
                pos = np.nonzero(enc.response_of == r)[0]
                expected = float(all(top[t - 1] == enc.ids[t] for t in pos))
                assert expected == float(all(enc.ids[t] == favourite for t in pos))
                assert res.top1[r] == expected, (r, res.top1[r], expected)
                hits, misses = hits + expected, misses + (1 - expected)
    finally:
        handle.remove()
    assert hits >= 2 and misses >= 2


def test_weight_digest_covers_the_middle_of_large_files(tmp_path, monkeypatch):
    """A change in the middle of a large checkpoint changes its key (the old digest read only
    both ends); digests are cached by path, size, inode, modification and change time, and
    recomputed when these change."""
    import json
    import os

    from surrogate._cache import cache_dir

    monkeypatch.setenv("SURROGATE_CACHE", str(tmp_path / "cache"))  # an empty cache of its own
    monkeypatch.setattr(_loading, "_CACHE_FROM", 1)  # cache even this small file
    f = tmp_path / "model.safetensors"
    data = bytearray(os.urandom(40 * 2**20))
    f.write_bytes(bytes(data))
    first = _loading._file_digest(f)
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    second = _loading._file_digest(f)
    assert second != first
    entries = json.loads((cache_dir() / "digests.json").read_text())
    assert sorted(e["sha256"] for e in entries.values()) == sorted([first, second])
    # A cached digest is what a later call returns for the unchanged file.
    key = next(k for k, v in entries.items() if v["sha256"] == second)
    entries[key]["sha256"] = "from-the-cache"
    (cache_dir() / "digests.json").write_text(json.dumps(entries))
    assert _loading._file_digest(f) == "from-the-cache"
    # Weights changed in place with their size and modification time restored: the change
    # time moved, so the digest is recomputed (it was kept before: mean NLL 10.2 -> 30.2 under
    # one unit key).
    stat = f.stat()
    data[len(data) // 3] ^= 0xFF
    f.write_bytes(bytes(data))
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert f.stat().st_mtime_ns == stat.st_mtime_ns and f.stat().st_size == stat.st_size
    third = _loading._file_digest(f)
    assert third not in (first, second, "from-the-cache")
    # The cache's temporary is never written through a planted link.
    victim = tmp_path / "victim"
    victim.write_text("precious")
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (cache_dir() / f".digests-{pid}.tmp").symlink_to(victim)
    data[0] ^= 0xFF
    f.write_bytes(bytes(data))
    _loading._file_digest(f)
    assert victim.read_text() == "precious"


def test_mistyped_model_folder_is_not_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for typo in ("runs/qwen3", "./qwen3", "models/a/b"):
        with pytest.raises(FileNotFoundError, match="no such file or folder"):
            load_backend(ModelSpec(path=typo))


def test_device_map_loading_scores_like_a_plain_load(qwen_dir, psych201, monkeypatch):
    """`--device map` (device_map="auto", for models larger than one GPU): on a machine
    without GPUs accelerate places every layer on the CPU; scores equal a plain load."""
    from surrogate.data import load, prepare_transcript
    from surrogate.models import ModelSpec, ScoreRequest, load_backend, score_all

    people = load(psych201 / "busch2024_stroop", max_participants=2).participants
    reqs = [ScoreRequest(transcript=prepare_transcript(p.text)) for p in people]
    plain = score_all(load_backend(ModelSpec(path=str(qwen_dir), chat="off", device="cpu")), reqs)
    from transformers import AutoModelForCausalLM

    seen = {}
    original = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    mapped_backend = load_backend(ModelSpec(path=str(qwen_dir), chat="off", device="map"))
    assert seen.get("device_map") == "auto" and mapped_backend.device == "cpu"
    mapped = score_all(mapped_backend, reqs)
    for a, b in zip(plain, mapped):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-5)


@pytest.mark.parametrize("fixture", ["qwen_dir", "llama_dir", "qwen3_vl_dir"])
def test_shared_instruction_prefix_runs_once_and_changes_nothing(request, fixture, psych201):
    """guenther2022relational transcripts open with the same instructions: in one batch that
    prefix runs once and its cache serves every transcript; NLLs equal a plain pass."""
    from surrogate.data import load, prepare_transcript
    from surrogate.models import ModelSpec, ScoreRequest, load_backend, score_all

    folder = request.getfixturevalue(fixture)
    people = load(psych201 / "guenther2022relational", max_participants=5).participants
    reqs = [ScoreRequest(transcript=prepare_transcript(p.text)) for p in people]
    backend = load_backend(ModelSpec(path=str(folder), chat="off", device="cpu", batch_tokens=1 << 16))
    assert backend.prefix_reuse_supported and not backend.prefix_reuse  # on by default on CUDA only
    backend.prefix_reuse = True
    reused = score_all(backend, reqs)
    assert backend.prefix_tokens_saved >= 4 * 256  # four of five transcripts skip a long prefix
    backend.prefix_reuse = False
    plain = score_all(backend, reqs)
    for a, b in zip(reused, plain):
        assert a.n_tokens == b.n_tokens and a.top1 == b.top1
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-4)


def test_a_batch_out_of_memory_is_split_and_retried(qwen_dir, requests, monkeypatch):
    """A padded pass that runs out of memory is split in halves until it fits; the scores are
    those of an unconstrained run and later batches get half the budget. One transcript that
    cannot fit is an error naming the fix."""
    backend = load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32", batch_tokens=1 << 20))
    want = score_all(backend, requests)
    real = backend._score_batch
    sizes = []

    def small_memory(items):
        sizes.append(len(items))
        if len(items) > 1 and sum(len(e) for e in items) > 6000:
            raise torch.OutOfMemoryError("simulated")
        return real(items)

    monkeypatch.setattr(backend, "_score_batch", small_memory)
    got = score_all(backend, requests)
    for a, b in zip(want, got):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-4, rtol=0)
    assert sizes[0] == len(requests) and min(sizes) < len(requests)
    assert backend.batch_tokens < 1 << 20
    monkeypatch.setattr(backend, "_score_batch", lambda items: (_ for _ in ()).throw(torch.OutOfMemoryError()))
    with pytest.raises(torch.OutOfMemoryError, match="--max-tokens"):
        score_all(backend, requests[:1])


def test_token_budget_from_free_memory():
    """The per-pass budget follows the model's shape and the free memory: an 8B shape gets
    fewer tokens than a 0.6B shape, more memory gives more tokens, a cache costs tokens."""
    from transformers import Qwen3Config

    from surrogate.models._budget import bytes_per_token, token_budget

    small = Qwen3Config(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                        num_key_value_heads=8, head_dim=128)
    large = Qwen3Config(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                        num_key_value_heads=8, head_dim=128)
    gib = 2**30
    assert token_budget(large, 2, 60 * gib) < token_budget(small, 2, 60 * gib)
    assert token_budget(large, 2, 60 * gib) > token_budget(large, 2, 20 * gib)
    assert bytes_per_token(large, 2, cache=True) > bytes_per_token(large, 2, cache=False)
    assert token_budget(large, 2, 60 * gib) % 1024 == 0
    assert token_budget(large, 2, 1) == 1024 and token_budget(small, 1, 10**15) == 1 << 20
    # An H100 after loading the 8B weights in bf16 (about 62 GiB free): hundreds of thousands
    # of tokens per pass, so batches are limited by the transcripts, not the budget.
    assert 100_000 < token_budget(large, 2, 62 * gib) < 400_000


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["qwen_dir", "llama_dir", "olmo3_dir"])
def test_packed_batches_score_like_padded_ones(request, requests, fixture):
    """A batch packed into one row (positions restarting per transcript, boundaries as
    cu_seqlens: FlashAttention's varlen input) gives the padded batch's scores. On CPU the
    same packed input runs through SDPA with a block-diagonal mask, so the packing itself is
    checked here; the budget counts the packed tokens, not longest x batch size."""
    backend = load_backend(ModelSpec(path=str(request.getfixturevalue(fixture)), chat="off", dtype="float32",
                                     batch_tokens=1 << 20))
    assert not backend.packing  # SDPA: padded batches unless FlashAttention is in use
    assert backend._check_packing()
    padded = score_all(backend, requests)
    lengths = [len(backend.encode(r)) for r in requests]
    backend.packing, backend.batch_tokens = True, sum(lengths)
    assert backend.batches(lengths) == [sorted(range(len(lengths)), key=lambda i: -lengths[i])]
    backend.packing = False
    assert len(backend.batches(lengths)) > 1  # padding would need more passes for that budget
    backend.packing = True
    packed = score_all(backend, requests)
    for a, b in zip(padded, packed):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-4, rtol=0)
        assert a.n_tokens == b.n_tokens and a.top1 == b.top1


def test_packing_is_refused_where_layers_carry_state_across_transcripts(qwen3_5_dir):
    """Qwen3.5's linear-attention layers run through a packed row as one sequence, so the
    load-time probe refuses packing for them."""
    backend = load_backend(ModelSpec(path=str(qwen3_5_dir), chat="off", dtype="float32"))
    assert backend.recurrent and not backend._check_packing()


def test_attention_implementation_is_chosen_and_reported(qwen_dir, qwen_backend, requests):
    """--attention names the transformers implementation; eager attention gives SDPA's scores,
    and run.json's describe() says which one ran."""
    eager = load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32", attention="eager"))
    assert eager.describe()["attention"] == "eager" and qwen_backend.describe()["attention"] == "sdpa"
    assert _loading.resolve_attention("auto", "cpu") == "sdpa"
    for a, b in zip(score_all(eager, requests[:3]), score_all(qwen_backend, requests[:3])):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-4, rtol=0)
