"""Sessions, CSRF checks and the wrapper every route goes through.

A route is data (:class:`Route`): method, the document's path, handler, who may call it
(None: anyone; "any": anyone, with the session if there is one; "patron"; "staff"),
the staff roles it needs (all of them), and which of its inputs name something that
belongs to a library system (:class:`Owned`, checked by :mod:`.scope`). The wrapper
(:func:`endpoint`) does, in order: the CSRF origin check, the session, the roles, the
input against the OpenAPI operation (:mod:`.validation`), the library scope, then the
handler; it answers the handler's result as JSON and wakes the notices job after a
successful change.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Awaitable, Callable, NamedTuple
from urllib.parse import urlsplit

from aiohttp import web

from circulation import auth, jobs
from circulation.service import Circulation

from .encoding import json_response, local_times
from .errors import BEARER_CHALLENGE, ApiError, Outage, refusal
from .validation import Document, Operation

API = "/api/v1"
COOKIE = "unioncat_session"
CSRF_HEADER = "X-Requested-With"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")      # what auth's tokens look like (token_urlsafe)

STATE = web.AppKey("circulation_api", object)


class Owned(NamedTuple):
    """An input (body field, query or path parameter ``name``) naming a ``kind`` of thing
    that belongs to one library system: item (a barcode), patron (a card number),
    request (an id), branch, library."""
    name: str
    kind: str


Handler = Callable[["Ctx"], Awaitable[Any]]


class Route(NamedTuple):
    method: str
    path: str                          # under /api/v1, as the OpenAPI document writes it
    handler: Handler
    who: str | None = None             # None | "any" | "patron" | "staff"
    roles: tuple[str, ...] = ()        # staff roles needed (every one)
    owns: tuple[Owned, ...] = ()       # staff routes: inputs kept to the staff member's library


@dataclass
class ApiState:
    circ: Circulation
    mailer: Any = None
    job_intervals: dict | None = None        # the scheduler's jobs (None: none)
    cookie_secure: bool = True
    scheduler: Any = None
    document: Document | None = None
    outage: Outage = field(default_factory=Outage)
    ill: Any = None                          # circulation.ill.common.Ill when [ill] is configured
    jobs_stop_timeout: float = 10.0          # on shutdown, for the jobs in progress
    _kick_task: asyncio.Task | None = None
    _kick_again: bool = False

    @property
    def openapi(self) -> bytes:
        return self.document.raw if self.document is not None else b""

    def kick_notices(self) -> None:
        """Wake the notices job (when the service runs it): one run at a time, and
        one more if new notices were queued while it ran."""
        sch = self.scheduler
        if sch is None or "notices" not in sch.intervals or sch.stopping:
            return
        if self._kick_task is not None and not self._kick_task.done():
            self._kick_again = True
            return

        async def run():
            while True:
                self._kick_again = False
                try:
                    await sch.run_now("notices")
                except jobs.SchedulerStopped:        # shutting down: the outbox keeps them
                    return
                if not self._kick_again:
                    return

        self._kick_task = asyncio.create_task(run(), name="api:notices-kick")


@dataclass
class Ctx:
    request: web.Request
    st: ApiState
    principal: auth.Principal | None = None
    token: str | None = None
    via_cookie: bool = False
    path: dict = field(default_factory=dict)       # path parameters, checked
    query: dict = field(default_factory=dict)      # query parameters, checked
    body: dict = field(default_factory=dict)       # the JSON body, checked

    @property
    def circ(self) -> Circulation:
        return self.st.circ

    @property
    def card(self) -> str:
        assert self.principal is not None and self.principal.kind == "patron"
        return self.principal.login

    @property
    def actor(self) -> str:
        return self.principal.login if self.principal is not None else ""

    def value(self, name: str) -> Any:
        """An input by name, from the path, the query or the body."""
        for source in (self.path, self.query, self.body):
            if name in source:
                return source[name]
        return None


def session_cookie(resp: web.Response, st: ApiState, token: str, max_age: timedelta) -> None:
    resp.set_cookie(COOKIE, token, max_age=int(max_age.total_seconds()), path=API, httponly=True,
                    samesite="Strict", secure=st.cookie_secure)


def clear_session_cookie(resp: web.Response, st: ApiState) -> None:
    resp.del_cookie(COOKIE, path=API, secure=st.cookie_secure, httponly=True, samesite="Strict")


def _origin_ok(request: web.Request) -> bool:
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return netloc.lower() == (request.host or "").lower()


async def _authenticate(ctx: Ctx) -> None:
    """Find the session (bearer header first, else the cookie); sets ``ctx.principal``.
    A token that cannot be one of ours is no session."""
    request = ctx.request
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "invalid_authorization", headers=dict(BEARER_CHALLENGE))
        ctx.token, ctx.via_cookie = token.strip(), False
    else:
        ctx.token, ctx.via_cookie = request.cookies.get(COOKIE) or None, True
    if ctx.token is None:
        return
    if ctx.via_cookie and request.method in UNSAFE and not request.headers.get(CSRF_HEADER, "").strip():
        raise ApiError(403, "csrf_check_failed", details={"missing_header": CSRF_HEADER})
    if TOKEN.fullmatch(ctx.token):
        ctx.principal = await auth.session_of(ctx.circ, ctx.token)


def endpoint(route: Route, op: Operation, scope) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of one route (``scope``: the library check of staff routes)."""
    who, handler = route.who, route.handler

    async def h(request: web.Request) -> web.StreamResponse:
        st: ApiState = request.app[STATE]
        ctx = Ctx(request, st)
        if request.method in UNSAFE and not _origin_ok(request):
            raise ApiError(403, "csrf_check_failed", details={"origin": request.headers.get("Origin")})
        if who is not None:
            await _authenticate(ctx)
            if who != "any":
                if ctx.principal is None:
                    raise ApiError(401, "not_logged_in", headers=dict(BEARER_CHALLENGE))
                if who == "patron" and ctx.principal.kind != "patron":
                    raise ApiError(403, "patron_only")
                if who == "staff":
                    for role in route.roles or ("circulation",):
                        d = auth.require_role(ctx.principal, role)
                        if not d.allowed:
                            raise refusal(d)
        clock = st.circ.clock                   # input times as the service keeps them
        ctx.path = local_times(op.path_values(request), clock)
        ctx.query = local_times(op.query_values(request), clock)
        ctx.body = local_times(await op.body_values(request), clock) if request.method in UNSAFE else {}
        if who == "staff":
            await scope(ctx, route.owns)
        result = await handler(ctx)
        if isinstance(result, web.StreamResponse):
            resp = result
        else:
            status, payload = result if isinstance(result, tuple) else (200, result)
            resp = json_response(payload, status, clock=st.circ.clock)
        if request.method in UNSAFE and resp.status < 400:
            st.kick_notices()
        return resp

    return h
