"""`copy_hashed`, the checked copy behind the per-part signals cache (`PartCache.save`,
`StageWriter.adopt`): the kernel copies, the copy is hashed; where the kernel will not copy,
the bytes pass through Python. Either way the digest and size are the copy's and the copy
is a file of its own (issue 17: never a link), whatever happens to the source afterwards."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from distill_core.artifacts import stage_writer
from distill_core.artifacts.stage_writer import copy_hashed, copy_through_hashed


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    path = tmp_path / "part.parquet"  # several chunks and a partial one
    path.write_bytes(os.urandom(2 * stage_writer.COPY_CHUNK + 12345))
    return path


def _check(source: Path, target: Path, result: tuple[str, int]) -> None:
    data = source.read_bytes()
    assert result == (hashlib.sha256(data).hexdigest(), len(data))
    assert target.read_bytes() == data
    assert target.stat().st_ino != source.stat().st_ino and target.stat().st_nlink == 1
    with open(target, "r+b") as handle:  # an edit to the copy in place ...
        handle.write(b"\0" * 16)
    assert source.read_bytes() == data  # ... leaves the source as it was


def test_the_kernel_copy_is_a_checked_copy(source: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    passed: list[int] = []

    def through(*args):
        passed.append(1)
        return copy_through_hashed(*args)

    monkeypatch.setattr(stage_writer, "copy_through_hashed", through)
    target = tmp_path / "copy.parquet"
    _check(source, target, copy_hashed(source, target))
    assert not passed  # the kernel copied: nothing went through Python here


@pytest.mark.parametrize("failure", ["refused", "stops_short"])
def test_without_the_kernel_copy_the_bytes_pass_through(
        source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    def refused(*args):
        raise OSError(18, "Invalid cross-device link")

    def stops_short(src, dst, count, *args):  # copies one chunk, then reports the end
        return 0 if os.fstat(dst).st_size else os.write(dst, os.pread(src, 4096, 0))

    monkeypatch.setattr(os, "copy_file_range", {"refused": refused,
                                                "stops_short": stops_short}[failure])
    target = tmp_path / "copy.parquet"
    _check(source, target, copy_hashed(source, target))
