"""What the HTTP server does with what clients really send, before a handler runs.

* **Raw UTF-8 in the request target.**  curl sends a URL typed with Japanese
  text as UTF-8 bytes (``/sru?query=dc.title%3D図書館``); YAZ and Zebra accept
  that.  aiohttp's C request parser (llhttp) refuses every byte above 0x7F in a
  request target (HTTP 400 "Invalid char in url query"), and has no option to do
  otherwise.  Its pure-Python request parser, which aiohttp keeps equal to the C
  one in every other check (framing, headers, smuggling), accepts them: the
  server uses it (:func:`use_tolerant_request_parser`).  It costs about 0.07 ms
  per request, some 1-2 % of an SRU searchRetrieve.  Bytes that are not UTF-8
  then reach the SRU binding, which answers them with a diagnostic
  (sru/binding.py).
* **A client's mistake is not a server error.**  aiohttp logs a request it
  cannot parse at ERROR with a full traceback (10 MB of log in a fuzz run).
  :class:`ClientMistakeLogger` writes those as one INFO line (client, reason);
  anything else keeps its traceback.
* **Long SRU queries, long headers.**  A request line may be up to
  :data:`MAX_REQUEST_LINE` bytes (aiohttp: 8190), so a long CQL query sent by GET is
  answered; a header line up to :data:`MAX_FIELD` bytes, so the applications answer an
  oversized one themselves (the circulation API refuses a header or URL over 8190
  bytes with its JSON error, 431 or 414). Beyond these the HTTP layer refuses (below).
* **A message that is not HTTP is refused in the API's error shape.**  A request the
  parser refuses (a ``Content-Length: C``, a header line over the limit, a broken
  request line) never reaches a handler, and the parser does not keep its path.
  aiohttp answers it with a plain-text 400; this server answers it with the one JSON
  error shape of the circulation API, ``{"error": "malformed_request", "message_ja",
  "message_en", "details": {"reason"}}`` (:class:`RefusingRequestHandler`), so a client
  of the documented API gets the documented content type whatever it sent.  The
  connection is closed after it (RFC 9112: the framing of what follows is unknown).
"""
from __future__ import annotations

import json
import logging
import sys

from aiohttp import http_exceptions, web, web_protocol

from lifecycle import reasons

MAX_REQUEST_LINE = 64 * 1024
MAX_FIELD = 32 * 1024           # per header line; at most aiohttp's 128 headers of a request
log = logging.getLogger("unioncat.http")


reasons.register({"malformed_request": ("要求の形式が正しくありません（HTTP）。",
                                         "The request is not a well-formed HTTP message.")})


def use_tolerant_request_parser() -> None:
    """Serve HTTP with aiohttp's pure-Python request parser, and answer a request it
    refuses with :class:`RefusingRequestHandler` (see above).  Idempotent; applies to the
    servers of this process (the aiohttp client is not affected)."""
    from aiohttp import http_parser, web_server

    web_protocol.HttpRequestParser = http_parser.HttpRequestParserPy
    web_server.RequestHandler = RefusingRequestHandler      # what web.Server makes per connection


class RefusingRequestHandler(web_protocol.RequestHandler):
    """aiohttp's per-connection handler, answering a request its parser refused in the
    API's JSON error shape (anything else, a fault of ours included, as aiohttp does)."""

    def handle_error(self, request, status=500, exc=None, message=None):
        if not (isinstance(exc, http_exceptions.HttpProcessingError) and 400 <= status < 500) \
                or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        ja, en = reasons.REASONS["malformed_request"]
        reason = _one_line(exc).split(": ", 1)[-1]
        body = json.dumps({"error": "malformed_request", "message_ja": ja, "message_en": en,
                           "details": {"reason": reason}}, ensure_ascii=False)
        response = web.Response(status=status, text=body, content_type="application/json")
        response.force_close()
        return response


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    text = text if len(text) <= 300 else text[:300] + "..."
    return f"{type(exc).__name__}: {text}"


class ClientMistakeLogger(logging.LoggerAdapter):
    """The logger aiohttp's request handler uses (``handler_args={"logger": ...}``)."""

    def __init__(self, logger: logging.Logger = log):
        super().__init__(logger, {})

    def exception(self, msg, *args, exc_info=True, **kwargs):
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, http_exceptions.HttpProcessingError):
            self.logger.info(msg + ": malformed request refused (%s %s)", *args, getattr(exc, "code", 400),
                             _one_line(exc))
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


def handler_args() -> dict:
    """Request-handler settings for web.Application(handler_args=...)."""
    return {"logger": ClientMistakeLogger(), "max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_FIELD}
