"""What the web page tests share (tests/test_web_*.py): the service with its seed data,
a form-posting HTTP client that keeps cookies, axe-core fetched once from the npm
registry (pinned and checked), and Debian's Chromium for Playwright.

axe-core: ``npm pack axe-core@AXE_VERSION`` into ``$UNIONCAT_CACHE`` or
``~/.cache/unioncat/`` (the cache tools/elasticsearch_node.py uses), the tarball checked
against the registry's pinned sha512 integrity every time it is used, ``axe.min.js``
taken from it. Chromium: ``/usr/bin/chromium`` (``make test`` installs Debian's package);
a missing browser fails the tests, it never skips them.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import http.cookiejar
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from circ_helpers import CHEAP_HASHING, NOW
from circulation import auth, cart, holds
from circulation.service import Circulation
from circulation.store import Clock, Database
from lifecycle.profiles import load_all
from live_server import Server
from test_circulation_api import (
    EMILY,
    HANAKO,
    PW,
    STAFF_PW,
    T2,
    T4,
    T6,
    TARO,
    UNOWNED,
    _prepare,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# the flags this machine needs (closed network: no background connections, no QUIC, no sync)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE_VERSION = "4.14.1"
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
SCREENSHOTS = ROOT / "build" / "screenshots"

# the people of the page tests besides those of test_circulation_api._prepare
LOCKED = "2100000008"              # an Iizuka patron whose password the lockout test gets wrong
NEWCOMER, NEWCOMER_PHONE = "2100000009", "0948-22-0009"   # registers a password on the web
PASSWORDS = {**PW, HANAKO: "hana2026", LOCKED: "lock2026"}
STAFF = "iizuka.counter"
HIROSHIMA_STAFF, HIROSHIMA_PATRON = "hiroshima.central", "4100000001"


def cache_dir() -> Path:
    env = os.environ.get("UNIONCAT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "unioncat"


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def axe_source() -> str:
    """axe.min.js of the pinned axe-core, fetched once with npm and checked each time."""
    d = cache_dir() / f"axe-core-{AXE_VERSION}"
    tgz = d / f"axe-core-{AXE_VERSION}.tgz"
    if not tgz.exists() or _integrity(tgz) != AXE_INTEGRITY:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            npm = shutil.which("npm")
            assert npm, "npm is needed to fetch axe-core (the machine's Node.js)"
            res = subprocess.run([npm, "pack", f"axe-core@{AXE_VERSION}", "--pack-destination", tmp, "--silent"],
                                 cwd=tmp, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                                 check=False)
            assert res.returncode == 0, res.stderr
            got = Path(tmp) / f"axe-core-{AXE_VERSION}.tgz"
            assert got.exists(), res.stdout
            assert _integrity(got) == AXE_INTEGRITY, "axe-core tarball does not match the pinned integrity"
            shutil.move(str(got), tgz)
    assert _integrity(tgz) == AXE_INTEGRITY, f"{tgz}: wrong checksum"
    with tarfile.open(tgz) as tf:
        member = tf.extractfile("package/axe.min.js")
        assert member is not None
        return member.read().decode("utf-8")


# --------------------------------------------------------------------------- the service

async def _seed(url: str) -> None:
    """test_circulation_api's seed (Iizuka and Komae people, copies, loans, a hold), and:
    passwords for Hanako and the lockout patron, the newcomer (no password), Hanako waiting
    for Taro's copy of T2 at the Iizuka library, and three titles in Emily's cart."""
    from circ_helpers import add_patron

    await _prepare(url)
    circ = Circulation(Database(url), load_all(), Clock(NOW))
    try:
        await add_patron(circ, LOCKED, "iizuka", name="鍵 太郎", phone="0948-22-0008", default_pickup_branch="iizuka")
        await add_patron(circ, NEWCOMER, "iizuka", name="新井 さくら", phone=NEWCOMER_PHONE,
                         default_pickup_branch="iizuka")
        for card in (HANAKO, LOCKED):
            d = await auth.set_password(circ, card=card, new_password=PASSWORDS[card], role="staff", actor="test")
            assert d.allowed, d
        r = await holds.place(circ, card=HANAKO, title_id=T2, pickup_branch="iizuka", channel="web", role="patron",
                              actor=HANAKO, title="吾輩は猫である", contact_method="email")
        assert r.request_id is not None, r.decision
        for title_id, title in ((T4, "本を読む本"), (T6, "坊っちゃん"), (UNOWNED, "図書館にない本")):
            d = await cart.add(circ, EMILY, title_id, title)
            assert d.allowed, d
        # Hiroshima: a counter member of staff and a resident (home delivery, proxies, the mobile library)
        d = await auth.create_staff(circ, username=HIROSHIMA_STAFF, password=STAFF_PW, library="hiroshima",
                                    branch="central", roles="circulation")
        assert d.allowed, d
        await add_patron(circ, HIROSHIMA_PATRON, "hiroshima", name="広島 一郎", phone="082-000-0001",
                         default_pickup_branch="central", default_contact_method="phone")
    finally:
        await circ.db.dispose()


@dataclass
class Site:
    server: Server
    clock: Clock

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def circ(self) -> Circulation:
        return self.server.circulation


def load_catalog(data_dir: Path) -> None:
    """The demo catalog (gateway/demo.py: Japanese and English books of three member
    libraries, among them 図書館の歴史 (T1), 吾輩は猫である (T2) and 學問のすゝめ (T3) of the
    circulation seed) ingested into ``data_dir`` through the real pipeline."""
    from gateway.demo import write_demo_files
    from indexers.ingest import ingest

    for lib, path in write_demo_files(data_dir / "in").items():
        ingest(data_dir, lib, [path], quiet=True)


def start_site(tmp: Path, url: str | None = None, *, catalog: bool = False) -> Site:
    """The service with the seed; ``catalog``: with the demo catalog too (the OPAC's pages)."""
    auth.configure_password_hashing(**CHEAP_HASHING)
    if catalog:
        load_catalog(tmp)
    url = url or f"sqlite+aiosqlite:///{tmp}/circ.db"
    asyncio.run(_seed(url))
    clock = Clock(NOW)
    srv = Server(tmp, circulation=Circulation(Database(url), load_all(), clock), circulation_jobs={})
    return Site(srv, clock)


# --------------------------------------------------------------------------- a form client

@dataclass
class Page:
    status: int
    text: str
    headers: object
    url: str

    def csrf(self) -> str:
        m = re.search(r'name="csrf_token" value="([^"]+)"', self.text)
        assert m, "no CSRF token on the page"
        return m.group(1)

    def messages(self) -> list[str]:
        return [re.sub(r"\s+", " ", m).strip()
                for m in re.findall(r'class="msg msg-\w+"[^>]*>(.*?)</p>', self.text, re.DOTALL)]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


class Browserless:
    """A cookie-keeping client of the pages (follows redirects unless told not to)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.plain = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def _open(self, req, follow: bool) -> Page:
        try:
            with (self.opener if follow else self.plain).open(req, timeout=30) as r:
                return Page(r.status, r.read().decode("utf-8"), r.headers, r.url)
        except urllib.error.HTTPError as e:
            return Page(e.code, e.read().decode("utf-8", "replace"), e.headers, req.full_url)

    def get(self, path: str, follow: bool = True) -> Page:
        return self._open(urllib.request.Request(self.base + path), follow)

    def post(self, path: str, data: dict | list, *, csrf: str | None = None, follow: bool = True,
             headers: dict | None = None) -> Page:
        items = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf is not None:
            items.append(("csrf_token", csrf))
        body = urllib.parse.urlencode(items).encode()
        req = urllib.request.Request(self.base + path, data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        return self._open(req, follow)

    def form(self, page_path: str, action: str, data: dict | list, **kw) -> Page:
        """GET the page, POST its form with the page's CSRF token."""
        return self.post(action, data, csrf=self.get(page_path).csrf(), **kw)

    def login(self, card: str, password: str | None = None) -> Page:
        return self.form("/login", "/login", {"card_number": card, "password": password or PASSWORDS[card]})

    def staff_login(self, username: str = STAFF, password: str | None = None) -> Page:
        return self.form("/staff/login", "/staff/login", {"username": username, "password": password or STAFF_PW})


__all__ = [
    "AXE_VERSION",
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "EMILY",
    "HANAKO",
    "HIROSHIMA_PATRON",
    "HIROSHIMA_STAFF",
    "LOCKED",
    "NEWCOMER",
    "NEWCOMER_PHONE",
    "PASSWORDS",
    "SCREENSHOTS",
    "STAFF",
    "TARO",
    "Browserless",
    "Site",
    "axe_source",
    "start_site",
]
