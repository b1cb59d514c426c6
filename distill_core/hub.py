"""A quick check that the Hugging Face hub can be reached, so offline runs fail in seconds.

The hub clients retry with back-off for half a minute or more when there is no
network; a user without network should learn at once to use a local folder.
"""

from __future__ import annotations

import os
import re
import socket
from functools import lru_cache
from pathlib import Path
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


@lru_cache(maxsize=256)
def hub_commit(repo_id: str, repo_type: str = "model", revision: str | None = None) -> str | None:
    """The commit a hub repository's `revision` (default: main) points at, so an identity
    names the exact files, not only the repository: asked of the hub when it can be reached
    (what an online load then downloads), else read from the local cache's refs (what an
    offline load uses). None when neither knows; loading then fails with its own error.
    Asked once per process."""
    if revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    if hub_offline_reason(timeout=3.0) is None:
        try:
            from huggingface_hub import HfApi

            return HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision,
                                     timeout=10.0).sha
        except Exception:  # noqa: BLE001 - any hub failure: the cache may still know
            pass
    from huggingface_hub import constants

    ref = (Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}"
           / "refs" / (revision or "main"))
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def require_hub(what: str, advice: str) -> None:
    """Raise DataSourceUnavailable naming `what` when the hub is unreachable."""
    reason = hub_offline_reason()
    if reason is not None:
        raise DataSourceUnavailable(f"cannot load {what} from the Hugging Face hub: {reason}. "
                                    f"{advice}")
