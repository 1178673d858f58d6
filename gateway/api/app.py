"""The ``/api/v1`` sub-application: every route of :data:`ROUTES` bound to its operation
in the OpenAPI document, the error middleware, and the circulation jobs' scheduler."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from datetime import timedelta
from typing import Mapping

from aiohttp import web

from circulation import jobs, queries
from circulation.availability import on_connection
from circulation.service import Circulation

from . import hiroshima, ill, patron, scope, staff
from .errors import CLOCK, OUTAGE, errors
from .session import API, STATE, ApiState, Route, endpoint
from .validation import MAX_BODY, Document

log = logging.getLogger("unioncat.circulation.api")

JOBS_STOP_TIMEOUT = 10.0        # seconds a job in progress may take to finish on shutdown

# Every route, as data; each is documented in gateway/openapi/circulation.json (a test
# checks both ways).
ROUTES: list[Route] = [*patron.ROUTES, *staff.ROUTES, *ill.ROUTES, *hiroshima.ROUTES]


def is_loopback(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def job_intervals(spec: Mapping[str, float | timedelta] | None, mailer) -> dict:
    """The scheduled jobs: ``spec`` as given, or every job at its default interval
    (the notices job only with a mailer)."""
    if spec is not None:
        return dict(spec)
    out = {name: j.interval for name, j in jobs.JOBS.items()}
    if mailer is None:
        out.pop("notices")
    return out


def make_api(circ: Circulation, *, mailer=None, jobs_spec: Mapping | None = None,
             cookie_secure: bool = True, document: Document | None = None, ill=None,
             jobs_stop_timeout: float = JOBS_STOP_TIMEOUT) -> web.Application:
    """The ``/api/v1`` sub-application: routes, the error middleware, and on startup
    the jobs :class:`~circulation.jobs.Scheduler` (``jobs_spec``: job → interval; None
    = every job at its default interval, the notices job only with a ``mailer``; {} =
    no scheduler). ``ill``: the ILL node's :class:`~circulation.ill.common.Ill` (its staff
    routes answer 404 without one).

    Shutting down: on the application's shutdown (before any cleanup) the scheduler
    stops, letting runs in progress finish for up to ``jobs_stop_timeout`` seconds and
    cancelling the rest; the database is disposed on cleanup, after every background
    user of it (the jobs here, the ILL worker in gateway/ill_service.py) has stopped."""
    intervals = job_intervals(jobs_spec, mailer)
    doc = document or Document.load()
    st = ApiState(circ, mailer, intervals, cookie_secure, document=doc, ill=ill,
                  jobs_stop_timeout=jobs_stop_timeout)
    api = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    api[STATE] = st
    api[OUTAGE] = st.outage
    api[CLOCK] = circ.clock
    for route in ROUTES:
        op = doc.operation(route.method, API + route.path)          # KeyError: not documented
        api.router.add_route(route.method, op.router_path(API), endpoint(route, op, scope.check))

    stop_watching: list = []

    async def startup(_app):
        try:
            await queries.check_schema(circ)
        except Exception as e:  # noqa: BLE001 - said in one line, the service does not start
            raise SystemExit(f"unioncat: the circulation database {circ.db.url.render_as_string(hide_password=True)} "
                             f"is not usable ({type(e).__name__}); run `unioncat circ init` first") from None
        stop_watching.append(on_connection(circ.db, st.outage.working))     # the database is back
        if mailer is None and jobs_spec is None:
            log.info("no SMTP host (--smtp-host): the notices job is not scheduled; "
                     "notices stay queued in the outbox")
        if intervals:
            st.scheduler = jobs.Scheduler(circ, mailer, intervals)
            st.scheduler.start()
            log.info("circulation jobs scheduled: %s", ", ".join(
                f"{n} every {_shown_interval(v)}" for n, v in intervals.items()))

    async def shutdown(_app):
        # aiohttp runs every shutdown handler before any cleanup handler: the jobs stop
        # here (a run in progress may finish), the database goes in cleanup
        if st.scheduler is not None:
            await st.scheduler.stop(timeout=st.jobs_stop_timeout)
        if st._kick_task is not None:          # ends at once: the scheduler runs nothing new
            await asyncio.gather(st._kick_task, return_exceptions=True)

    async def cleanup(_app):
        for stop in stop_watching:
            stop()
        await circ.db.dispose()

    api.on_startup.append(startup)
    api.on_shutdown.append(shutdown)
    api.on_cleanup.append(cleanup)
    return api


def _shown_interval(v) -> str:
    secs = v.total_seconds() if isinstance(v, timedelta) else float(v)
    if secs % 3600 == 0:
        return f"{int(secs // 3600)} h"
    if secs % 60 == 0:
        return f"{int(secs // 60)} min"
    return f"{secs:g} s"
