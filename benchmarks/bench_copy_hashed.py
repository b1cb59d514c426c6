"""Checked copies of cached parts: the kernel's copy then a hash, against the bytes passed
through Python and hashed on the way.

A nightly run copies the signals parts of the ingest parts it has seen from the per-part
cache into its stage (`StageWriter.adopt`), and a first run copies each part it writes into
that cache (`PartCache.save`), both through `stage_writer.copy_hashed`. It used to read and
write every byte here, hashing them as they passed (`copy_through_hashed`, kept as its
fallback); it now lets the kernel copy (`os.copy_file_range`; a copy-on-write clone on file
systems that have them) and hashes the copy. Copies either way, never links (issue 17).

Side by side in one process on real parts (a runs folder's `.cache/signals-parts/`), page
cache warm, `--rounds` rounds alternating which variant goes first, each into a fresh folder
on the same file system, removed after each variant; the digests must agree.

    python benchmarks/bench_copy_hashed.py RUNS/.cache/signals-parts --rounds 6
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's code

from distill_core.artifacts.stage_writer import copy_hashed, copy_through_hashed

VARIANTS = {"through Python (before)": copy_through_hashed, "kernel copy + hash (now)":
            copy_hashed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of Parquet parts")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    parts = sorted(args.folder.glob("*.parquet"))
    size = sum(p.stat().st_size for p in parts)
    print(f"{len(parts)} parts, {size / 1e9:.2f} GB", flush=True)
    for part in parts:  # warm the page cache, as a nightly run finds a recent cache
        with open(part, "rb") as handle:
            while handle.read(8 << 20):
                pass
    scratch = args.folder.parent / ".bench-copy-hashed"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    digests: dict[str, list[tuple[str, int]]] = {}
    for round_ in range(args.rounds):
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for index, name in enumerate(order):
            into = scratch / f"{round_}-{index}"
            into.mkdir()
            start = time.perf_counter()
            digests[name] = [VARIANTS[name](part, into / part.name) for part in parts]
            times[name].append(time.perf_counter() - start)
            shutil.rmtree(into)
            print(json.dumps({"round": round_, "variant": name, "s": round(times[name][-1], 3)}),
                  flush=True)
    shutil.rmtree(scratch)
    before, now = (digests[n] for n in VARIANTS)
    assert before == now, "the variants copied different bytes"
    medians = [statistics.median(times[n]) for n in VARIANTS]
    print("\n| parts | GB | " + " | ".join(f"{n} s, median (range)" for n in VARIANTS)
          + " | speed-up |\n|---|---|---|---|---|")
    print(f"| {len(parts)} | {size / 1e9:.2f} | "
          + " | ".join(f"{statistics.median(times[n]):.2f} ({min(times[n]):.2f}-"
                       f"{max(times[n]):.2f})" for n in VARIANTS)
          + f" | {medians[0] / medians[1]:.1f}x |")


if __name__ == "__main__":
    main()
