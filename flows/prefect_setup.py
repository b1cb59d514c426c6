"""The local Prefect database, migrated once before concurrent first runs race for it.

With no `PREFECT_API_URL`, every `textdistill run` starts Prefect's temporary
server, and each server migrates the SQLite database in `PREFECT_HOME` on
start. Two first runs at once then race on the same migrations and print
SQLite tracebacks (the results stay correct). Migrating here, under a file
lock and before the flow starts, leaves every server an up-to-date database.
A marker per Prefect version skips the work on later runs.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path


def _marker(home: Path) -> Path:
    from importlib.metadata import version

    return home / f".textdistill-db-migrated-{version('prefect')}"


def migrate_local_database() -> bool:
    """Migrate the temporary server's database once per Prefect version; True when this call
    did the work. Does nothing when runs go to a Prefect server (`PREFECT_API_URL`)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME

    if PREFECT_API_URL.value():
        return False
    home = Path(PREFECT_HOME.value()).expanduser()
    if _marker(home).is_file():
        return False
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".textdistill-db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other first runs wait here, then skip
        if _marker(home).is_file():
            return False
        from prefect.server.database import provide_database_interface

        asyncio.run(provide_database_interface().create_db())
        _marker(home).write_text(str(os.getpid()), encoding="utf-8")
        return True
