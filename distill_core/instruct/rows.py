"""Instruction rows: the table schema, how a prompt is composed, and the stable id.

A row is a prompt (the instruction, followed by the optional input after a
blank line, as Alpaca lays them out) and a response. `example_id` reuses the
project's id function (`ingest.normalize.example_id`): the normalised prompt
is the text, the normalised response the second text, and the constant label
`instruction` keeps these ids apart from any classification row's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from distill_core.ingest.normalize import example_id

ID_LABEL = "instruction"

INSTRUCTION_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("split", pa.string()),
        ("prompt", pa.string()),
        ("instruction", pa.string()),
        ("input", pa.string()),
        ("response", pa.string()),
        ("source", pa.string()),
        ("source_row", pa.int64()),
    ]
)


def compose_prompt(instruction: str, input_text: str | None) -> str:
    """The instruction, then the input after a blank line when there is one."""
    if input_text:
        return f"{instruction}\n\n{input_text}"
    return instruction


def instruction_id(prompt: str, response: str) -> str:
    """Stable hex id of (normalised prompt, normalised response)."""
    return example_id(prompt, ID_LABEL, response)


@dataclass(frozen=True)
class InstructionRow:
    """One prompt/response pair as the learner and the signals read it."""

    example_id: str
    prompt: str
    response: str


def rows_of(table: pa.Table, split: str | None = None) -> list[InstructionRow]:
    """The rows of an instruction table (of one split when `split` is given), in table order."""
    data = table.select(["example_id", "split", "prompt", "response"]).to_pylist()
    return [InstructionRow(r["example_id"], r["prompt"], r["response"]) for r in data
            if split is None or r["split"] == split]


def rows_from_records(records: list[dict[str, Any]]) -> list[InstructionRow]:
    """Alpaca-style records (`instruction`, `input`, `output`) as instruction rows."""
    rows = []
    for record in records:
        prompt = compose_prompt(record["instruction"], record["input"] or None)
        rows.append(InstructionRow(instruction_id(prompt, record["output"]), prompt,
                                   record["output"]))
    return rows
