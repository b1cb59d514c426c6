"""Concurrent first runs with a fresh PREFECT_HOME share one database migration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIGRATE = ("from flows.prefect_setup import migrate_local_database; "
           "print('migrated' if migrate_local_database() else 'skipped')")


def test_three_first_runs_migrate_the_local_database_once_without_tracebacks(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    processes = [subprocess.Popen([sys.executable, "-c", MIGRATE], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0]
    assert sorted(out.strip() for out, _ in results) == ["migrated", "skipped", "skipped"]
    assert not any("Traceback" in out + err for out, err in results)
    assert (tmp_path / "home" / "prefect.db").is_file()
    again = subprocess.run([sys.executable, "-c", MIGRATE], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == "skipped"
