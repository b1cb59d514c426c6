"""Push an export to the Hugging Face hub: the `DatasetDict`, then its card.

`check_push` runs before anything is written, so a bad repo id, no network or no token fails
in seconds with one line (the hub clients would otherwise retry for half a minute or more).
A failure during the push itself is one line too, naming the local export that remains.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from distill_core.errors import ConfigError, DataSourceUnavailable
from distill_core.hub import hub_offline_reason

CONNECT_TIMEOUT_S = 5.0


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def check_push(repo_id: str) -> None:
    """Raise a one-line error unless `repo_id` is valid, the hub answers and a token is set."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"--push {repo_id!r}: not a hub repo id ({exc}); pass owner/name"
                          ) from None
    reason = hub_offline_reason(timeout=CONNECT_TIMEOUT_S)
    if reason is not None:
        raise DataSourceUnavailable(
            f"cannot push to the Hugging Face hub ({hub_endpoint()}): {reason}; connect to the "
            "network (and unset HF_HUB_OFFLINE) and rerun, or drop --push to write the export "
            "folder only")
    if get_token() is None:
        raise ConfigError(f"cannot push to the Hugging Face hub ({hub_endpoint()}): no token; "
                          "log in with `hf auth login` or set HF_TOKEN, then rerun")


def push_export(dataset_dict: Any, folder: Path, repo_id: str) -> str:
    """Push the splits (Parquet, as the hub lays them out) and the card; the repo's URL."""
    import httpx
    from huggingface_hub import HfApi

    try:
        dataset_dict.push_to_hub(repo_id)
        info = HfApi().upload_file(path_or_fileobj=str(folder / "README.md"),
                                   path_in_repo="README.md", repo_id=repo_id,
                                   repo_type="dataset",
                                   commit_message="Dataset card written by textdistill export")
    except (httpx.HTTPError, OSError, ConnectionError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise DataSourceUnavailable(
            f"pushing {repo_id} to the Hugging Face hub ({hub_endpoint()}) failed: {first}; "
            f"the export is in {folder}: fix that and rerun with --overwrite --push") from None
    return str(getattr(info, "repo_url", "") or f"{hub_endpoint()}/datasets/{repo_id}")
