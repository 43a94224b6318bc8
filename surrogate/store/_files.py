"""Files that appear whole or not at all, never through a link, and one writer per share of
a folder: the primitives every writer of surrogate uses."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def exclusive_file(path: Path):
    """A new file opened for writing that did not exist before, never through a link: a
    temporary name planted in advance (a symlink to another file) makes this fail instead
    of writing through it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return os.fdopen(fd, "wb")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Written beside and renamed over: readers see the old file or the new, never half. A
    failed write (a full disk) leaves no temporary behind."""
    import uuid

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with exclusive_file(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: object) -> None:
    import json

    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


@contextmanager
def writer_lock(out: Path, shard: str) -> Iterator[None]:
    """One writer per (folder, shard) at a time: a second process on the same share of the
    work stops at once with a clear error instead of scoring everything twice. The lock is
    the kernel's (flock): it dies with its process, so a killed run never leaves it behind,
    and a clean exit removes the file. The file is never opened through a symbolic link."""
    import errno
    import fcntl
    import time

    path = out / f".writer-{shard}.lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ValueError(f"{path} is a symbolic link; surrogate does not write through links (remove it)") from None
            raise
        f = os.fdopen(fd, "r+")
        try:
            # A few tries: another writer starting up looks, briefly, at whether this one is alive.
            for attempt in range(20):
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == 19:
                        raise
                    time.sleep(0.05)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ValueError(f"{out}: {holder} is already writing shard {shard} of this folder; wait for "
                             "it, or give each process its own share with --shard K/N (torchrun ranks do "
                             "this themselves)") from None
        # The holder before us may have removed the file after we opened it: then our lock is
        # on an unlinked file, and we try again on the path as it is now.
        try:
            same = os.path.samestat(os.fstat(f.fileno()), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}")
        f.flush()
        yield
        path.unlink(missing_ok=True)  # clean exit: no lock file left in the folder
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
