"""Shared fixtures: real data slices, one encoder, one Prefect test server per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before Prefect or the hub clients are imported anywhere.
_PREFECT_HOME = tempfile.mkdtemp(prefix="textdistill-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Ray starts its workers at nice 15 (to keep its own daemons responsive): beside the other
# test worker's processes on 2 cores they starved (a 40 s Ray test took 130 s in the suite).
# Tests only; users' clusters keep Ray's default. Inherited by `ray start` and CLI subprocesses.
os.environ.setdefault("RAY_worker_niceness", "0")
os.environ.pop("TEXTDISTILL_DATA_DIR", None)
# pytest-xdist's workers inherit COLUMNS=80 / LINES=24; the CLI's output that tests read is
# piped, and an explicit width would wrap it as if it were a terminal.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = Path(os.environ.get("TEXTDISTILL_TEST_DATA", ROOT.parent / "shared" / "datasets"))

# How `scripts/test.sh` spreads files over its two workers (`-n 2 --dist loadfile`): a file's
# tests stay in one worker (its module-scoped fixtures in one process), except that the files
# that start Ray clusters or actor pools are one unit, run one after another on one worker
# (side by side on 2 cores each starved the other's actors: the Ray signals file took 516 s of
# a 1,463 s suite), and the units below start first, longest first (measured in the suite),
# where xdist's default order (most tests first) left the long few-test files to the end.
# (pytest-xdist's `xdist_group` marks do nothing under pytest 9, which no longer reads the
# `_nodeid` that xdist 3.8 rewrites, hence a scheduler.)
RAY_FILES = ("tests/tasks/test_ray_signals.py", "tests/servers/test_ray_cluster.py",
             "tests/generate/test_ray_generation.py", "tests/instruct/test_instruction_ray.py",
             "tests/tasks/test_ray_preflight.py")
FIRST = ("ray", "tests/cli/test_errors.py", "tests/test_reliability.py",
         "tests/bench/test_learners.py", "tests/test_verify_on_read.py",
         "tests/bench/test_grid.py", "tests/signals/test_finetune_teacher.py",
         "tests/artifacts/test_cache_prune.py", "tests/flows/test_distill_flow.py",
         "tests/servers/test_prefect_server.py", "tests/generate/test_smollm2.py",
         "tests/artifacts/test_s3_cli.py")


def _unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "ray" if path in RAY_FILES else path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(_unit(item.nodeid), len(FIRST)))  # stable


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unknown without it
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile` with the Ray files as one unit, in collection order (above)."""
    if config.getvalue("dist") != "loadfile":
        return None  # any other mode asked for explicitly: xdist's own
    from xdist.scheduler import LoadFileScheduling

    class RayTogetherScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False  # keep the order pytest_collection_modifyitems set
    return RayTogetherScheduling(config, log)


# Real files sliced for tests: relative path -> lines kept including any header. The AG News
# training subset is sorted by class, so its slice takes every 200th row (`STRIDES`).
STRIDES = {"ag_news/train_subset_8000.csv": 200}
SLICES = {
    "sst2_glue/train.tsv": 301,
    "sst2_glue/dev.tsv": 81,
    "sst2_glue/test_labeled_UNOFFICIAL.tsv": 21,
    "sst2_kim/train.txt": 40,
    "sst2_kim/test.txt": 20,
    "sst5_kim/train.txt": 60,
    "sst5_kim/test.txt": 30,
    "ag_news/train_subset_8000.csv": 41,
    "ag_news/test.csv": 40,
    "mrpc/train.tsv": 41,
    "mrpc/dev.tsv": 21,
    "rte/train.tsv": 41,
    "rte/dev.tsv": 21,
    "sick/SICK_train.txt": 41,
    "sick/SICK_test_annotated.txt": 21,
}


def write_slice(source: Path, target: Path, lines: int, stride: int = 1,
                header: bool = True) -> None:
    """`lines` lines of a real file, byte for byte (BOM, CRLF and all): the header, then every
    `stride`-th line."""
    target.parent.mkdir(parents=True, exist_ok=True)
    all_lines = source.read_bytes().splitlines(keepends=True)
    head, body = (all_lines[:1], all_lines[1:]) if header else ([], all_lines)
    kept = head + body[::stride][:lines - len(head)]
    target.write_bytes(b"".join(kept))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "sst2_glue" / "train.tsv").is_file():
        raise RuntimeError(f"real datasets not found at {SHARED_DATASETS}; set "
                           "TEXTDISTILL_TEST_DATA to the shared datasets folder")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def slice_dir(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder laid out like the shared one, holding slices of the real files."""
    folder = tmp_path_factory.mktemp("data")
    for relative, lines in SLICES.items():
        write_slice(shared_datasets / relative, folder / relative, lines,
                    STRIDES.get(relative, 1))
    return folder


@pytest.fixture(scope="session")
def encoder():
    from distill_core.signals.encoder import SentenceEncoder

    return SentenceEncoder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded one-layer BERT (width 32) with MiniLM's tokenizer, saved as a model folder:
    the base of a `static:` model that distils (and fits) in seconds."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from distill_core.signals.models import resolve_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# One Prefect test server for all of xdist's workers: the controller starts it (below) while
# the workers start, and each worker's `prefect_server` points Prefect at it. Each worker
# started its own before, and the two start-ups (19 s each on a quiet machine, 40 s in the
# suite) ran on the cores the tests share. A plain `pytest` (no workers) starts Prefect's own
# test harness, as before.
SHARED_PREFECT_URL = "TEXTDISTILL_TEST_PREFECT_API_URL"
_shared_prefect: dict[str, object] = {}


def _is_xdist_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and bool(
        getattr(config.option, "numprocesses", None))


def pytest_configure(config: pytest.Config) -> None:
    """On xdist's controller: start the shared Prefect test server (not waited for here)."""
    if not _is_xdist_controller(config) or os.environ.get(SHARED_PREFECT_URL):
        return
    import sys

    from tests.servers.processes import free_port, start

    home = Path(tempfile.mkdtemp(prefix="textdistill-prefect-server-"))
    port = free_port()
    # What Prefect's test harness runs (`SubprocessASGIServer`): its API without the UI or
    # the scheduling services, on a database of its own.
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "0",
           "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
           "PREFECT_SERVER_DATABASE_CONNECTION_URL":
               f"sqlite+aiosqlite:///{home / 'prefect-test.db'}"}
    env.pop("PREFECT_API_URL", None)
    process = start([sys.executable, "-m", "uvicorn", "--factory",
                     "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
                     str(port), "--log-level", "error", "--lifespan", "on"], env,
                    home / "server.log")
    _shared_prefect.update(process=process, home=home)
    os.environ[SHARED_PREFECT_URL] = f"http://127.0.0.1:{port}/api"  # the workers inherit it
    os.environ[SHARED_PREFECT_URL + "_LOG"] = str(home / "server.log")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the shared Prefect server by its PID (its process group)."""
    process = _shared_prefect.pop("process", None)
    if process is not None:
        from tests.servers.processes import stop

        stop(process, grace=10)
        shutil.rmtree(_shared_prefect.pop("home"), ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's API for this session: the shared server under xdist, else a test harness."""
    url = os.environ.get(SHARED_PREFECT_URL)
    if not url:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=60):
            yield
        return
    import urllib.request

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.servers.processes import wait_for

    log = Path(os.environ.get(SHARED_PREFECT_URL + "_LOG", ""))
    wait_for(lambda: urllib.request.urlopen(f"{url}/health", timeout=5).status == 200, 180,
             "the shared Prefect test server", log if log.name else None)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for one test module, shut down after it (the next module starts its own)."""
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def run_stages():
    """Run a config's declared pipeline in process (no Prefect): (store, stage outcomes)."""
    from distill_core.artifacts.store import RunStore
    from distill_core.pipeline.order import run_pipeline
    from distill_core.pipeline.stage import StageContext
    from tasks.executors import make_executor

    def run(cfg, runs: Path, until: str | None = None):
        store = RunStore(runs, cfg.run_id())
        ctx = StageContext(cfg, store, make_executor(cfg.compute, cfg.faults))
        return store, run_pipeline(ctx, until)

    return run



@pytest.fixture
def corpus_passes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the passes over a run's corpus (`corpus_where`) made through the modules that
    read it on demand (the filters' context and the evaluate stage's streamed pool)."""
    import distill_core.evaluate.streamed as streamed_module
    import distill_core.pipeline.filter_context as filter_context_module
    import distill_core.pipeline.inputs as inputs_module

    passes = {"n": 0}
    real = inputs_module.corpus_where

    def counted(*args, **kwargs):
        passes["n"] += 1
        return real(*args, **kwargs)

    for module in (inputs_module, filter_context_module, streamed_module):
        monkeypatch.setattr(module, "corpus_where", counted)
    return passes
