"""A real S3 API server for tests: moto in server mode on 127.0.0.1, stopped by PID.

`S3Server.env` holds the standard AWS variables that point a client (pyarrow, boto3, a
`textdistill` subprocess) at it; `bucket()` creates a fresh bucket so tests do not share
state.
"""

from __future__ import annotations

import os
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers.processes import free_port, start, stop, wait_for


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def bucket(self) -> str:
        name = f"td-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                        Prefix=prefix)
        # pyarrow leaves an empty `folder/` marker where it deleted the last object under a
        # prefix (its parent folder stays listable): not data, not listed here.
        return sorted(o["Key"] for page in pages for o in page.get("Contents", [])
                      if not o["Key"].endswith("/"))


@contextmanager
def moto_server(log: Path) -> Iterator[S3Server]:
    """`python -m moto.server` on a free port of 127.0.0.1 until the block ends."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                   env, log)
    try:
        wait_for(lambda: urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).status
                 == 200, 60, "moto S3 server", log, server)
        yield S3Server(endpoint, {
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true"})
    finally:
        stop(server)
