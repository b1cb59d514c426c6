"""`heap.keep_large_blocks_mapped`: freed multi-MiB blocks go back to the system instead of
staying in glibc's heap (what made the MiniLM encoder's RSS grow batch after batch).
Each case runs in a fresh process: the setting is process-wide."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROGRAM = r"""
import sys
import numpy as np

def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "on":
    from distill_core.heap import keep_large_blocks_mapped
    assert keep_large_blocks_mapped() and keep_large_blocks_mapped()
big = np.ones(20 << 18, dtype=np.float32)
del big  # a freed 20 MiB mapping: glibc raises its threshold to 20 MiB
base = rss_mib()
blocks = []
for i in range(40):  # ~5 MiB blocks, each followed by a small heap block that pins it
    blocks.append(np.ones((5 << 18) + i * 1024, dtype=np.float32))
    blocks.append(np.ones(4096, dtype=np.float32))
for j in range(0, len(blocks), 2):
    blocks[j] = None  # 200 MiB freed, the pins kept
print(round(rss_mib() - base))
"""


def _held_after_free(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallopt")
                    or not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_blocks_leave_the_process_only_with_the_fixed_threshold() -> None:
    assert _held_after_free("off") >= 150  # glibc's default keeps the freed 200 MiB
    assert _held_after_free("on") <= 20


def test_a_users_own_threshold_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from distill_core import heap

    monkeypatch.setattr(heap, "_applied", None)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert heap.keep_large_blocks_mapped() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert heap.keep_large_blocks_mapped() is False  # decided once per process
