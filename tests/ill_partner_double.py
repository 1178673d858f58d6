"""A partner's ISO 18626 endpoint that cannot be installed here (another vendor's ILL
system), as a small aiohttp server on 127.0.0.1: it validates every message it gets
against the official v1.2 schema, keeps them, answers each with an OK confirmation,
and sends the messages a test scripts to our node, in the forms real peers use."""
from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from iso18626_helpers import assert_valid
from live_server import free_port


@dataclass
class PartnerDouble:
    agency: m.AgencyId
    our_token: str                  # what it sends us
    its_token: str                  # what it expects from us
    port: int = field(default_factory=free_port)
    received: list = field(default_factory=list)      # decoded messages, in order
    invalid: list = field(default_factory=list)
    unauthorised: int = 0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/iso18626"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/iso18626", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            assert_valid(body)
        except AssertionError as e:
            self.invalid.append(str(e))
        if request.headers.get("Authorization") != f"Bearer {self.its_token}":
            self.unauthorised += 1
        msg = I.decode(body)
        self.received.append(msg)
        conf = I.confirm(msg, now=msg.header.timestamp)
        return web.Response(body=I.encode(conf), content_type="application/xml")

    def of(self, kind: type) -> list:
        return [x for x in self.received if isinstance(x, kind)]

    async def send(self, url: str, message, *, lenient: bool = False) -> m.Confirmation:
        """POST a message to our node; ``lenient``: in the looser form some peers send (a
        default namespace, an unqualified version, no multipleItemRequestId)."""
        body = I.encode(message)
        if lenient:
            body = (body.replace(b"<ill:multipleItemRequestId></ill:multipleItemRequestId>", b"")
                    .replace(b"ill:version=", b"version=")
                    .replace(b'xmlns:ill="', b'xmlns="').replace(b"<ill:", b"<").replace(b"</ill:", b"</")
                    .replace(b"<?xml version='1.0' encoding='UTF-8'?>\n", b""))
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {self.our_token}", "Content-Type": "text/xml"}
            if lenient:
                headers["X-Test-Bad"] = "1"     # beyond the schema on purpose: not checked by the harness
            async with http.post(url, data=body, headers=headers) as r:
                data = await r.read()
        assert_valid(data)
        return I.decode(data)
