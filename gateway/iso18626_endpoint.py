"""``POST /iso18626``: the gateway's ISO 18626 endpoint (XML in, confirmation out).

A thin shell: the body is read (at most 1 MB), :func:`connectors.iso18626.admit.admit`
reads it and checks who sent it, and the node (the ILL engine on the circulation
database) handles the message and returns its confirmation.  Every protocol-level
refusal (bad XML, unknown agency, wrong credential, a message out of turn) is an ERROR
confirmation with HTTP 200, as partners expect of ISO 18626 over HTTP; only a body
over the limit (413), a wrong method (405) and an outage of our database (503 with
Retry-After, so the partner's client tries again) use other statuses, and they too
carry an ERROR confirmation.  Nothing a partner sends is logged as a traceback.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from aiohttp import web

from circulation.availability import Unavailable
from connectors import iso18626 as I
from connectors.iso18626 import model as m
from connectors.iso18626.admit import admit
from connectors.iso18626.config import IllConfig, Partner

from .xml_endpoint import MAX_BODY, OutageLog, read_body

log = logging.getLogger("unioncat.ill")

CONTENT_TYPE = "application/xml"
RETRY_AFTER_SECONDS = 30


class Node(Protocol):
    config: IllConfig

    def now(self) -> datetime: ...

    async def receive(self, message, partner: Partner, body: bytes) -> m.Confirmation:
        """The confirmation of an admitted message; raises ``Unavailable`` (503)."""


def _reply(conf: m.Confirmation, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=I.encode(conf), status=status, content_type=CONTENT_TYPE, charset="utf-8",
                        headers=headers)


def _refusal(node: Node, value: str, error_type=m.ErrorType.BADLY_FORMED_MESSAGE) -> m.Confirmation:
    return I.confirm_protocol_error(m.ProtocolError(error_type, value), now=node.now())


def handler(node: Node) -> Callable[[web.Request], Awaitable[web.Response]]:
    outage = OutageLog(log, "ISO 18626 messages")

    async def iso18626(request: web.Request) -> web.Response:
        if request.method != "POST":
            return _reply(_refusal(node, "ISO 18626 messages are POSTed"), 405, {"Allow": "POST"})
        body = await read_body(request, MAX_BODY)
        if body is None:
            return _reply(_refusal(node, f"a message over {MAX_BODY} bytes"), 413)
        admitted = admit(body, request.headers.get("Authorization"), node.config, now=node.now())
        if not isinstance(admitted, tuple):
            status = admitted.confirmation_header.message_status
            if status is m.MessageStatus.ERROR:
                log.info("ISO 18626 message refused: %s", admitted.error_data.error_value)
            return _reply(admitted)
        message, partner = admitted
        try:
            conf = await node.receive(message, partner, body)
        except Unavailable as e:
            outage.failed(e)
            conf = I.confirm(message, now=node.now(),
                             error=(m.ErrorType.UNRECOGNISED_DATA_VALUE, "temporarily unavailable, try again"))
            return _reply(conf, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        outage.working()
        return _reply(conf)

    return iso18626


def add_routes(app: web.Application, node: Node) -> None:
    h = handler(node)
    app.router.add_route("*", "/iso18626", h)
