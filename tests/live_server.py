"""The real aiohttp application on a loopback port, in a background thread."""
from __future__ import annotations

import asyncio
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from aiohttp import web

from gateway.app import make_app

# tools/ is not a package: its port chooser is shared with the PostgreSQL and Elasticsearch nodes
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from server_process import free_port as _free_port


def free_port() -> int:
    """A loopback port no other test of this process was given (tools/server_process.py)."""
    return _free_port()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Server:
    """The real aiohttp app in a thread, on a loopback port, on the event loop
    `unioncat serve` uses by default (uvloop when installed, else asyncio's)."""

    def __init__(self, data_dir, catalog=None, z3950_settings=None, circulation=None, **app_options):
        """``circulation`` (a Circulation whose database the server's loop will use) adds
        the /api/v1 circulation API; ``app_options`` go to make_app (mailer,
        circulation_jobs, cookie_secure)."""
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.z3950_port = free_port()
        self.z3950 = f"tcp:127.0.0.1:{self.z3950_port}"     # as yaz-client / zoomsh address it
        self.loop = _new_loop()
        self.circulation = circulation
        self.app = make_app(data_dir, port=self.port, catalog=catalog, z3950_port=self.z3950_port,
                            z3950_settings=z3950_settings, circulation=circulation, **app_options)
        self.runner = web.AppRunner(self.app)
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def get(self, path="/sru", **params) -> tuple[int, bytes, str]:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        return self._open(urllib.request.Request(url))

    def post(self, path="/sru", **params):
        data = urllib.parse.urlencode(params).encode()
        return self._open(urllib.request.Request(self.base + path, data=data,
                                                 headers={"Content-Type": "application/x-www-form-urlencoded"}))

    def _open(self, req):
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type", "")

    def run(self, coro, timeout: float = 60):
        """Run a coroutine on the server's event loop (where its database engine lives)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        # the circulation scheduler lets a running job finish for up to 30 s on shutdown
        # (circulation.jobs.Scheduler.stop): wait longer than that
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(45)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


