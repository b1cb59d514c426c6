"""A rerun with nothing to compute: answered from the run folder, without Prefect.

`textdistill run` plans first (the `textdistill plan` logic, which imports none of torch,
transformers, ray or prefect). When every stage the config runs is already done in the run
folder (fingerprint matched, parts verified) and no Prefect server is configured, nothing
would run: starting Prefect's temporary server and importing the models would be almost all
of the command's time. The CLI then prints the run's scores from the folder (rebuilding the
report only when it is missing or older than a stage) and says that no flow run was
recorded. With a Prefect server configured (`PREFECT_API_URL`) the flow always runs, so the
server records every rerun and its Cached task states; the server is already up, so that
costs little.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distill_core.artifacts.location import Where
    from distill_core.config import RunConfig

NO_FLOW_RUN = ("no Prefect flow run was recorded: nothing ran (set PREFECT_API_URL to record "
               "reruns on a Prefect server)")
REPORT_FILES = ("report.md", "report.html")
TEST_MODE = ("TEST_MODE", "UNIT_TEST_MODE", "TESTING_UNIT_TEST_MODE", "TESTING_TEST_MODE")


def _ask_prefect() -> bool:
    """Prefect's own answer (imports Prefect: about a second)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def _read_toml(path: Path) -> dict | None:
    """A TOML file's content ({} when there is none); None when it cannot be read here."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: Prefect answers instead
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None  # unreadable: let Prefect decide


def _profile_sets_api_url() -> bool | None:
    """Whether the active Prefect profile sets PREFECT_API_URL, read as Prefect's settings
    read it (`prefect.settings.sources`: one profiles file, else the bundled default
    profile); None when that cannot be told here."""
    spec = find_spec("prefect")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    bundled_path = Path(next(iter(spec.submodule_search_locations))) / "settings/profiles.toml"
    if any(os.environ.get(f"PREFECT_{name}") for name in TEST_MODE):
        path = bundled_path
    elif os.environ.get("PREFECT_PROFILES_PATH"):
        path = Path(os.environ["PREFECT_PROFILES_PATH"])
    elif os.environ.get("PREFECT_HOME"):
        path = Path(os.environ["PREFECT_HOME"]) / "profiles.toml"
    else:
        home_file = Path("~/.prefect/profiles.toml").expanduser()
        path = home_file if home_file.exists() else bundled_path
    profiles, bundled = _read_toml(path), _read_toml(bundled_path)
    if profiles is None or bundled is None:
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active")
    settings = profiles.get("profiles", {}).get(active) if path.exists() else None
    if settings is None:  # no file, or no such profile in it: Prefect's default profile
        settings = bundled.get("profiles", {}).get(bundled.get("active", "ephemeral"), {})
    return bool(settings.get("PREFECT_API_URL"))


def _project_settings() -> bool:
    """Prefect settings files in the working folder (`.env`, `prefect.toml`, pyproject's
    `[tool.prefect]`), which may set the API URL or move the profiles."""
    dotenv, pyproject = Path(".env"), Path("pyproject.toml")
    try:
        return (Path("prefect.toml").is_file()
                or (dotenv.is_file() and "PREFECT_" in dotenv.read_text(errors="replace"))
                or (pyproject.is_file() and "tool.prefect" in pyproject.read_text(
                    errors="replace")))
    except OSError:
        return True


def prefect_server_configured() -> bool:
    """Whether flow runs go to a Prefect server (PREFECT_API_URL from the environment, the
    active profile or a project settings file). Told from those files without importing
    Prefect when they are plain; otherwise Prefect is asked."""
    if "PREFECT_API_URL" in os.environ:
        return bool(os.environ["PREFECT_API_URL"]) or _ask_prefect()
    if _project_settings():
        return _ask_prefect()
    answer = _profile_sets_api_url()
    return _ask_prefect() if answer is None else answer


def finished_run(cfg: RunConfig, runs_dir: str | Path) -> tuple[Where, tuple[str, ...]] | None:
    """(run folder, its stages) when every stage `cfg` runs is done there, fingerprints
    matching and parts verified; None otherwise, or when planning fails (the flow then runs
    and reports the problem as it always does)."""
    from distill_core.pipeline.plan import plan_run

    try:
        planned = [p for p in plan_run(cfg, runs_dir) if p.runs]
    except Exception:  # noqa: BLE001 - the flow reports it, on the server where there is one
        return None
    if not planned or any(p.status != "done" for p in planned):
        return None
    from distill_core.artifacts.location import location

    return location(runs_dir) / cfg.run_id(), tuple(p.name for p in planned)


def report_is_current(run_dir: Where, stages: tuple[str, ...]) -> bool:
    """report.md and report.html exist and are no older than any stage's manifest."""
    try:
        newest = max((run_dir / s / "manifest.json").stat().st_mtime_ns for s in stages)
        return all((run_dir / name).stat().st_mtime_ns >= newest for name in REPORT_FILES)
    except (OSError, ValueError):
        return False
