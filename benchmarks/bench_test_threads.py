"""The test suite's thread setting, side by side: OpenMP threads per test process.

`scripts/test.sh` runs two pytest-xdist workers on a 2-core machine. torch (and
OpenMP in general) starts one thread per core in each process by default, so two
workers ask for twice the cores there are. This runs the same test selection
with `-n 2 --dist loadfile` under each setting, alternating (A B A B ...), each in a
fresh pytest process, and reports the wall times and their ratio to the default.

    python benchmarks/bench_test_threads.py tests/bench/test_learners.py tests/learned \
        --settings default 1 --repeats 2

`default` leaves OMP_NUM_THREADS unset; a number sets it. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(tests: list[str], setting: str, workers: int) -> tuple[float, int]:
    """Wall seconds and exit status of one pytest run of `tests` under `setting`."""
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("OMP_NUM_THREADS", None)
    if setting != "default":
        env["OMP_NUM_THREADS"] = setting
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n",
               str(workers), "--dist", "loadfile", *tests]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", nargs="+", help="test files or folders")
    parser.add_argument("--settings", nargs="+", default=["default", "1"],
                        help="OMP_NUM_THREADS values; `default` leaves it unset")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    times: dict[str, list[float]] = {s: [] for s in args.settings}
    for repeat in range(args.repeats):
        for setting in args.settings:
            seconds, status = run_once(args.tests, setting, args.workers)
            if status != 0:
                sys.exit(f"pytest exited {status} with OMP_NUM_THREADS={setting}: fix the "
                         "tests first, a failing run times nothing")
            times[setting].append(seconds)
            print(f"repeat {repeat} OMP_NUM_THREADS={setting}: {seconds:.1f} s", flush=True)
    base = statistics.median(times[args.settings[0]])
    print("| OMP_NUM_THREADS | wall s (each run) | median | x first |\n|---|---|---|---|")
    for setting, values in times.items():
        median = statistics.median(values)
        print(f"| {setting} | {', '.join(f'{v:.1f}' for v in values)} | {median:.1f} | "
              f"{base / median:.2f} |")
    if args.out:
        args.out.write_text(json.dumps({"tests": args.tests, "workers": args.workers,
                                        "cpus": os.cpu_count(), "times": times}, indent=2))


if __name__ == "__main__":
    main()
