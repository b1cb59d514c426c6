"""`FunctionalLearner.pooled` (the learned methods' read-out of a pool's features: the
matched-sentence decoding, meta-matching's cached real features, the k-means init of a
noise-free pool) against the code at a commit, side by side in one process on the same
SST-2 training rows tokenised as the learn stage does (`max_length` 64), MiniLM, one
torch thread: wall time, ratio, and the largest difference between the two read-outs.

    python benchmarks/bench_pooled.py --data-dir ../shared/datasets [--rows 4000] \
        [--baseline 6697c30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.git_baseline import module_at  # noqa: E402
from distill_core.learned import functional as current  # noqa: E402
from distill_core.learned.real import RealData  # noqa: E402
from distill_core.models.finetune import load_pretrained  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("TEXTDISTILL_DATA_DIR", "../shared/datasets")))
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--baseline", default="6697c30")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = (args.data_dir / "sst2_glue" / "train.tsv").read_text().splitlines()[1:args.rows + 1]
    texts = [line.split("\t")[0] for line in lines]
    labels = [int(line.split("\t")[1]) for line in lines]
    encoder, tokenizer = load_pretrained("all-MiniLM-L6-v2")
    real = RealData.from_texts(tokenizer, texts, labels, [str(i) for i in range(len(texts))],
                               max_length=64)
    with tempfile.TemporaryDirectory() as folder:
        old = module_at(args.baseline, "distill_core/learned/functional.py", Path(folder))
        learners = {"baseline": old.FunctionalLearner(encoder, n_classes=2),
                    "current": current.FunctionalLearner(encoder, n_classes=2)}
        seconds: dict[str, list[float]] = {name: [] for name in learners}
        out = {}
        for _ in range(args.repeats):
            for name, learner in learners.items():
                start = time.perf_counter()
                out[name] = learner.pooled(real.attention_mask, input_ids=real.input_ids,
                                           normalize=False)
                seconds[name].append(time.perf_counter() - start)
    diff = float((out["baseline"] - out["current"]).abs().max())
    old_s, new_s = (statistics.median(seconds[n]) for n in ("baseline", "current"))
    width = real.attention_mask.shape[1]
    mean_len = float(real.attention_mask.sum(1).float().mean())
    print(f"{len(texts)} rows padded to {width} tokens (mean {mean_len:.1f} real): baseline "
          f"{old_s:.2f} s, current {new_s:.2f} s (medians of {args.repeats}), speed-up "
          f"{old_s / new_s:.2f}x; largest |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
