"""Circulation API worker processes: the patron and staff API (/api/v1) on every core.

One process answers at most one core's worth of API requests (one event loop under one
GIL, and a circulation operation costs a few milliseconds of Python). ``unioncat serve
--api-workers N --api-port P`` therefore serves the API on port P from N processes of its
own, listening on the same port with SO_REUSEPORT (Linux spreads new connections over
them); the serving process keeps answering everything on ``--port`` as before (SRU, the
pages, the API). Each worker is ``unioncat serve ... --api-worker-of PID``: it opens the
circulation database with a pool of its own, serves /api/v1 only, and exits when its
parent does (it checks every second) or on SIGTERM.

What makes this safe: every unit of work of the service is a database transaction with
row locks (circulation/store.py), so processes share nothing but the database; login
sessions are database rows; the scheduled jobs are claimed in ``job_schedule``
(circulation/jobs.py), so each runs once per network, whichever process claims it.
PostgreSQL only: SQLite allows one writer at a time, and the service runs as one
process on it (the command refuses --api-workers with an SQLite database).

Not in the workers: the ISO 18626 and NCIP endpoints and the ILL staff routes of the API
(their background worker runs in the serving process only), the web pages and SIP2.
"""
from __future__ import annotations

from .workers import run_app_worker, serve_argv


def api_worker_argv(args, data_dir, circ_db: str, host: str, port: int, parent: int) -> list[str]:
    """The command line of one API worker: the serve command's circulation options."""
    argv = serve_argv("api", args, data_dir, host, port, parent)
    argv += ["--circ-db", circ_db, "--cookie-secure", getattr(args, "cookie_secure", "auto"),
             "--api-workers", str(args.api_workers)]          # for its share of the pool
    if getattr(args, "smtp_host", None):
        argv += ["--smtp-host", args.smtp_host, "--smtp-port", str(args.smtp_port)]
        if args.smtp_user:
            argv += ["--smtp-user", args.smtp_user]          # the password: inherited $UNIONCAT_SMTP_PASSWORD
    if getattr(args, "mail_from", None):
        argv += ["--mail-from", args.mail_from]
    if getattr(args, "config", None):
        argv += ["--config", str(args.config)]
    return argv


def run_api_worker(circ_db: str, host: str, port: int, parent: int, *, mailer=None,
                   cookie_secure: bool | None = None, jobs_spec=None, processes: int = 1) -> None:
    """Serve /api/v1 on host:port (SO_REUSEPORT) until SIGTERM or the parent's exit.
    ``parent`` 0: no parent to watch (a process of its own, e.g. in tests). ``processes``:
    how many serve the API (the workers and their parent), sharing the configured pool."""
    from aiohttp import web

    from circulation.service import Circulation
    from circulation.store import Database

    from .api import API, is_loopback, make_api
    from .app import MAX_BODY
    from .http_shell import handler_args, use_tolerant_request_parser

    async def make():
        circ = Circulation(Database(circ_db, pool_share=processes))
        secure = (not is_loopback(host)) if cookie_secure is None else cookie_secure
        use_tolerant_request_parser()
        app = web.Application(client_max_size=MAX_BODY, handler_args=handler_args())
        # the API's shutdown stops its jobs, its cleanup disposes the database
        app.add_subapp(API, make_api(circ, mailer=mailer, jobs_spec=jobs_spec, cookie_secure=secure))
        return app

    run_app_worker(make, host, port, parent, "API worker {pid} on {url}" + API)
