"""Ingest: files or hub splits -> a `corpus` table with stable ids, plus `rejects`."""

from distill_core.ingest.ingest import IngestResult, ingest_dataset, resolve_dataset

__all__ = ["IngestResult", "ingest_dataset", "resolve_dataset"]
