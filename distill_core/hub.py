"""A quick check that the Hugging Face hub can be reached, so offline runs fail in seconds.

The hub clients retry with back-off for half a minute or more when there is no
network; a user without network should learn at once to use a local folder.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from distill_core.errors import DataSourceUnavailable

_TRUE = {"1", "true", "yes", "on"}


def hub_offline_reason(timeout: float = 5.0) -> str | None:
    """Why the hub cannot be reached (offline mode, DNS, TCP), or None when it can."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc})"


def require_hub(what: str, advice: str) -> None:
    """Raise DataSourceUnavailable naming `what` when the hub is unreachable."""
    reason = hub_offline_reason()
    if reason is not None:
        raise DataSourceUnavailable(f"cannot load {what} from the Hugging Face hub: {reason}. "
                                    f"{advice}")
