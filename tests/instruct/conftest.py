"""Instruction-test fixtures: the tiny decoder of tests/generate, real Alpaca and GSM8K rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.generate.conftest import tiny_decoder  # noqa: F401  (re-exported fixture)


@pytest.fixture(scope="session")
def alpaca_records(shared_datasets: Path) -> list[dict]:
    """The first 60 real Alpaca records."""
    data = json.loads((shared_datasets / "alpaca_subset" / "alpaca_5000.json").read_text())
    return data[:60]


@pytest.fixture(scope="session")
def gsm8k_lines(shared_datasets: Path) -> list[str]:
    """The first 30 real GSM8K training lines."""
    with open(shared_datasets / "gsm8k" / "train.jsonl", encoding="utf-8") as handle:
        return [next(handle) for _ in range(30)]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Model tests on one thread: on a shared 2-core machine, two threads contend with other
    processes and a SmolLM2 forward pass ran 3-10x slower than on one (measured here)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
