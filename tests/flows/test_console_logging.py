"""After an expected error's one line the console says nothing more: a warning Prefect logs
while it shuts down (its events worker draining, "Still processing items", when the server
answers slowly) made the line two in a CLI error test. The server-bound handler still gets
every record; the next command's console speaks again."""

from __future__ import annotations

import logging

import pytest

from flows import console_logging


def _console_handler() -> logging.StreamHandler:
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    return handler


def _record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, level, __file__, 1, message, (), None)


def test_the_console_is_quiet_after_an_expected_failure() -> None:
    handler = _console_handler()
    try:
        console_logging.hide_expected_failures_on_console()
        draining = _record("EventsWorker", logging.WARNING,
                           "Still processing items: 1 items remaining...")
        assert handler.filter(draining)  # a running command's warnings reach the console
        console_logging.quiet_console_after_failure()
        assert not handler.filter(draining)
        assert not handler.filter(_record("prefect.flow_runs", logging.INFO, "Finished"))
        console_logging.hide_expected_failures_on_console()  # the next command
        assert handler.filter(draining)
    finally:
        logging.getLogger().removeHandler(handler)
        console_logging._HIDE_EXPECTED.quiet = False


@pytest.mark.parametrize("level", [logging.WARNING, logging.ERROR])
def test_other_records_pass_while_no_failure_was_reported(level: int) -> None:
    handler = _console_handler()
    try:
        console_logging.hide_expected_failures_on_console()
        assert handler.filter(_record("prefect.task_runs", level, "something went wrong"))
    finally:
        logging.getLogger().removeHandler(handler)
