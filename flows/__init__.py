"""Prefect flows users run and schedule, and the `textdistill` CLI."""

import os

# Arrow's allocator (mimalloc) keeps freed pages for a while before returning them. A
# streaming stage frees a batch's buffers every batch, so those kept pages made the run's
# peak RSS follow the bytes it streamed (+100-300 MB at 1M rows, measured by
# benchmarks/bench_scale.py) rather than what it holds. Return them at once; this must be
# set before pyarrow loads (importing `flows` comes first), and a user's own setting wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
