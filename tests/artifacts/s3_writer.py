"""A stage writer in its own process, for the kill and concurrency tests of `test_s3_store.py`.

    python s3_writer.py RUNS RUN_ID FINGERPRINT TAG BATCHES [GO_FILE]

Writes the `ingest` stage of run RUN_ID in RUNS batch by batch (one Parquet part of 50 rows
per batch, every row tagged TAG), printing `part N` after each, then publishes it with
FINGERPRINT. With GO_FILE it waits for that file first (two writers start together).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyarrow as pa

from distill_core.artifacts import stage_writer
from distill_core.artifacts import store as store_module


def main(runs: str, run_id: str, fingerprint: str, tag: str, batches: int,
         go: str | None = None) -> None:
    stage_writer.ROWS_PER_PART = 50
    store = store_module.RunStore(runs, run_id)
    while go and not Path(go).exists():
        time.sleep(0.01)
    writer = store.stage_writer("ingest")
    for batch in range(batches):
        ids = [f"{tag}-{batch}-{i}" for i in range(50)]
        writer.write(pa.table({"example_id": ids, "tag": [tag] * 50}))
        print(f"part {batch}", flush=True)
    writer.publish({"fingerprint": fingerprint, "finished_at": time.time(),
                    "counts": {"rows_in": 50 * batches, "rows_out": 50 * batches}})
    print("published", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], args[2], args[3], int(args[4]), args[5] if len(args) > 5 else None)
