"""Fail a test when the service logged an error or a traceback while it ran requests
that were only a client's mistakes (a client's mistake gets a clear answer, never a
traceback in the log). Works with the live server in its thread: its records reach
pytest's ``caplog`` through the root logger."""
from __future__ import annotations

import contextlib
import logging


def errors_in(records) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" + (" (with a traceback)" if r.exc_info else "")
            for r in records if r.levelno >= logging.ERROR or r.exc_info]


@contextlib.contextmanager
def no_errors_logged(caplog):
    """``with no_errors_logged(caplog): ...`` fails if anything inside logged at ERROR or
    above, or with a traceback."""
    caplog.set_level(logging.INFO)
    start = len(caplog.records)
    yield
    bad = errors_in(caplog.records[start:])
    assert not bad, "the service logged errors for a client's mistakes:\n" + "\n".join(bad[:10])
