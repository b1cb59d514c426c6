"""textdistill's algorithm library: ingest, signals, selection, filtering, evaluation.

Pure Python on numpy, torch, transformers, pyarrow and duckdb. It never imports
Prefect or Ray, so every algorithm can be used and tested on its own.
"""

__version__ = "0.1.0"
