"""What the card says of a registered source dataset: licence and language.

Only licences stated by the data's own release are recorded; every other dataset (and a
user's own files) is `unknown`, which the card says in words. The GLUE tasks keep their
source corpora's terms, which the hub records as `other`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFacts:
    """Card metadata of a registered dataset."""

    pretty_name: str
    license: str = "unknown"
    license_note: str = ""
    language: str = "en"


_GLUE = ("GLUE tasks are distributed under their source corpora's terms "
         "(https://gluebenchmark.com)")

KNOWN_SOURCES: dict[str, SourceFacts] = {
    "sst2": SourceFacts("GLUE SST-2", "other", _GLUE),
    "sst2_kim": SourceFacts("SST-2 (Kim 2014 splits)"),
    "sst5_kim": SourceFacts("SST-5 (Kim 2014 splits)"),
    "ag_news": SourceFacts("AG News"),
    "mrpc": SourceFacts("GLUE MRPC", "other", _GLUE),
    "rte": SourceFacts("GLUE RTE", "other", _GLUE),
    "sick": SourceFacts("SICK", "cc-by-nc-sa-3.0",
                        "SICK is released under CC BY-NC-SA 3.0 (Marelli et al., LREC 2014)"),
}


def source_facts(dataset: str | None) -> SourceFacts | None:
    """The facts of a registered dataset; None for a user's own data or an unknown name."""
    return KNOWN_SOURCES.get(dataset or "")
