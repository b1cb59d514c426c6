"""Keeps Prefect's failure logs of an expected error off the terminal.

Prefect's task and flow engines log a failed run's exception with its traceback
at ERROR level, to the console and to the server. For an expected error (one the
CLI prints as one line) the console copy is dropped; the API handler still sends
it, so the Prefect server's logs keep the whole failure. Once that line is printed the
console says nothing more (`quiet_console_after_failure`): Prefect's shutdown can still
log a warning that would make it two.
"""

from __future__ import annotations

import logging
import re
import sys

from distill_core.errors import TextDistillError, user_error


def _expected_error_names() -> set[str]:
    names, classes = set(), [TextDistillError]
    while classes:
        cls = classes.pop()
        names.add(cls.__name__)
        classes += cls.__subclasses__()
    return names


# Prefect's failed-state messages: "Task run encountered an exception IngestError: ...",
# "Flow run encountered an exception: IngestError: ...".
_FAILED_WITH = re.compile(r"encountered an exception:? ([A-Za-z_][\w.]*): ")


class _HideExpectedFailures(logging.Filter):
    """Keeps Prefect's failure records of an expected error (the exception with its traceback,
    "Finished in state Failed(...)") off the console; the API handler still sends them to the
    server. Records of other failures pass."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_runs: set[str] = set()
        self.quiet = False  # set once the expected error's one line is printed

    def filter(self, record: logging.LogRecord) -> bool:
        if self.quiet:
            return False
        if record.levelno < logging.ERROR:
            return True
        run = getattr(record, "task_run_id", None) or getattr(record, "flow_run_id", None)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            if user_error(exc) is None:
                return True
            if run is not None:
                self.failed_runs.add(str(run))
            return False
        if run is not None and str(run) in self.failed_runs:
            return False
        failed = _FAILED_WITH.search(record.getMessage())
        return not (failed and failed.group(1).rsplit(".", 1)[-1] in _expected_error_names())


_HIDE_EXPECTED = _HideExpectedFailures()


def hide_expected_failures_on_console() -> None:
    """Add the filter to every console (stream) handler Prefect's logging set up; never to the
    API handler, so the server's logs keep the whole failure."""
    from prefect.logging.handlers import APILogHandler

    _HIDE_EXPECTED.quiet = False  # a command starts: its console speaks until it fails
    loggers = [logging.getLogger()] + [logger for logger in
                                       logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    for handler in {h for logger in loggers for h in logger.handlers}:
        if (isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler | APILogHandler)
                and _HIDE_EXPECTED not in handler.filters):
            handler.addFilter(_HIDE_EXPECTED)


def quiet_console_after_failure() -> None:
    """After an expected error's one line, nothing more on the console: Prefect's shutdown can
    still warn that a worker is draining ("EventsWorker - Still processing items", when the
    server answers slowly), which made the line two. The API handler still sends its
    records. Only where Prefect was imported (its handlers are the ones that print)."""
    if "prefect" in sys.modules:
        hide_expected_failures_on_console()
    _HIDE_EXPECTED.quiet = True
