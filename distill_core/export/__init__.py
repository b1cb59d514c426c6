"""Export a finished run's distilled set as a Hugging Face `datasets` folder with a card.

`export_run` reads the run through its store (verified against the manifests), builds a
`DatasetDict` (one split per chosen replicate, `label` as a `ClassLabel`), and writes a
folder that both `datasets.load_from_disk` and `datasets.load_dataset` read; `push_export`
sends it to the hub. Pure library: no Prefect, no Ray.
"""

from distill_core.export.exporter import ExportResult, export_run
from distill_core.export.hub import check_push, push_export

__all__ = ["ExportResult", "check_push", "export_run", "push_export"]
