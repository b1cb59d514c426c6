"""Errors a user can act on: each names what to fix (file, row, field, key)."""

from __future__ import annotations


class TextDistillError(Exception):
    """Base class for user-facing errors; the CLI prints these without a traceback."""


class IngestError(TextDistillError):
    """A data file cannot be read as configured (missing file or column, bad format)."""


class ConfigError(TextDistillError):
    """A run configuration is invalid."""


class DataSourceUnavailable(TextDistillError):
    """A dataset or model hub cannot be reached and no local copy was configured."""


class ArtifactError(TextDistillError):
    """A run folder or artifact is missing or inconsistent."""
