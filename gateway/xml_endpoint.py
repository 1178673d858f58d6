"""What the gateway's XML-over-HTTP endpoints share (``POST /iso18626``, ``POST /ncip``):
reading a body within its limit, and saying an outage of the database once."""
from __future__ import annotations

import logging

from aiohttp import web

MAX_BODY = 1 << 20


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes | None:
    """The body, or None when it is over ``limit`` (the application's client_max_size
    and this one, whichever is smaller)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None
    return body if len(body) <= limit else None


class OutageLog:
    """An endpoint's database outage, logged when it starts and when it ends, not once
    per message answered 503 meanwhile."""

    def __init__(self, log: logging.Logger, what: str):
        self.log, self.what, self.down = log, what, False

    def failed(self, e: BaseException) -> None:
        if not self.down:
            self.log.error("%s answered 503 until the database is back: %s", self.what, e)
            self.down = True

    def working(self) -> None:
        if self.down:
            self.log.warning("%s: the database is back", self.what)
            self.down = False
