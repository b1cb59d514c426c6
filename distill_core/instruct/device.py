"""Where the decoder runs: the device asked for, else cuda when torch sees a GPU, else cpu."""

from __future__ import annotations


def resolve_device(device: str | None) -> str:
    """`device` as given, else cuda when torch sees a GPU, else cpu."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def set_torch_threads(threads: int | None) -> None:
    """Use `threads` torch intra-op threads (`compute.torch_threads`; None leaves torch's)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
