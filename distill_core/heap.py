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
import functools
from typing import Any


@functools.cache
def _malloc_trim() -> Any | None:
    """glibc's `malloc_trim`, or None where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def return_freed_memory() -> bool:
    """Release the heap's free pages to the system; True when glibc did it."""
    trim = _malloc_trim()
    return bool(trim is not None and trim(0))
