"""Ingest: files or hub splits -> a `corpus` table with stable ids, plus `rejects`."""

from distill_core.ingest.ingest import (
    IngestResult,
    IngestSummary,
    ingest_dataset,
    resolve_dataset,
    stream_dataset,
)

__all__ = ["IngestResult", "IngestSummary", "ingest_dataset", "resolve_dataset",
           "stream_dataset"]
