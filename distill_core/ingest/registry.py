"""Named datasets: each resolves to the hub online and to files in a local mirror offline.

The local layout is the one of the public releases (GLUE TSVs, Kim's SST
lines, the AG News CSVs, SICK's tab files), so a folder holding those files,
named by `TEXTDISTILL_DATA_DIR` or `--data-dir`, replaces the hub. Entries are
plain `DatasetSpec` values read by the ordinary ingest path: a user's own
dataset is described the same way in a config.
"""

from __future__ import annotations

from difflib import get_close_matches

from distill_core.errors import ConfigError
from distill_core.ingest.sources import DatasetSpec, FileSource, HubSource, SplitSource

_BINARY_SENTIMENT = {"0": "negative", "1": "positive"}
_SST5 = {"0": "very negative", "1": "negative", "2": "neutral", "3": "positive",
         "4": "very positive"}
_AG_LOCAL = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
_AG_HUB = {"0": "World", "1": "Sports", "2": "Business", "3": "Sci/Tech"}
_MRPC = {"0": "not_paraphrase", "1": "paraphrase"}
_RTE = {"0": "entailment", "1": "not_entailment"}


def _glue_tsv(path: str, text: str, label: str, label_map: dict[str, str], pair: str | None = None):
    return FileSource(
        path=path, format="tsv", quoting=False, text=text, text_pair=pair, label=label,
        label_map=label_map,
    )


def _kim(path: str, label_map: dict[str, str]) -> FileSource:
    return FileSource(path=path, format="label_text", text="text", label="label",
                      label_map=label_map)


def _hub(path: str, name: str | None, split: str, label_map: dict[str, str], text: str = "text",
         pair: str | None = None) -> HubSource:
    return HubSource(path=path, name=name, split=split, text=text, text_pair=pair, label="label",
                     label_map=label_map)


def _registry() -> dict[str, DatasetSpec]:
    sst2 = DatasetSpec(
        description="GLUE SST-2: train 67,349 phrases, scored on the 872-row validation split.",
        label_names=["negative", "positive"],
        train=SplitSource(
            file=_glue_tsv("sst2_glue/train.tsv", "sentence", "label", _BINARY_SENTIMENT),
            hub=_hub("nyu-mll/glue", "sst2", "train", _BINARY_SENTIMENT, text="sentence"),
        ),
        eval=SplitSource(
            file=_glue_tsv("sst2_glue/dev.tsv", "sentence", "label", _BINARY_SENTIMENT),
            hub=_hub("nyu-mll/glue", "sst2", "validation", _BINARY_SENTIMENT, text="sentence"),
        ),
    )
    sst2_kim = DatasetSpec(
        description="SST-2 sentence-level splits of Kim (2014): train 6,920, dev 872, test 1,821.",
        label_names=["negative", "positive"],
        train=SplitSource(file=_kim("sst2_kim/train.txt", _BINARY_SENTIMENT),
                          hub=_hub("SetFit/sst2", None, "train", _BINARY_SENTIMENT)),
        eval=SplitSource(file=_kim("sst2_kim/test.txt", _BINARY_SENTIMENT),
                         hub=_hub("SetFit/sst2", None, "test", _BINARY_SENTIMENT)),
    )
    sst5_kim = DatasetSpec(
        description="SST-5 sentence-level splits of Kim (2014): train 8,544, test 2,210.",
        label_names=list(_SST5.values()),
        train=SplitSource(file=_kim("sst5_kim/train.txt", _SST5),
                          hub=_hub("SetFit/sst5", None, "train", _SST5)),
        eval=SplitSource(file=_kim("sst5_kim/test.txt", _SST5),
                         hub=_hub("SetFit/sst5", None, "test", _SST5)),
    )
    ag_news = DatasetSpec(
        description="AG News topics. Offline: the 8,000-row class-balanced train subset "
        "(descriptions) scored on the official 7,600-row test split (descriptions).",
        label_names=list(_AG_LOCAL.values()),
        train=SplitSource(
            file=FileSource(path="ag_news/train_subset_8000.csv", format="csv", text="content",
                            label="label", label_map=_AG_LOCAL),
            hub=_hub("fancyzhx/ag_news", None, "train", _AG_HUB),
        ),
        eval=SplitSource(
            file=FileSource(path="ag_news/test.csv", format="csv", header=False,
                            columns=["label", "title", "description"], text="description",
                            label="label", label_map=_AG_LOCAL),
            hub=_hub("fancyzhx/ag_news", None, "test", _AG_HUB),
        ),
    )
    mrpc = DatasetSpec(
        description="GLUE MRPC sentence pairs: train 3,668, scored on dev 408.",
        label_names=list(_MRPC.values()),
        train=SplitSource(
            file=_glue_tsv("mrpc/train.tsv", "#1 String", "Quality", _MRPC, pair="#2 String"),
            hub=_hub("nyu-mll/glue", "mrpc", "train", _MRPC, text="sentence1", pair="sentence2"),
        ),
        eval=SplitSource(
            file=_glue_tsv("mrpc/dev.tsv", "#1 String", "Quality", _MRPC, pair="#2 String"),
            hub=_hub("nyu-mll/glue", "mrpc", "validation", _MRPC, text="sentence1",
                     pair="sentence2"),
        ),
    )
    rte = DatasetSpec(
        description="GLUE RTE sentence pairs: train 2,490, scored on dev 277.",
        label_names=list(_RTE.values()),
        train=SplitSource(
            file=_glue_tsv("rte/train.tsv", "sentence1", "label", _RTE, pair="sentence2"),
            hub=_hub("nyu-mll/glue", "rte", "train", _RTE, text="sentence1", pair="sentence2"),
        ),
        eval=SplitSource(
            file=_glue_tsv("rte/dev.tsv", "sentence1", "label", _RTE, pair="sentence2"),
            hub=_hub("nyu-mll/glue", "rte", "validation", _RTE, text="sentence1",
                     pair="sentence2"),
        ),
    )
    sick = DatasetSpec(
        description="SICK 3-way NLI pairs: train 4,500, scored on test 4,927. Local files only: "
        "no maintained hub copy with this schema is registered.",
        label_names=["ENTAILMENT", "NEUTRAL", "CONTRADICTION"],
        train=SplitSource(file=FileSource(path="sick/SICK_train.txt", format="tsv", quoting=False,
                                          text="sentence_A", text_pair="sentence_B",
                                          label="entailment_judgment")),
        eval=SplitSource(file=FileSource(path="sick/SICK_test_annotated.txt", format="tsv",
                                         quoting=False, text="sentence_A",
                                         text_pair="sentence_B", label="entailment_judgment")),
    )
    return {"sst2": sst2, "sst2_kim": sst2_kim, "sst5_kim": sst5_kim, "ag_news": ag_news,
            "mrpc": mrpc, "rte": rte, "sick": sick}


DATASETS: dict[str, DatasetSpec] = _registry()


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset `name`, or a ConfigError naming the closest registered names
    ("did you mean") and listing them all."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        close = get_close_matches(str(name), list(DATASETS), n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ConfigError(f"unknown dataset {name!r}; {hint}registered datasets: {known}"
                          ) from None
