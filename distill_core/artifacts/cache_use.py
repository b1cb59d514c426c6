"""Who uses a runs folder's cache: running stages share a lock on it, reuses mark entries.

Every stage runs holding a shared `flock` on `<runs>/.cache/.in-use.lock` (`cache_in_use`,
taken by the stage runner), and `textdistill cache prune` removes entries only while it holds
the lock exclusively (`cache_exclusive`): it never deletes what a running stage, or a Ray
worker of its, is reading or writing, and a stage waits for a prune to end before it starts.
The kernel releases a lock when its process dies, so a killed run never leaves the cache
locked. On a folder where the lock file cannot be made (read-only) a stage runs unlocked:
nothing can be removed there either.

A stage that reuses an entry marks it (`mark_used`: the entry's record file, or its folder,
gets the current time as mtime), so an entry's mtime is when it was last written or reused,
which is what pruning by age and by size orders on.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distill_core.artifacts.location import RemotePath, Where
from distill_core.errors import StorageError

LOCK = ".in-use.lock"


class CacheBusy(StorageError):
    """A stage holds the cache: a prune tries again later (the scheduled flow retries)."""


def mark_used(path: Path) -> None:
    """Record that an entry (its record file or folder) was reused now; an entry that went
    meanwhile is no one's concern here (its reader verifies what it reads)."""
    try:
        os.utime(path)
    except OSError:
        pass


@contextmanager
def cache_in_use(cache_root: Where) -> Iterator[None]:
    """Hold the cache's shared lock while the block runs (object stores: no lock)."""
    if isinstance(cache_root, RemotePath):
        yield
        return
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        handle = open(cache_root / LOCK, "ab")  # noqa: SIM115 - held for the whole block
    except OSError:  # a read-only runs folder: nothing can prune it either
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH)  # waits while a prune holds it
        except OSError:  # a filesystem without locks: prune cannot lock it either
            pass
        yield


@contextmanager
def cache_exclusive(cache_root: Path) -> Iterator[None]:
    """Hold the cache's lock alone while the block runs; a one-line `StorageError` when a
    stage holds it (no waiting: a scheduled prune tries again later)."""
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / LOCK, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheBusy(
                f"the cache {cache_root} is in use by a running stage; prune it when the "
                "runs using this runs folder have finished") from None
        except OSError as exc:
            raise StorageError(
                f"cannot lock {cache_root / LOCK} ({exc.strerror}): its filesystem has no "
                "file locks, so a prune could remove what a running stage reads; delete "
                "entries by hand when no run is using this runs folder") from None
        yield
