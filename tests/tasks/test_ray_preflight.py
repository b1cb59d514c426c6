"""A configured Ray cluster that does not answer, is not a Ray head, or refuses this process's
token (Ray's token auth: `RAY_AUTH_MODE=token`, `RAY_AUTH_TOKEN`) is one clear line within
seconds, naming the address as given; SIGTERM stops the check at once. Servers run on
127.0.0.1 only and are stopped by PID."""

from __future__ import annotations

import http.server
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from distill_core.errors import ClusterUnavailable
from tasks.ray_executor import preflight
from tests.servers.processes import free_port, start, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
CHECK = ("import sys\n"
         "from distill_core.errors import ClusterUnavailable\n"
         "from tasks.ray_preflight import preflight\n"
         "try:\n    preflight(sys.argv[1])\n    print('ok')\n"
         "except ClusterUnavailable as exc:\n    print(exc)\n")


def _env(**extra: str) -> dict[str, str]:
    """This environment without any Ray token settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return {**env, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", **extra}


def test_a_dead_address_fails_fast_and_names_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    start_at = time.perf_counter()
    with pytest.raises(ClusterUnavailable, match=f"Ray cluster at {address}: no answer"):
        preflight(address)
    assert time.perf_counter() - start_at < 10
    with pytest.raises(ClusterUnavailable, match="expected host:port"):
        preflight("not-an-address")


def test_a_port_that_is_not_a_ray_head_fails_within_the_budget() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        for port in (silent.getsockname()[1], web.server_address[1]):
            address = f"127.0.0.1:{port}"
            start_at = time.perf_counter()
            with pytest.raises(ClusterUnavailable) as caught:
                preflight(address, budget_s=2)
            message = str(caught.value)
            assert message.startswith(f"Ray cluster at {address}: the port answers but not as "
                                      "a Ray head") and "\n" not in message
            assert time.perf_counter() - start_at < 10
        client = f"ray://127.0.0.1:{silent.getsockname()[1]}"
        if importlib.util.find_spec("grpc") is not None:
            preflight(client)  # the Ray Client is installed: the TCP check only
        else:
            with pytest.raises(ClusterUnavailable, match=r"needs the Ray Client.*'\.\[ray\]'"):
                preflight(client)
    finally:
        web.shutdown()
        web.server_close()
        silent.close()
    preflight("auto")
    preflight(None)


def test_sigterm_stops_a_preflight_waiting_on_a_silent_port() -> None:
    """With a Python SIGTERM handler installed (as Prefect's engine and ray.init install one),
    a check blocked in C++ would defer it; the preflight waits in Python and stops at once."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(60)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        script = ("import signal, sys\n"
                  "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
                  "from tasks.ray_preflight import preflight\n"
                  f"preflight({address!r}, budget_s=120)\n")
        child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            held = [silent.accept()[0] for _ in range(2)]  # the TCP check, then the GCS call
            time.sleep(0.5)
            child.send_signal(signal.SIGTERM)
            sent = time.perf_counter()
            _, err = child.communicate(timeout=10)
            assert child.returncode == 143, err
            assert time.perf_counter() - sent < 3
            for connection in held:
                connection.close()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.fixture(scope="module")
def token_head():
    """A Ray head on 127.0.0.1 with token authentication on: (address, token)."""
    temp_dir = tempfile.mkdtemp(prefix="rp", dir="/tmp")  # short: Ray's socket paths
    token, port = secrets.token_hex(16), free_port()
    log = Path(temp_dir) / "head.log"
    head = start([RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                  "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false",
                  "--temp-dir", temp_dir, "--disable-usage-stats"],
                 _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token), log)
    try:
        wait_for(lambda: "Ray runtime started" in log.read_text(), 120, "Ray head", log, head)
        yield f"127.0.0.1:{port}", token
    finally:
        stop(head, grace=5)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert head.poll() is not None


def test_a_token_cluster_names_the_address_and_ray_auth_token(token_head, tmp_path: Path
                                                              ) -> None:
    address, token = token_head
    settings = {"none": _env(), "right": _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token),
                "wrong": _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-" + token),
                "missing": _env(RAY_AUTH_MODE="token", HOME=str(tmp_path))}  # no ~/.ray/auth_token
    start_at = time.perf_counter()
    children = {name: subprocess.Popen([sys.executable, "-c", CHECK, address], cwd=ROOT,
                                       env=env, stdout=subprocess.PIPE, text=True,
                                       stderr=subprocess.DEVNULL)
                for name, env in settings.items()}
    said = {name: child.communicate(timeout=60)[0].strip() for name, child in children.items()}
    assert time.perf_counter() - start_at < 30  # four checks side by side on a shared CPU
    assert said["right"] == "ok"
    for name in ("none", "wrong", "missing"):
        assert said[name].startswith(f"Ray cluster at {address}"), said
        assert "RAY_AUTH_TOKEN" in said[name] and "\n" not in said[name], said
    assert "sends no token; set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in said["none"]
    assert "refused this process's authentication token" in said["wrong"]
    assert "RAY_AUTH_MODE=token but no token is set" in said["missing"]


def test_a_run_against_a_token_cluster_without_the_token_exits_2_in_one_line(
        token_head, slice_dir: Path, tmp_path: Path, prefect_server) -> None:
    from prefect.settings import PREFECT_API_URL

    address, _ = token_head
    command = [sys.executable, "-m", "flows.cli", "run", str(ROOT / "configs" / "quickstart.yaml"),
               "--data-dir", str(slice_dir), "--runs-dir", str(tmp_path / "runs"),
               "--set", "run.seeds=[0]", "--set", "compute.backend=ray",
               "--set", f"compute.ray_address={address}"]
    env = _env(PREFECT_API_URL=str(PREFECT_API_URL.value()), PREFECT_LOGGING_LEVEL="WARNING")
    start_at = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    took = time.perf_counter() - start_at
    both = result.stdout + result.stderr
    assert result.returncode == 2, both
    assert "Traceback" not in both, both
    lines = [line for line in both.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), both
    assert f"Ray cluster at {address} requires token authentication" in lines[0]
    assert "RAY_AUTH_TOKEN" in lines[0]
    assert took < 60, took  # Ray alone retried for a minute, then printed 551 lines
