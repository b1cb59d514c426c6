"""Taking cached signals parts into a stage: a checked copy against a checked hard link.

A nightly run whose corpus grew takes the signals parts of the ingest parts it has seen from
the per-part cache (`signals/part_cache.py`, `StageWriter.adopt`), and a first run keeps
each part it writes in that cache (`PartCache.save`). Both used to copy the file while
hashing it (`stage_writer.copy_hashed`); now they hard-link it and hash it
(`stage_writer.link_hashed`). This times the two side by side in one process on real parts
(a runs folder's `.cache/signals-parts/`), alternating which goes first, each round into a
fresh folder on the same file system, the outputs removed after each variant.

    python benchmarks/bench_part_adopt.py RUNS/.cache/signals-parts --rounds 3
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

from distill_core.artifacts.stage_writer import copy_hashed, link_hashed

VARIANTS = {"copy (before)": copy_hashed, "link (now)": link_hashed}


def take_all(parts: list[Path], into: Path, how) -> tuple[float, list[str]]:
    into.mkdir()
    start = time.perf_counter()
    digests = [how(part, into / part.name)[0] for part in parts]
    return time.perf_counter() - start, digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of Parquet parts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    parts = sorted(args.folder.glob("*.parquet"))
    size = sum(p.stat().st_size for p in parts)
    print(f"{len(parts)} parts, {size / 1e9:.2f} GB", flush=True)
    for part in parts:  # warm the page cache, as a nightly run finds a recent cache
        with open(part, "rb") as handle:
            while handle.read(8 << 20):
                pass
    scratch = args.folder.parent / ".bench-part-adopt"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    digests: dict[str, list[str]] = {}
    for round_ in range(args.rounds):
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            into = scratch / f"{round_}-{name.split()[0]}"
            seconds, digests[name] = take_all(parts, into, VARIANTS[name])
            times[name].append(seconds)
            shutil.rmtree(into)
            print(json.dumps({"round": round_, "variant": name, "s": round(seconds, 3)}),
                  flush=True)
    shutil.rmtree(scratch)
    assert digests["copy (before)"] == digests["link (now)"], "the variants disagree"
    before, now = (statistics.median(times[n]) for n in VARIANTS)
    print(f"\n| parts | GB | copy (before) s | link (now) s | speed-up |\n|---|---|---|---|---|\n"
          f"| {len(parts)} | {size / 1e9:.2f} | {before:.2f} | {now:.2f} | "
          f"{before / now:.1f}x |")


if __name__ == "__main__":
    main()
