"""Encoding ahead: windows prepared on a thread are the same windows, in the same order;
preparation really runs while the caller holds a window; errors arrive where they happened;
an abandoned pipeline leaves no thread behind; scores do not change."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from surrogate.data import load, prepare_transcript
from surrogate.models import ChoiceRequest, ModelSpec, ScoreRequest, load_backend
from surrogate.models._prefetch import windows


def _prepare(x: int) -> list[int]:
    return [x] * (x % 5 + 1)  # items of different sizes


@pytest.mark.parametrize("depth", [1, 3])
def test_windows_ahead_are_the_inline_windows(depth):
    items = list(range(200))
    inline = list(windows(items, _prepare, size=len, window=17, ahead=False))
    ahead = list(windows(items, _prepare, size=len, window=17, ahead=True, depth=depth))
    assert ahead == inline
    assert [i for w in inline for i, _ in w] == items
    assert all(sum(len(p) for _, p in w) >= 17 for w in inline[:-1])
    assert len(inline) > 10


def test_the_next_window_is_prepared_while_the_caller_holds_one():
    """The caller waits, holding window 0, for an item of window 1 to be prepared: only a
    pipeline that prepares on another thread gets there (inline, the wait times out)."""
    second_window = threading.Event()
    threads = set()

    def prepare(x):
        threads.add(threading.current_thread().name)
        if x >= 10:
            second_window.set()
        return [x]

    for ahead in (True, False):
        second_window.clear()
        it = windows(list(range(40)), prepare, size=len, window=10, ahead=ahead)
        first = next(it)
        assert [i for i, _ in first] == list(range(10))
        assert second_window.wait(timeout=30 if ahead else 0.5) is ahead
        assert [i for w in it for i, _ in w] == list(range(10, 40))
    assert threading.main_thread().name in threads and "surrogate-prepare" in threads


def test_only_a_few_windows_wait_ahead():
    prepared = []
    deep = threading.Event()

    def prepare(x):
        prepared.append(x)
        if x >= 30:
            deep.set()
        return [x]

    it = windows(list(range(1000)), prepare, size=len, window=10, ahead=True, depth=2)
    next(it)
    # Windows 1 and 2 wait in the queue, window 3 is being prepared (items 30..39); nothing
    # beyond it can be prepared while the caller holds window 0.
    assert deep.wait(timeout=30)
    time.sleep(0.3)
    assert max(prepared) < 40
    it.close()


def test_an_error_arrives_after_the_windows_before_it():
    def prepare(x):
        if x == 25:
            raise ValueError("participant 25: response 3 is not among its options")
        return [x]

    for ahead in (True, False):
        got = []
        with pytest.raises(ValueError, match="participant 25"):
            for w in windows(list(range(40)), prepare, size=len, window=10, ahead=ahead):
                got.append([i for i, _ in w])
        assert got == [list(range(10)), list(range(10, 20))]


def test_an_abandoned_pipeline_leaves_no_thread():
    it = windows(list(range(10_000)), lambda x: [x], size=len, window=10, ahead=True, depth=1)
    next(it)
    it.close()
    assert not any(t.name == "surrogate-prepare" and t.is_alive() for t in threading.enumerate())


def test_encoding_ahead_changes_no_score(qwen_dir, psych201, monkeypatch):
    """The HF scorer with encoding on a thread (as on GPU) and several windows gives the
    scores and option log-probabilities of encoding inline in one window."""
    from surrogate.models import _hf

    backend = load_backend(ModelSpec(path=str(qwen_dir), chat="off", dtype="float32", batch_tokens=2048))
    people = (load(psych201 / "busch2024_stroop", max_participants=3).participants
              + load(psych201 / "guenther2022relational", max_participants=3).participants)
    plain = [ScoreRequest(transcript=prepare_transcript(p.text)) for p in people]
    opts = ("down", "left", "right", "right away")
    choice = [ChoiceRequest(transcript=r.transcript, options=(opts,) * len(r.transcript.spans)) for r in plain[:3]]

    def run(ahead: bool, window_tokens: int):
        backend.encode_ahead = ahead
        monkeypatch.setattr(_hf, "MIN_WINDOW_TOKENS", window_tokens)
        monkeypatch.setattr(_hf, "WINDOW_BATCHES", 1)
        return dict(backend.score(plain)), dict(backend.score_choices(choice))

    inline = run(False, 10**9)
    assert len(list(windows(plain, backend.encode, size=len, window=4096, ahead=False))) >= 3
    ahead = run(True, 4096)
    for table_a, table_b in zip(inline, ahead):
        assert sorted(table_a) == sorted(table_b) == list(range(len(table_a)))
        for i in table_a:
            np.testing.assert_allclose(table_a[i].nll, table_b[i].nll, atol=1e-4)
            assert table_a[i].n_tokens == table_b[i].n_tokens
    for i in ahead[1]:
        np.testing.assert_allclose(inline[1][i].option_logprobs, ahead[1][i].option_logprobs, atol=1e-4)
