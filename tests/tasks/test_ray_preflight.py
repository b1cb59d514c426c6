"""A configured Ray cluster that does not answer is one clear error within seconds."""

from __future__ import annotations

import socket
import time

import pytest

from distill_core.errors import ClusterUnavailable
from tasks.ray_executor import preflight


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the probe is


def test_a_dead_address_fails_fast_and_names_the_address() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(ClusterUnavailable, match=f"Ray cluster at {address}: no answer"):
        preflight(address)
    assert time.perf_counter() - start < 10
    with pytest.raises(ClusterUnavailable, match="expected host:port"):
        preflight("not-an-address")


def test_a_listening_address_and_auto_pass() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        preflight(f"127.0.0.1:{server.getsockname()[1]}")
        preflight(f"ray://127.0.0.1:{server.getsockname()[1]}")
    preflight("auto")
    preflight(None)
