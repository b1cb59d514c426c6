"""Sealed folders: reused only while every file is what was written, from the same source."""

from __future__ import annotations

import json
from pathlib import Path

from distill_core.artifacts.sealed import SEAL, seal, seal_problem


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 8)
    return folder


def test_a_sealed_folder_verifies_until_a_file_or_its_source_changes(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert "has no seal" in seal_problem(folder, {"source": "x"})
    seal(folder, {"source": "x"})
    assert seal_problem(folder, {"source": "x"}) is None
    assert "was made from {'source': 'x'}" in seal_problem(folder, {"source": "y"})
    (folder / "extra.txt").write_text("added later")  # not named by the seal: ignored
    assert seal_problem(folder, {"source": "x"}) is None
    weights = folder / "sub" / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1  # one bit, same size
    weights.write_bytes(bytes(data))
    assert seal_problem(folder, {"source": "x"}) == f"{weights} changed since it was written " \
        "(sha256 differs)"
    weights.write_bytes(b"short")
    assert "has 5 bytes, 2048 were written" in seal_problem(folder, {"source": "x"})
    weights.unlink()
    assert seal_problem(folder, {"source": "x"}) == f"{weights} is missing"


def test_a_damaged_seal_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    seal(folder)
    for text in ("{", "null", json.dumps({"files": [], "identity": {}})):
        (folder / SEAL).write_text(text)
        assert seal_problem(folder) == f"{folder / SEAL} is damaged"
