#!/usr/bin/env python3
"""A real PostgreSQL server for the tests and CI, started and stopped here.

    python tools/postgres_node.py install                     # find (or apt-get install) the server
    python tools/postgres_node.py start --dir D [--port P]    # prints the URL, leaves it running
    python tools/postgres_node.py stop --dir D
    python tools/postgres_node.py run [--dir D] [--port P] -- CMD ARGS...

`run` starts a server, runs CMD with
UNIONCAT_PG_URL=postgresql+asyncpg://unioncat@127.0.0.1:PORT/unioncat (an SQLAlchemy
async URL for the asyncpg driver) in its environment, always stops the server
afterwards (also on Ctrl-C or failure) and exits with CMD's exit code.  Without --dir
the server lives in a fresh temporary directory that is deleted afterwards.

Binaries
--------
initdb, pg_ctl and postgres are taken from $UNIONCAT_PG_BIN when set, else from the
highest version of /usr/lib/postgresql/*/bin (Debian's layout), else from the directory
of an ``initdb`` on PATH.  If there are none and we are root on Debian, Debian's
``postgresql`` package is installed with apt-get (``install``; the tests' pg_url fixture
does the same).  Note that the Debian package creates and starts its own cluster
(``main``, port 5432) as a system service; that cluster is not ours and is never
touched here.  psql and pg_isready from the same directory are used when present.

Servers
-------
Each server has everything under its own base directory: ``data/`` (the cluster made
by initdb), ``postgres.log`` (initdb's and the server's output), ``node.json`` (its
port, so a later ``stop``/``start`` of the same directory finds it again) and the Unix
socket (unix_socket_directories is the base directory itself; the server also listens
on 127.0.0.1 only, never on other interfaces).  The cluster is made with
``initdb -A trust -U unioncat --encoding=UTF8 --locale=C``: the superuser is
``unioncat``, any local connection is trusted (nothing outside this machine can
connect), text is UTF-8 with byte-order collation (and, as in SQLite, lower()/upper()
change ASCII letters only).  Each start writes ``data/unioncat.conf``
(included from postgresql.conf): the port, listen_addresses='127.0.0.1',
max_connections=200 (concurrency tests and benchmarks use 64+ connections) and, for
speed, fsync, synchronous_commit and full_page_writes off: a crash can lose or corrupt
the data, which only ever is test data.  The database ``unioncat`` is created when
missing.

initdb and postgres refuse to run as root; as root they run as the system user
``postgres`` (Debian's package creates it; UNIONCAT_PG_USER overrides the name; if
missing, ``unioncat-pg`` is created) and the base directory is chowned to it.  It must
be reachable by that user: /tmp/xyz (tempfile.mkdtemp()) is, pytest's
/tmp/pytest-of-root/... (mode 0700) is not.

The server is started as ``postgres -D base_dir/data`` in a session of its own (a
Ctrl-C in the terminal does not reach it) and is ready when it accepts TCP connections
and pg_isready says so.  It is stopped by the PID in data/postmaster.pid (checked to be
the postmaster of this data directory) with SIGINT (PostgreSQL's fast shutdown: open
sessions are ended), then SIGKILL to its process group after the timeout; never by
process name.

Python API (tests): PostgresNode(base_dir, port=None).start() / .stop() / .url /
.create_database(name) / .drop_database(name), and for any server given by a URL
(e.g. $UNIONCAT_PG_URL): create_database(url, name), drop_database(url, name),
database_url(url, name), unique_database_name(), check_url(url).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_process
from server_process import as_user as _as_user
from server_process import free_port
from server_process import tail as _tail

SUPERUSER = "unioncat"
DEFAULT_DB = "unioncat"
ADMIN_DB = "postgres"
DEFAULT_RUN_USER = "postgres"        # Debian's postgresql package creates it
FALLBACK_RUN_USER = "unioncat-pg"    # created when there is no such user
DEBIAN_PACKAGE = "postgresql"
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
MAX_CONNECTIONS = 200
URL_ENV = "UNIONCAT_PG_URL"
_SOCKET_PATH_MAX = 107               # sun_path is 108 bytes on Linux, with the final NUL


class PostgresError(RuntimeError):
    """Finding, starting, stopping or talking to PostgreSQL failed."""


def _say(msg: str) -> None:
    print(f"postgres_node: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- binaries

def _has_server_tools(d: Path) -> bool:
    return all(os.access(d / tool, os.X_OK) and (d / tool).is_file() for tool in SERVER_TOOLS)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin, (9, 6) for .../9.6/bin; () when not numeric."""
    return tuple(int(n) for n in re.findall(r"\d+", bin_dir.parent.name))


def find_bin_dir() -> Path | None:
    """The directory with initdb, pg_ctl and postgres, or None (see the module docstring
    for the search order).  An explicit $UNIONCAT_PG_BIN without them is an error."""
    explicit = os.environ.get("UNIONCAT_PG_BIN")
    if explicit:
        if not _has_server_tools(Path(explicit)):
            raise PostgresError(f"UNIONCAT_PG_BIN={explicit} lacks one of {', '.join(SERVER_TOOLS)}")
        return Path(explicit)
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_server_tools(d)]
    if found:
        return max(found, key=_version_key)
    initdb = shutil.which("initdb")
    if initdb:
        d = Path(os.path.realpath(initdb)).parent
        if _has_server_tools(d):
            return d
    return None


def ensure_bin_dir(install: bool = True) -> Path:
    """find_bin_dir(), installing Debian's postgresql first when there is none, install
    is true and we are root with apt-get.  Raises PostgresError when there still is none."""
    found = find_bin_dir()
    if found:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        _say(f"no PostgreSQL server found; installing {DEBIAN_PACKAGE} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE], check=True, env=env)
        except (OSError, subprocess.CalledProcessError) as e:
            raise PostgresError(f"installing {DEBIAN_PACKAGE} with apt-get failed: {e}") from None
        found = find_bin_dir()
        if found:
            return found
    raise PostgresError(
        "no PostgreSQL server binaries found (looked at $UNIONCAT_PG_BIN, "
        "/usr/lib/postgresql/*/bin, initdb on PATH); install them (Debian: apt-get install "
        f"{DEBIAN_PACKAGE}, or run `python3 tools/postgres_node.py install` as root) "
        "or set UNIONCAT_PG_BIN")


def _client_tool(name: str) -> str | None:
    """psql / pg_isready: next to the server binaries if there, else on PATH."""
    with contextlib.suppress(PostgresError):
        d = find_bin_dir()
        if d and os.access(d / name, os.X_OK):
            return str(d / name)
    return shutil.which(name)


def _clean_env(**extra: str) -> dict:
    """The environment without PG* variables (PGHOST, PGPORT, PGDATA ... would redirect
    our tools) and with C messages (the log is searched for English text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", **extra)
    return env


# --------------------------------------------------------------------------- processes

def _pid_alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """Whether pid is the postmaster of data_dir: it chdirs into its data directory,
    so /proc/PID/cwd tells a recycled PID from ours.  True where /proc says nothing."""
    if not _pid_alive(pid):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return os.path.realpath(cwd) == os.path.realpath(data_dir)


_REFUSING = "initdb and postgres refuse to run as root"


def _run_user() -> pwd.struct_passwd | None:
    """The account initdb and the server run as when we are root (created if missing);
    None when not root (they then run as the current user)."""
    names = [os.environ["UNIONCAT_PG_USER"]] if os.environ.get("UNIONCAT_PG_USER") else \
        [DEFAULT_RUN_USER, FALLBACK_RUN_USER]
    return server_process.run_user(names, _REFUSING, _say)


def _accepts_tcp(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- URLs, admin SQL

def _url_parts(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme.startswith("postgres") or not parts.hostname:
        raise PostgresError(f"not a PostgreSQL URL with a host: {url}")
    return parts


def database_url(url: str, name: str) -> str:
    """url with its database replaced by name."""
    return _url_parts(url)._replace(path="/" + urllib.parse.quote(name, safe="")).geturl()


def unique_database_name(prefix: str = "t") -> str:
    """A fresh database name: prefix_ and 12 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _ident(name: str) -> str:
    if not name or len(name.encode()) > 63 or "\0" in name:
        raise PostgresError(f"bad database name {name!r} (1..63 bytes; PostgreSQL "
                            "truncates longer names silently)")
    return '"' + name.replace('"', '""') + '"'


def admin_sql(url: str, sql: str, dbname: str = ADMIN_DB) -> list[str]:
    """Run one SQL statement on the server of url as url's user, connected to dbname
    (by default the server's ``postgres`` database, so statements like CREATE/DROP
    DATABASE work); returns the first column of the result rows as text.  Uses psql
    when there is one, else asyncpg (in a thread of its own, so this also works while an
    event loop runs).  Raises PostgresError."""
    parts = _url_parts(url)
    user = urllib.parse.unquote(parts.username or SUPERUSER)
    password = urllib.parse.unquote(parts.password) if parts.password else None
    port = parts.port or 5432
    psql = _client_tool("psql")
    if psql:
        env = _clean_env(PGCONNECT_TIMEOUT="10")
        if password:
            env["PGPASSWORD"] = password
        cmd = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", parts.hostname,
               "-p", str(port), "-U", user, "-d", dbname, "-c", sql]
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PostgresError(f"psql on {parts.hostname}:{port}: {e}") from None
        if p.returncode != 0:
            raise PostgresError(f"psql on {parts.hostname}:{port}/{dbname} failed "
                                f"({p.returncode}) for {sql!r}: {p.stderr.strip()}")
        return [line.split("|", 1)[0] for line in p.stdout.splitlines()]
    return _admin_sql_asyncpg(parts.hostname, port, user, password, dbname, sql)


def _admin_sql_asyncpg(host, port, user, password, dbname, sql) -> list[str]:
    try:
        import asyncpg
    except ImportError:
        raise PostgresError("neither psql nor the asyncpg module is available") from None

    async def query():
        conn = await asyncpg.connect(host=host, port=port, user=user, password=password,
                                     database=dbname, timeout=10)
        try:
            return [str(r[0]) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    result: list = []

    def in_thread():
        try:
            result.append(asyncio.run(query()))
        except Exception as e:  # noqa: BLE001 - raised in the caller's thread as PostgresError
            result.append(e)
    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    if isinstance(result[0], Exception):
        raise PostgresError(f"asyncpg on {host}:{port}/{dbname} failed for {sql!r}: "
                            f"{result[0]}") from None
    return result[0]


def create_database(url: str, name: str) -> str:
    """Create database name on url's server (owned by url's user); returns its URL."""
    admin_sql(url, f"CREATE DATABASE {_ident(name)}")
    return database_url(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop database name on url's server if it exists, ending its open sessions."""
    admin_sql(url, f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")


def check_url(url: str) -> str:
    """The server version string of url's server; raises PostgresError if none answers."""
    return admin_sql(url, "SELECT version()")[0]


# --------------------------------------------------------------------------- server

class PostgresNode:
    """One PostgreSQL server whose files all live under base_dir.

    A port left as None is taken from base_dir/node.json when a server ran there
    before, else picked free; it stays fixed for the object's life, so a stop() and
    start() brings the server back on the same URL with the same data."""

    def __init__(self, base_dir: str | os.PathLike, port: int | None = None):
        self.base_dir = Path(base_dir).absolute()
        saved = self._saved_state()
        self._auto_port = port is None and not saved
        self.port = port or saved.get("port") or free_port()
        self.pid: int | None = None
        self.bin_dir: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen | None = None
        self._log_offset = 0

    # paths and URLs ------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the database ``unioncat``."""
        return self.url_for(DEFAULT_DB)

    def url_for(self, dbname: str) -> str:
        return database_url(f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/", dbname)

    @property
    def dsn(self) -> str:
        """libpq/asyncpg URL of the database ``unioncat`` (no SQLAlchemy driver part)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DEFAULT_DB}"

    def __repr__(self) -> str:
        return f"PostgresNode({str(self.base_dir)!r}, url={self.url!r}, pid={self.pid})"

    def _saved_state(self) -> dict:
        return server_process.read_json(self.base_dir / "node.json")

    # state ---------------------------------------------------------------------
    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split("\n", 1)[0].strip())
        except (OSError, ValueError):
            return None

    def _current_pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid              # ours, also before it chdirs to data/
        for pid in (self.pid, self._read_pid()):
            if pid is not None and _is_postmaster_of(pid, self.data_dir):
                return pid
        return None

    def is_running(self) -> bool:
        """Whether this server's postmaster is alive (says nothing about connections)."""
        return self._current_pid() is not None

    def log_tail(self, n: int = 40) -> str:
        return _tail(self.log_file, n)

    # databases -----------------------------------------------------------------
    def sql(self, sql: str, dbname: str = ADMIN_DB) -> list[str]:
        return admin_sql(self.url, sql, dbname)

    def create_database(self, name: str) -> str:
        """Create database name; returns its SQLAlchemy URL."""
        return create_database(self.url, name)

    def drop_database(self, name: str) -> None:
        drop_database(self.url, name)

    # setup ---------------------------------------------------------------------
    def _socket_dir(self) -> str:
        """The base directory, or '' (no Unix socket, TCP only) when the socket's path
        would be too long for the kernel."""
        if len(f"{self.base_dir}/.s.PGSQL.{self.port}.lock".encode()) > _SOCKET_PATH_MAX:
            return ""
        return str(self.base_dir)

    def _settings(self) -> str:
        return f"""\
# Written by tools/postgres_node.py on every start; edits are lost.
port = {self.port}
# Loopback only: nothing outside this machine can connect (pg_hba trusts everyone).
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self._socket_dir()}'
max_connections = {MAX_CONNECTIONS}
# Test data only: speed over crash safety.
fsync = off
synchronous_commit = off
full_page_writes = off
"""

    def _prepare(self) -> pwd.struct_passwd | None:
        self.bin_dir = ensure_bin_dir(install=False)
        user = _run_user()
        server_process.make_base_dir(self.base_dir, user, self.bin_dir / "postgres",
                                     refusing=_REFUSING, error=PostgresError)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)
        conf = self.data_dir / "postgresql.conf"
        include = "include_if_exists = 'unioncat.conf'"
        if include not in conf.read_text():
            with open(conf, "a") as f:
                f.write(f"\n# tools/postgres_node.py\n{include}\n")
        (self.data_dir / "unioncat.conf").write_text(self._settings())
        (self.base_dir / "node.json").write_text(json.dumps({"port": self.port}) + "\n")
        if user is not None:
            for p in (self.data_dir / "unioncat.conf", self.base_dir / "node.json", self.log_file):
                with contextlib.suppress(FileNotFoundError):
                    os.chown(p, user.pw_uid, user.pw_gid)
        return user

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)    # a half-made leftover
        cmd = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust",
               "-U", SUPERUSER, "--encoding=UTF8", "--locale=C", "--no-sync"]
        with server_process.log_for(self.log_file, cmd) as out:
            p = subprocess.run(cmd, cwd=self.base_dir, env=_clean_env(), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, **_as_user(user))
        if p.returncode != 0:
            raise PostgresError(f"initdb in {self.data_dir} exited with {p.returncode}\n"
                                f"--- last 40 lines of {self.log_file}:\n{self.log_tail(40)}")

    # lifecycle -----------------------------------------------------------------
    def start(self, timeout: float = 60) -> "PostgresNode":
        """initdb when needed, start the server, wait until it accepts connections,
        create the database ``unioncat`` if missing.  Raises PostgresError (with the
        log's last 40 lines) if it dies or times out."""
        if self.is_running():
            raise PostgresError(f"a server is already running in {self.base_dir} "
                                f"(pid {self._current_pid()})")
        try:
            self._start(timeout)
        except PostgresError:
            if not (self._auto_port and "Address already in use" in self._new_log()):
                raise
            # The port picked in __init__ was taken in the meantime: pick a new one once.
            _say(f"port {self.port} was taken; retrying with a new port")
            self.port = free_port()
            self._start(timeout)
        self._auto_port = False
        return self

    def _start(self, timeout: float) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout
        user = self._prepare()
        self._log_offset = server_process.file_size(self.log_file)
        cmd = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        with server_process.log_for(self.log_file, cmd) as out:
            self._proc = subprocess.Popen(cmd, cwd=self.base_dir, env=_clean_env(),
                                          stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          **_as_user(user))
        self.pid = self._proc.pid             # postgres is the postmaster itself
        try:
            self._wait_ready(deadline, timeout)
            if not self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{DEFAULT_DB}'"):
                self.create_database(DEFAULT_DB)
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop(timeout=10)
            raise
        self.startup_seconds = time.monotonic() - t0

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        """Wait until the postmaster accepts TCP connections on 127.0.0.1:port and
        pg_isready (when there is one) reports it ready for connections."""
        isready = _client_tool("pg_isready")
        last = "no answer yet"
        while True:
            if self._proc.poll() is not None:
                raise self._failure(f"postgres exited with {self._proc.returncode} during startup")
            if time.monotonic() > deadline:
                raise self._failure(f"not ready within {timeout:.0f} s; last check: {last}")
            if not _accepts_tcp(self.port):
                last = f"127.0.0.1:{self.port} refuses TCP connections"
            elif isready is None:
                return
            else:
                p = subprocess.run([isready, "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", SUPERUSER, "-d", ADMIN_DB, "-t", "5"],
                                   env=_clean_env(), capture_output=True)
                if p.returncode == 0:
                    return
                last = f"pg_isready exited with {p.returncode}"
            time.sleep(0.1)

    def _new_log(self) -> str:
        """What was logged since the last start() began."""
        return server_process.read_from(self.log_file, self._log_offset)

    def _failure(self, what: str) -> PostgresError:
        return PostgresError(
            f"PostgreSQL in {self.base_dir} (port {self.port}): {what}\n"
            f"--- last 40 lines of {self.log_file}:\n{_tail(self.log_file, 40, self._log_offset)}")

    def stop(self, timeout: float = 30) -> bool:
        """Stop the server by its PID: SIGINT (fast shutdown), wait up to timeout, then
        SIGKILL to its process group.  Returns False if it was not running."""
        pid = self._current_pid()
        proc, self._proc, self.pid = self._proc, None, None
        if pid is None:
            if proc is not None:
                proc.poll()                    # reap a postmaster that died by itself
            return False
        # Its own session (start_new_session), so its group is just the server's processes.
        if server_process.stop_pid(pid, signal.SIGINT, timeout, alive=_pid_alive, say=_say,
                                   survived=lambda m: PostgresError(f"PostgreSQL {m}"),
                                   proc=proc, kill_group=True):
            self.pid_file.unlink(missing_ok=True)
        return True

    def __enter__(self) -> "PostgresNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI

def _run(args) -> int:
    return server_process.run_command(
        args.cmd, args.dir, lambda base: PostgresNode(base, port=args.port),
        tmp_prefix="unioncat-pg-", url_env=URL_ENV, noun="server", timeout=args.timeout,
        say=_say)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="print the server binaries' directory (apt-get install "
                                   f"{DEBIAN_PACKAGE} first if there are none)")
    p = sub.add_parser("start", help="start a server in DIR, print its URL, leave it running")
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, help="TCP port (default: a free one)")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("stop", help="stop the server running in DIR (by its postmaster.pid)")
    p.add_argument("--dir", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("run", help=f"run CMD with a server ({URL_ENV}), stop it afterwards")
    p.add_argument("--dir", help="server directory (default: a temporary one, deleted afterwards)")
    p.add_argument("--port", type=int)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    try:
        if args.command == "install":
            print(ensure_bin_dir(install=True))
        elif args.command == "start":
            server_process.start_command(PostgresNode(args.dir, port=args.port), args.timeout,
                                         _say)
        elif args.command == "stop":
            server_process.stop_command(PostgresNode(args.dir), args.timeout, "server", args.dir)
        elif args.command == "run":
            return _run(args)
    except PostgresError as e:
        print(f"postgres_node: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
