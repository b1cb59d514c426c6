"""Where the decoder runs: the device asked for, else cuda when torch sees a GPU, else cpu."""

from __future__ import annotations


def resolve_device(device: str | None) -> str:
    """`device` as given, else cuda when torch sees a GPU, else cpu."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")
