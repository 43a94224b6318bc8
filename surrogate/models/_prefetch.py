"""Preparing the next inputs while the device computes on the current ones.

`windows` turns a sequence of requests into consecutive windows of prepared items (encoded
transcripts), each holding at least `window` units of work (tokens). With `ahead`, a producer
thread prepares the following windows while the caller runs the model on the current one;
tokenization releases the GIL (tokenizers' batch entry point), and the device releases it
while it computes, so the two overlap. Windows also bound memory: only `depth` prepared
windows wait at any time, never the whole run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

_DONE = object()


def _windows_inline(items: Sequence[T], prepare: Callable[[T], U], size: Callable[[U], int],
                    window: int) -> Iterator[list[tuple[int, U]]]:
    group: list[tuple[int, U]] = []
    total = 0
    for i, item in enumerate(items):
        prepared = prepare(item)
        group.append((i, prepared))
        total += size(prepared)
        if total >= window:
            yield group
            group, total = [], 0
    if group:
        yield group


def windows(items: Sequence[T], prepare: Callable[[T], U], *, size: Callable[[U], int], window: int,
            ahead: bool, depth: int = 2) -> Iterator[list[tuple[int, U]]]:
    """Consecutive windows of (index, prepare(item)), in input order; an error raised while
    preparing an item is raised here, after the windows before it."""
    if not ahead:
        yield from _windows_inline(items, prepare, size, window)
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                ready.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for group in _windows_inline(items, prepare, size, window):
                if not put(group):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put(e)
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="surrogate-prepare", daemon=True)
    worker.start()
    try:
        while True:
            got = ready.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        # The consumer stopped early (error, or a caller that closed the generator): release
        # the producer, which may be waiting on a full queue, and wait for it.
        stop.set()
        worker.join()
