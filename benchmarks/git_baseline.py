"""A module of this repository as it was at a commit, imported under another name, so a
benchmark can run the old code and the current code side by side in one process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def module_at(commit: str, path: str, folder: Path) -> ModuleType:
    """`path` (e.g. `distill_core/signals/row_cache.py`) at `commit`, written to `folder`
    and imported as `<its name>_baseline`."""
    source = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    name = f"{Path(path).stem}_baseline"
    target = folder / f"{name}.py"
    target.write_text(source)
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
