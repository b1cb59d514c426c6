"""`heap.return_freed_memory`: multi-MiB blocks freed in the middle of glibc's heap (what a
transformer's activations leave behind) stay resident until it runs, and leave after.
Run in a fresh process, so the heap's state is this program's alone."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROGRAM = r"""
import numpy as np
from distill_core.heap import return_freed_memory

def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

big = np.ones(20 << 18, dtype=np.float32)
del big  # a freed 20 MiB mapping: glibc now serves blocks up to 20 MiB from its heap
base = rss_mib()
blocks = []
for i in range(40):  # ~5 MiB blocks, each followed by a small block that pins it in place
    blocks.append(np.ones((5 << 18) + i * 1024, dtype=np.float32))
    blocks.append(np.ones(4096, dtype=np.float32))
for j in range(0, len(blocks), 2):
    blocks[j] = None  # 200 MiB freed, the pins kept
held = rss_mib() - base
trimmed = return_freed_memory()
print(round(held), round(rss_mib() - base), trimmed)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux")
                    or not hasattr(ctypes.CDLL(None), "malloc_trim"), reason="glibc only")
def test_freed_heap_blocks_leave_the_process_when_returned() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], check=True, capture_output=True,
                         text=True).stdout.split()
    held, after, trimmed = int(out[0]), int(out[1]), out[2]
    assert held >= 150  # without it the freed 200 MiB stay resident
    assert after <= 20 and trimmed == "True"
