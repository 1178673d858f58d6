"""``POST /ncip``: the gateway's NCIP 2.02 responder (XML in, XML out).

A thin shell: the body is read (at most 1 MB), :func:`connectors.ncip.admit` reads it
and tells which configured client sent it (bearer token), and the node (the services
on the circulation database, :class:`circulation.ncip.NcipNode`) answers it.  Every
protocol-level refusal (bad XML, a service we do not offer, an unknown agency, a wrong
token, an unknown user or item) is a Problem in an NCIP response with HTTP 200, as NCIP
over HTTP expects; only a body over the limit (413), a wrong method (405) and an outage
of our database (503 with Retry-After and Temporary Processing Failure, so the client
tries again) use other statuses, and they too carry an NCIP Problem.  Nothing a client
sends is logged as a traceback.

Wiring (done by the application, not here): ``add_routes(app, NcipNode(circ, config))``.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from circulation.availability import Unavailable
from connectors import ncip as N
from connectors.ncip import model as m
from connectors.ncip.config import NcipClient, NcipConfig
from connectors.ncip.model import General, Messaging

from .xml_endpoint import MAX_BODY, OutageLog, read_body

log = logging.getLogger("unioncat.ncip")

CONTENT_TYPE = "application/xml"
RETRY_AFTER_SECONDS = 30
PATH = "/ncip"


class Node(Protocol):
    config: NcipConfig

    async def respond(self, message: m.Initiation, client: NcipClient) -> m.Response:
        """The response to an admitted message; raises ``Unavailable`` (503)."""


def _reply(response: m.Response, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=N.encode(response), status=status, content_type=CONTENT_TYPE, charset="utf-8",
                        headers=headers)


def _top_level(problem_type, detail: str) -> m.Response:
    return N.problem_response(None, (N.problem(problem_type, detail),))


def handler(node: Node) -> Callable[[web.Request], Awaitable[web.Response]]:
    outage = OutageLog(log, "NCIP messages")

    async def ncip(request: web.Request) -> web.Response:
        if request.method != "POST":
            return _reply(_top_level(Messaging.PROTOCOL_ERROR, "NCIP messages are POSTed"), 405, {"Allow": "POST"})
        body = await read_body(request, MAX_BODY)
        if body is None:
            return _reply(_top_level(Messaging.INVALID_MESSAGE_SYNTAX_ERROR, f"a message over {MAX_BODY} bytes"), 413)
        admitted = N.admit(body, request.headers.get("Authorization"), node.config)
        if not isinstance(admitted, tuple):
            p = admitted.problem[0]
            log.info("NCIP message refused: %s (%s)", p.problem_type.text, (p.problem_detail or "")[:200])
            return _reply(admitted)
        message, client = admitted
        try:
            response = await node.respond(message, client)
        except Unavailable as e:
            outage.failed(e)
            header = N.response_header(message.initiation_header, m.SchemeValue(node.config.agency))
            response = N.problem_response(type(message).__name__, (N.problem(
                General.TEMPORARY_PROCESSING_FAILURE, "temporarily unavailable, try again"),), header)
            return _reply(response, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})
        outage.working()
        return _reply(response)

    return ncip


def add_routes(app: web.Application, node: Node) -> None:
    app.router.add_route("*", PATH, handler(node))
