"""Give freed heap memory back to the system (glibc's `malloc_trim`).

A transformer's activations are megabytes each and change size with every padded batch;
glibc serves many of them from its heap, and the holes they leave when freed stay
resident, so the encoder's RSS grew batch after batch. The encoder calls this after each
batch (with its token-capped batches: MiniLM over 2,048 256-token texts peaks 0.6 GB above
the model instead of 1.9 GB at 1.03x the wall time; `benchmarks/bench_encoder_rss.py`).
A no-op where the C library has no `malloc_trim` (not glibc).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
_looked_up = False


def return_freed_memory() -> bool:
    """Release the heap's free pages to the system; True when glibc did it."""
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            _trim = ctypes.CDLL(None).malloc_trim
            _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            _trim = None
    return bool(_trim is not None and _trim(0))
