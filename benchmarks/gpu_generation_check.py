"""The generation code on a CUDA GPU in bf16: dilm's LoRA fine-tune, then batched sampling.

A check for a GPU node without hub access (so no pretrained weights): a
decoder with SmolLM2-135M's shape (30 layers, 576 wide; or `--layers/--hidden`
for another) and random weights, a tokenizer trained here on a few sentences.
It runs `train_generator` (LoRA, bf16, cuda), reloads the merged folder with
`load_causal_lm(device="auto")`, and times `sample()` at several batch sizes:
tokens per second of the code path the gpu-1b preset uses (random weights
never stop early, so every row runs to `max_new_tokens`).

    python benchmarks/gpu_generation_check.py [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SENTENCES = [
    "a gorgeous , witty , seductive movie .", "the performances are an absolute joy .",
    "one of the best films of the year", "it 's a charming and often affecting journey .",
    "a dull , lifeless mess .", "the plot is nothing but boilerplate cliches .",
    "it 's a bad sign when you 're rooting for the film to end .", "tedious and too long .",
]


def tiny_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(SENTENCES * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder)
    return fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from distill_core.generate.dilm import (
        DecoderSource,
        GeneratorTraining,
        class_prompt,
        train_generator,
    )
    from distill_core.generate.models import load_causal_lm
    from distill_core.generate.sampling import SamplingSettings, sample

    work = Path(tempfile.mkdtemp(prefix="gpu-generation-"))
    tokenizer = tiny_tokenizer(work / "base")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.hidden,
                         intermediate_size=args.hidden * 8 // 3, num_hidden_layers=args.layers,
                         num_attention_heads=9 if args.hidden % 9 == 0 else 8,
                         num_key_value_heads=3 if args.hidden % 9 == 0 else 8,
                         max_position_embeddings=2048, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(work / "base")
    result: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else "cpu", "torch": torch.__version__,
                    "parameters": sum(p.numel() for p in LlamaForCausalLM(config).parameters())}

    labels = ["positive"] * 4 + ["negative"] * 4
    trained = train_generator(DecoderSource(str(work / "base"), "bfloat16", args.device),
                              SENTENCES, labels, work / "generator",
                              GeneratorTraining(steps=60, batch_size=8, lr=1e-3, lora_r=8))
    result["train"] = {"wall_time_s": trained.wall_time_s,
                       "trainable_parameters": trained.trainable_parameters,
                       "loss_first": round(sum(trained.losses[:5]) / 5, 3),
                       "loss_last": round(sum(trained.losses[-5:]) / 5, 3)}
    lm = load_causal_lm(trained.folder, "bfloat16", "auto" if args.device == "cuda" else None)
    result["loaded_on"] = lm.device
    result["samples"] = [g.text for g in sample(
        lm, [class_prompt("positive"), class_prompt("negative")], [0, 1],
        SamplingSettings(max_new_tokens=24, batch_size=2))]
    rates = {}
    for batch in (8, 64, 256):
        prompts = [class_prompt(labels[i % 8]) for i in range(batch * 2)]
        settings = SamplingSettings(max_new_tokens=args.max_new_tokens, batch_size=batch)
        sample(lm, prompts[:batch], list(range(batch)), settings)  # warm-up
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        tokens = sum(g.new_tokens for g in sample(lm, prompts, list(range(len(prompts))),
                                                  settings))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        rates[batch] = round(tokens / (time.perf_counter() - start), 1)
    result["tokens_per_s_by_batch"] = rates
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
