"""Content hashes: one canonical hash for configs, fingerprints and cache keys.

Lives below every other module (config, manifests, caches import it), so no
module reaches upward for it.
"""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any


def stable_hash(value: Any) -> str:
    """sha256 of the canonical JSON of `value`."""
    payload = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def stream_sha256(handle: IO[bytes]) -> str:
    """sha256 of what a binary file handle reads from here to its end, 1 MiB at a time."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()
