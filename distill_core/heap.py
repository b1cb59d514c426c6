"""Keep glibc's heap from holding on to freed transformer activations.

glibc serves an allocation below its mmap threshold from the heap, and raises that
threshold (up to 32 MiB) each time a larger mapped block is freed. After a few batches of
a transformer, its activation tensors (megabytes each, a new size for every padded length)
come from the heap, and the holes they leave when freed are seldom returned to the system:
the process's RSS only grows (MiniLM over long texts, 128 a batch: +1.3 GB after 1,024
texts, +2.0 GB after 2,048; `benchmarks/bench_encoder_rss.py`). A fixed threshold of 4 MiB
keeps such blocks in mappings of their own, unmapped when freed.

Process-wide, once per process. Nothing happens where the C library has no `mallopt`
(not glibc) or where the user set `MALLOC_MMAP_THRESHOLD_` themselves.
"""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 4 << 20
_applied: bool | None = None


def keep_large_blocks_mapped() -> bool:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD_BYTES`; True when it is in force."""
    global _applied
    if _applied is None:
        _applied = False
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return _applied
