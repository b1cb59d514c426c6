"""Few-shot prompts from representative real examples, and parsing what comes back.

A prompt names the label and lists a cluster's most representative real
examples; the model is asked for new examples, one per line starting with
"- ". Parsing keeps each such line, strips it, and gives every rejected line a
reason (empty, too short or long, an echo of a prompt example, talk about the
task instead of an example, a repeat), so
the synthesize stage can account for every generated line in its rejects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# The answer is started for the model, so it begins in the list format it is asked for. Only
# the dash: byte-level BPE puts a space in front of the next word's token, so a prompt that
# ends in "- " leaves a lone space token where training text rarely has one; SmolLM2 then
# often writes empty "- " lines or numbers instead of examples (benchmarks/bench_answer_prefix.py).
ANSWER_PREFIX = "-"


def answer_list(continuation: str) -> str:
    """The model's answer as the list it reads as: the given dash, one space, then what the
    model wrote after it (whether or not it began with its own space)."""
    return f"{ANSWER_PREFIX} {continuation.lstrip(' ')}"


INSTRUCTION = ("Here are example {kind} with the label \"{label}\":\n{examples}\n"
               "Write {n} new and different {kind} with the label \"{label}\". Give one per "
               "line, each starting with \"- \", and nothing else.")


def few_shot_messages(label: str, examples: Sequence[str], n_new: int,
                      kind: str = "sentences") -> list[dict[str, str]]:
    """Chat messages for one prompt (apply the tokenizer's chat template to them)."""
    listed = "\n".join(f"- {' '.join(e.split())}" for e in examples)
    return [{"role": "user", "content": INSTRUCTION.format(kind=kind, label=label,
                                                           examples=listed, n=n_new)}]


def _letters(text: str) -> str:
    """Letters and digits, lower case: "a dull , lifeless mess ." -> "adulllifelessmess"."""
    return re.sub(r"[\W_]+", "", text.lower())


@dataclass
class ParsedOutput:
    kept: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (line, reason)


NUMBERING = re.compile(r"^\(?\d{1,2}\s*[-.):]\s+")
# Words of the instruction rather than of an example: a line that uses them talks about the task.
META_WORDS = ("sentence", "sentences", "label", "labels", "example", "examples")


def _meta_words(label_names: Sequence[str]) -> set[str]:
    return {w.lower() for w in META_WORDS} | {n.lower() for n in label_names}


def parse_generation(text: str, prompt_examples: Sequence[str], min_words: int = 3,
                     max_words: int = 80, label_names: Sequence[str] = ()) -> ParsedOutput:
    """The new examples in a model's answer; every other non-blank line with its reason.

    A line that names a label or speaks of sentences, labels or examples is `meta_text`:
    the model describing its task, not writing an example (and a teacher that reads the
    label's name in it would wrongly vouch for it).
    """
    seen = {_letters(e) for e in prompt_examples}
    meta = _meta_words(label_names)
    out = ParsedOutput()
    kept_norm: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.lstrip("-* ").strip():
            out.rejected.append((line, "empty_text"))
            continue
        if not line.startswith(("- ", "* ")) and not NUMBERING.match(line):
            out.rejected.append((line, "wrong_format"))
            continue
        body = NUMBERING.sub("", line.lstrip("-* ").strip())
        body = body.strip().strip('"').strip()
        words = len(body.split())
        norm = " ".join(body.lower().split())
        if words == 0:
            out.rejected.append((line, "empty_text"))
        elif _letters(body) in seen:
            out.rejected.append((line, "prompt_echo"))
        elif meta & set(re.findall(r"[a-z]+", norm)):
            out.rejected.append((line, "meta_text"))
        elif norm in kept_norm:
            out.rejected.append((line, "repeated_generation"))
        elif words < min_words:
            out.rejected.append((line, "too_short"))
        elif words > max_words:
            out.rejected.append((line, "too_long"))
        else:
            kept_norm.add(norm)
            out.kept.append(body)
    return out
