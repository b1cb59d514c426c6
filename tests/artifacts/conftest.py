"""One moto S3 server per test session, for the object-store tests of the run store."""

from __future__ import annotations

import os

import pytest

from tests.servers.s3 import S3Server, moto_server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """The server, with the AWS variables pointing at it set in this process (and so in
    every subprocess a test starts) until the session ends."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as server:
        saved = {k: os.environ.get(k) for k in server.env}
        os.environ.update(server.env)
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
