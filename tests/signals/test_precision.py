"""`signals.precision: auto` (the default): bf16 where the device running the encoder runs it
faster than fp32 (a CPU with AMX, a GPU with native bf16), fp32 elsewhere; resolved before a
local run so the fingerprint names what runs, left `auto` on Ray, where each worker resolves
it (tests/tasks/test_ray_signals.py checks the per-worker record)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distill_core.config import load_config
from distill_core.errors import ConfigError
from distill_core.pipeline.order import stage_named
from distill_core.signals import encoder
from distill_core.signals.encoder import (
    GPU_DEVICE_NODES,
    recorded_precision,
    resolve_precision,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("units", "expected"), [
    (["amx_bf16", "amx_tile", "avx512_bf16"], "bf16"), (["amx_bf16", "amx_tile"], "bf16"),
    (["avx512_bf16"], "fp32"),  # measured slower than fp32 without AMX (RESULTS.md)
    ([], "fp32")])
def test_auto_on_a_cpu_follows_its_bf16_units(units: list[str], expected: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "cpu_bf16_units", lambda: units)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("auto", "mps") == "fp32"  # no bf16 path there: fp32
    for given in ("fp32", "bf16"):  # an explicit choice is kept, whatever the device
        assert resolve_precision(given, "cpu") == given


def test_the_default_is_auto_and_the_fingerprint_records_what_runs() -> None:
    settings = stage_named("signals").settings
    local = load_config(None)
    assert local.signals.precision == "auto"
    assert settings(local)["precision"] == resolve_precision("auto") != "auto"
    ray = load_config(None, ["compute.backend=ray"])
    assert settings(ray)["precision"] == "auto" == recorded_precision("auto", "ray")
    pinned = load_config(None, ["compute.backend=ray", "signals.precision=fp32"])
    assert settings(pinned)["precision"] == "fp32"  # explicit: the same on either backend
    with pytest.raises(ConfigError, match="'auto', 'fp32' or 'bf16'"):
        load_config(None, ["signals.precision=fp16"])


@pytest.mark.skipif(any(Path(n).exists() for n in GPU_DEVICE_NODES), reason="a GPU host")
def test_auto_is_resolved_without_importing_torch_on_a_host_without_gpus() -> None:
    """The fingerprint of a cached rerun needs the resolved precision: on a host without GPU
    device nodes that is told from /proc/cpuinfo alone."""
    code = ("import sys; from distill_core.signals.encoder import resolve_precision; "
            "print(resolve_precision('auto'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == [resolve_precision("auto", "cpu"), "False"]
