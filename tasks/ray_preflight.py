"""Is the configured Ray cluster there, and will it let us in? One line within seconds.

`ray.init(address=...)` against a dead address, a port that is not a Ray head,
or a head with token authentication (Ray's default since 2.5x: `RAY_AUTH_MODE=token`)
while this process has no token, retries for a minute or more inside C++ (deaf to
SIGTERM meanwhile) and ends in a traceback of hundreds of lines. `preflight` asks
first, in plain Python sockets with deadlines (so a signal stops it at once):

1. a TCP connect to the address (nothing listens: "no answer");
2. one gRPC call to the head's GCS (`NodeInfoGcsService/GetClusterId`, an empty
   request) over HTTP/2, carrying the token exactly as `ray.init` would send it (Ray's
   own token loader: `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`,
   sent only when `RAY_AUTH_MODE=token`, as Ray does for an explicit address). gRPC
   status 16 (UNAUTHENTICATED) means the token is missing or wrong; no gRPC answer
   means the port is not a Ray head's GCS port.

The whole check takes at most `PREFLIGHT_BUDGET_S`. A `ray://` (Ray Client) address
gets the TCP check only (its server is not the GCS), after checking that the Ray Client
is installed (`grpcio`, which `pip install -e '.[ray]'` brings); without it `ray.init`
fails with a ValueError.
"""

from __future__ import annotations

import importlib.util
import socket
import time

from distill_core.errors import ClusterUnavailable

PREFLIGHT_BUDGET_S = 8.0  # TCP connect and the GCS call together
GCS_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"
UNAUTHENTICATED = "16"
TOKEN_HINT = "`ray get-auth-token` on the head prints it"


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailable(f"compute.ray_address {address!r}: expected host:port, "
                                 "ray://host:port or auto")
    return host.strip("[]"), int(port)


def _auth_header(address: str) -> dict[str, str]:
    """The authorization header `ray.init(address=...)` would send: none unless
    RAY_AUTH_MODE=token; with it, a missing token is an error naming what to set."""
    from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN:
        return {}
    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):  # (without the flag it raises instead)
        raise ClusterUnavailable(
            f"Ray cluster at {address}: RAY_AUTH_MODE=token but no token is set; set "
            f"RAY_AUTH_TOKEN to the cluster's token ({TOKEN_HINT})")
    return dict(loader.get_token_for_http_header())


def _not_a_head(address: str, why: str) -> ClusterUnavailable:
    return ClusterUnavailable(
        f"Ray cluster at {address}: the port answers but not as a Ray head ({why}); set "
        "compute.ray_address to the head's GCS address (`ray start --head --port`, 6379 by "
        "default)")


def _ask_gcs(address: str, host: str, port: int, headers: dict[str, str],
             timeout_s: float) -> None:
    """One empty GetClusterId call; raises the one-line error for anything but an answer."""
    import httpx

    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}{GCS_METHOD}"
    timeout_s = max(timeout_s, 0.5)
    try:
        with httpx.Client(http1=False, http2=True, trust_env=False,
                          timeout=timeout_s) as client:
            reply = client.post(url, content=b"\0\0\0\0\0", headers={
                "content-type": "application/grpc", "te": "trailers", **headers})
    except httpx.TimeoutException:
        raise _not_a_head(address, f"no gRPC reply within {timeout_s:.1f} s") from None
    except httpx.HTTPError as exc:
        raise _not_a_head(address, f"not gRPC: {type(exc).__name__}") from None
    if not reply.headers.get("content-type", "").startswith("application/grpc"):
        raise _not_a_head(address, f"HTTP {reply.status_code}, not gRPC")
    status = reply.headers.get("grpc-status", "0")
    if status == UNAUTHENTICATED:
        if headers:
            raise ClusterUnavailable(
                f"Ray cluster at {address} refused this process's authentication token "
                "(RAY_AUTH_TOKEN, else RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); set "
                f"RAY_AUTH_TOKEN to the cluster's token ({TOKEN_HINT})")
        raise ClusterUnavailable(
            f"Ray cluster at {address} requires token authentication and this process sends "
            f"no token; set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's token "
            f"({TOKEN_HINT})")
    if status != "0":
        raise _not_a_head(address, f"gRPC status {status}: "
                                   f"{reply.headers.get('grpc-message', '')[:80]}")


def preflight(address: str | None, budget_s: float = PREFLIGHT_BUDGET_S) -> None:
    """Fail within `budget_s` with one line naming `address` (as given) when the configured
    Ray cluster does not answer, is not a Ray head, or refuses this process's token."""
    if not address or address == "auto":
        return
    host, port = _host_port(address)
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise ClusterUnavailable(
            f"compute.ray_address {address}: a ray:// address needs the Ray Client, which is "
            "not installed; pip install -e '.[ray]' (or ray[client]), or give the head's GCS "
            "address host:port (6379 by default)")
    deadline = time.monotonic() + budget_s
    try:
        socket.create_connection((host, port), timeout=budget_s / 2).close()
    except OSError as exc:
        raise ClusterUnavailable(
            f"Ray cluster at {address}: no answer ({exc.strerror or exc}); start it (ray start "
            "--head) or fix compute.ray_address") from None
    if address.startswith("ray://"):
        return
    headers = _auth_header(address)
    _ask_gcs(address, host, port, headers, deadline - time.monotonic())
