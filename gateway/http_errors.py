"""The HTTP layer's limits and how it logs a client's malformed request.

aiohttp refuses a request line or a header line over 8190 bytes before any application
sees it, with a plain-text 400, and logs each such refusal with a full traceback at
ERROR. :data:`HTTP_LIMITS` raises those limits so that the applications answer
themselves (the circulation API refuses over 8190 bytes with its JSON error, 414 or
431); beyond them the HTTP layer still refuses. :class:`ClientErrorLog` turns the HTTP
layer's log of a client's malformed request (bad request line, header too long,
invalid characters ...) into one INFO line without a traceback: a client's mistake is
not our error, and a fuzzing client must not fill the log.
"""
from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

# per request line and per header line; at most aiohttp's 128 headers of a request
HTTP_LIMITS = {"max_line_size": 32 * 1024, "max_field_size": 32 * 1024}


class ClientErrorLog(logging.Filter):
    """On ``aiohttp.server``: a client's protocol error (4xx) as one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            text = " ".join(str(exc.message or type(exc).__name__).split())[:200]
            record.msg, record.args = "%s: malformed request refused (%s: %s)", (
                record.getMessage(), type(exc).__name__, text)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorLog` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorLog) for f in logger.filters):
        logger.addFilter(ClientErrorLog())
