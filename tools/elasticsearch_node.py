#!/usr/bin/env python3
"""A real single-node Elasticsearch for the tests and CI, fetched, started and stopped here.

    python tools/elasticsearch_node.py fetch                  # download + extract once, find a JDK
    python tools/elasticsearch_node.py java                   # only find (or install) a JDK >= 17
    python tools/elasticsearch_node.py start --dir D [--port P]   # prints the URL, leaves it running
    python tools/elasticsearch_node.py stop --dir D
    python tools/elasticsearch_node.py run [--dir D] [--port P] -- CMD ARGS...

`run` starts a node, runs CMD with UNIONCAT_ES_URL=<url> in its environment, always
stops the node afterwards (also on Ctrl-C or failure) and exits with CMD's exit code.
Without --dir the node lives in a fresh temporary directory that is deleted afterwards.

Distribution
------------
Maven Central's ``org.elasticsearch.distribution.integ-test-zip:elasticsearch`` (pinned
version and sha512 below), the small zip Elasticsearch uses for its own integration
tests.  It is downloaded once into ``$UNIONCAT_CACHE`` or ``~/.cache/unioncat/`` (the
cache bench/loc_data.py uses), checked against the pinned sha512 and extracted once
next to the zip.  It contains only the server and the modules apm, transport-netty4,
x-pack-core and x-pack-security (no analysis-common, painless, ingest-common ...).
It has no bundled JDK: ES_JAVA_HOME (Elasticsearch ignores JAVA_HOME) is set to a JDK
>= 17 found on the machine; if there is none and we are root on Debian,
openjdk-17-jre-headless is installed with apt-get.

Nodes
-----
Each node has everything under its own base directory: ``config/`` (a copy of the
distribution's config, ES_PATH_CONF, since Elasticsearch writes its keystore there),
``data/``, ``logs/``, ``tmp/`` (ES_TMPDIR), ``pid`` and ``node.json`` (its ports, so a
later ``stop``/``start`` of the same directory finds them again).  Elasticsearch refuses
to run as root; as root the node runs as the system user ``unioncat-es`` (created if
missing; UNIONCAT_ES_USER overrides the name) and its directories are chowned to it.
When that user cannot read the cached distribution (the cache is usually under /root,
mode 0700) the node gets a hard-linked copy of it in ``base_dir/elasticsearch-VERSION``.
For the same reason the base directory must be reachable by that user: /tmp/xyz is,
pytest's /tmp/pytest-of-root/... is not.

The node is started with ``bin/elasticsearch -d -p base_dir/pid`` and stopped by that
PID (SIGTERM, then SIGKILL after the timeout), never by process name.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_process
from server_process import as_user as _as_user
from server_process import free_port
from server_process import tail as _tail
from server_process import user_can as _user_can

VERSION = "8.19.21"
DIST_NAME = f"elasticsearch-{VERSION}"
ZIP_NAME = f"{DIST_NAME}.zip"
URL = ("https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/"
       f"elasticsearch/{VERSION}/{ZIP_NAME}")
SHA512 = ("cf6b0a93860d329937ae7f913ec5073b0c726c77639764b93fc83a304aa1dd9d"
          "4defcfa2849948eea3b0b47c2065f994908603939fc2a4774c9c4d868c5ec1dd")
MIN_JAVA = 17
DEBIAN_JDK_PACKAGE = "openjdk-17-jre-headless"
DEFAULT_HEAP = "512m"
DEFAULT_RUN_USER = "unioncat-es"
CLUSTER_NAME = "unioncat-test"
_EXTRACTED_MARKER = ".unioncat-extracted"


class ElasticsearchError(RuntimeError):
    """Fetching, starting or stopping Elasticsearch failed."""


def _say(msg: str) -> None:
    print(f"elasticsearch_node: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- cache

def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The cache directory: the argument, else $UNIONCAT_CACHE, else ~/.cache/unioncat."""
    if cache is not None:
        return Path(cache)
    env = os.environ.get("UNIONCAT_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "unioncat"


def _sha512(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock file, so two processes do not download/extract at once."""
    import fcntl
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _download(target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    _say(f"downloading {URL}")
    try:
        with urllib.request.urlopen(URL, timeout=60) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
        got = _sha512(tmp)
        if got != SHA512:
            raise ElasticsearchError(
                f"checksum mismatch for {URL}:\n  expected sha512 {SHA512}\n  got      sha512 {got}\n"
                "The download is corrupt or not the pinned artifact; nothing was kept.")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _extract(zip_path: Path, dest: Path) -> None:
    """Extract the zip into dest (a fresh directory), with the zip's file modes made
    world-readable (and world-executable where the owner may execute)."""
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            target = (dest / info.filename).resolve()
            if root != target and root not in target.parents:
                raise ElasticsearchError(f"{zip_path}: unsafe member name {info.filename!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            mode |= 0o444 | (0o111 if mode & 0o100 else 0)
            os.chmod(target, mode)
    for d, _dirs, _files in os.walk(dest):
        os.chmod(d, 0o755)


def ensure_distribution(cache: str | os.PathLike | None = None) -> Path:
    """The extracted Elasticsearch home (cache/elasticsearch-VERSION), downloading the
    pinned zip and extracting it first if needed.  Raises ElasticsearchError on a
    checksum mismatch."""
    cdir = cache_dir(cache)
    cdir.mkdir(parents=True, exist_ok=True)
    home = cdir / DIST_NAME
    if (home / _EXTRACTED_MARKER).exists():
        return home
    with _locked(cdir / ".elasticsearch.lock"):
        if (home / _EXTRACTED_MARKER).exists():
            return home
        zip_path = cdir / ZIP_NAME
        if zip_path.exists() and _sha512(zip_path) != SHA512:
            _say(f"cached {zip_path} has a wrong checksum; fetching it again")
            zip_path.unlink()
        if not zip_path.exists():
            _download(zip_path)
        _say(f"extracting {zip_path}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{DIST_NAME}.", dir=cdir))
        try:
            _extract(zip_path, tmp)
            extracted = tmp / DIST_NAME
            if not (extracted / "bin" / "elasticsearch").is_file():
                raise ElasticsearchError(f"{zip_path} has no {DIST_NAME}/bin/elasticsearch")
            (extracted / _EXTRACTED_MARKER).write_text(SHA512 + "\n")
            if home.exists():          # a half-extracted leftover without the marker
                shutil.rmtree(home)
            os.replace(extracted, home)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return home


# --------------------------------------------------------------------------- Java

def java_major(java_home: str | os.PathLike) -> int | None:
    """The Java feature version of a JDK/JRE home (17 for 17.0.15, 8 for 1.8.0), or None."""
    home = Path(java_home)
    if not (home / "bin" / "java").is_file():
        return None
    version = None
    try:
        m = re.search(r'^JAVA_VERSION="([^"]+)"', (home / "release").read_text(), re.M)
        version = m.group(1) if m else None
    except OSError:
        pass
    if version is None:
        try:
            out = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True,
                                 text=True, timeout=30).stderr
        except (OSError, subprocess.SubprocessError):
            return None
        m = re.search(r'version "([^"]+)"', out)
        version = m.group(1) if m else None
    if not version:
        return None
    parts = re.findall(r"\d+", version)
    if not parts:
        return None
    major = int(parts[0])
    if major == 1 and len(parts) > 1:
        major = int(parts[1])
    return major


def _java_candidates() -> list[Path]:
    found: list[Path] = []
    for var in ("ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            found.append(Path(os.environ[var]))
    java = shutil.which("java")
    if java:
        found.append(Path(os.path.realpath(java)).parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        found.extend(sorted(p for p in jvm.iterdir() if p.is_dir()))
    unique: list[Path] = []
    seen = set()
    for p in found:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            unique.append(Path(real))
    return unique


def find_java_home(install: bool = True) -> Path:
    """A Java home for ES_JAVA_HOME.  An explicit ES_JAVA_HOME must be >= 17; otherwise
    the lowest version >= 17 found (JAVA_HOME, `java` on PATH, /usr/lib/jvm/*) is used
    (17 is the oldest Elasticsearch 8 supports and what this was verified with).  With
    install=True and none found, Debian's openjdk-17-jre-headless is installed (root only)."""
    explicit = os.environ.get("ES_JAVA_HOME")
    if explicit:
        major = java_major(explicit)
        if major is None or major < MIN_JAVA:
            raise ElasticsearchError(
                f"ES_JAVA_HOME={explicit} is not a Java >= {MIN_JAVA} (found {major}); "
                "unset it to let this tool pick one")
        return Path(explicit)
    usable = [(major, home) for home in _java_candidates()
              if (major := java_major(home)) is not None and major >= MIN_JAVA]
    if usable:
        return min(usable, key=lambda mh: mh[0])[1]
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        _say(f"no Java >= {MIN_JAVA} found; installing {DEBIAN_JDK_PACKAGE} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", DEBIAN_JDK_PACKAGE], check=True, env=env)
        return find_java_home(install=False)
    raise ElasticsearchError(
        f"no Java >= {MIN_JAVA} found (looked at ES_JAVA_HOME, JAVA_HOME, java on PATH, "
        f"/usr/lib/jvm/*); install one (Debian: apt-get install {DEBIAN_JDK_PACKAGE}) "
        "or set ES_JAVA_HOME")


# --------------------------------------------------------------------------- helpers

_REFUSING = "Elasticsearch refuses to run as root"


def _run_user() -> pwd.struct_passwd | None:
    """The account the node runs as when we are root (created if missing); None when
    not root (the node then runs as the current user)."""
    return server_process.run_user([os.environ.get("UNIONCAT_ES_USER", DEFAULT_RUN_USER)],
                                   _REFUSING, _say)


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None or not path.exists():
        return
    os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for d, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(d, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


def _link_tree(src: Path, dst: Path) -> None:
    """A copy of src at dst made of hard links (plain copies across file systems)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def link_or_copy(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, tmp, copy_function=link_or_copy, symlinks=True)
    for d, _dirs, _files in os.walk(tmp):
        os.chmod(d, 0o755)
    os.replace(tmp, dst)


def _pid_alive(pid: int) -> bool:
    """Whether pid is a live (not zombie) Elasticsearch server process."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):
            return False
        return b"org.elasticsearch" in cmdline    # not a recycled PID
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def http_json(url: str, method: str = "GET", body=None, timeout: float = 30):
    """(status, parsed JSON body) of a request; HTTP errors are returned, not raised."""
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def check_url(url: str, timeout: float = 10) -> dict:
    """The cluster health of an Elasticsearch at url; raises ElasticsearchError if it
    does not answer like one."""
    try:
        status, body = http_json(url.rstrip("/") + "/_cluster/health", timeout=timeout)
    except (OSError, urllib.error.URLError) as e:
        raise ElasticsearchError(f"no Elasticsearch answers at {url}: {e}") from None
    if status != 200 or not isinstance(body, dict) or "status" not in body:
        raise ElasticsearchError(f"{url}/_cluster/health answered HTTP {status}: {str(body)[:300]}")
    return body


# --------------------------------------------------------------------------- node

class ElasticsearchNode:
    """One single-node cluster whose files all live under base_dir.

    Ports left as None are taken from base_dir/node.json when a node ran there
    before, else picked free.  They stay fixed for the object's life, so restart()
    brings the node back on the same URL with the same data."""

    def __init__(self, base_dir: str | os.PathLike, http_port: int | None = None,
                 transport_port: int | None = None, heap: str = DEFAULT_HEAP,
                 cache: str | os.PathLike | None = None):
        self.base_dir = Path(base_dir).absolute()
        self.heap = heap
        self.cache = cache
        saved = self._saved_state()
        self._auto_ports = http_port is None and transport_port is None and not saved
        self.http_port = http_port or saved.get("http_port") or free_port()
        self.transport_port = (transport_port or saved.get("transport_port")
                               or free_port(exclude=(self.http_port,)))
        self.pid: int | None = None
        self.home: Path | None = None
        self.startup_seconds: float | None = None
        self.health_status: str | None = None    # at the end of the last start()
        self._log_offset = 0                      # log size before the last start

    # paths -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def config_dir(self) -> Path:
        return self.base_dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.base_dir / "logs"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "pid"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / f"{CLUSTER_NAME}.log"

    @property
    def launcher_log(self) -> Path:
        return self.base_dir / "launcher.log"

    def __repr__(self) -> str:
        return f"ElasticsearchNode({str(self.base_dir)!r}, url={self.url!r}, pid={self.pid})"

    def _saved_state(self) -> dict:
        return server_process.read_json(self.base_dir / "node.json")

    # state -------------------------------------------------------------------
    def _current_pid(self) -> int | None:
        if self.pid is not None and _pid_alive(self.pid):
            return self.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def is_running(self) -> bool:
        """Whether this node's server process is alive (says nothing about HTTP)."""
        return self._current_pid() is not None

    def log_tail(self, n: int = 40) -> str:
        return _tail(self.log_file, n)

    def health(self, timeout: float = 10) -> dict:
        return check_url(self.url, timeout=timeout)

    # setup -------------------------------------------------------------------
    def _prepare(self) -> tuple[Path, Path, pwd.struct_passwd | None]:
        dist = ensure_distribution(self.cache)
        java_home = find_java_home()
        user = _run_user()
        server_process.make_base_dir(self.base_dir, user, java_home / "bin" / "java",
                                     refusing=_REFUSING, error=ElasticsearchError)
        home = dist
        if not _user_can(user, "-x", str(dist / "bin" / "elasticsearch"), "-a", "-r",
                         str(dist / "lib")):
            home = self.base_dir / DIST_NAME
            if not (home / _EXTRACTED_MARKER).exists():
                _link_tree(dist, home)
        if not (self.config_dir / "jvm.options").exists():
            shutil.copytree(dist / "config", self.config_dir, dirs_exist_ok=True)
        for d in (self.data_dir, self.logs_dir, self.base_dir / "tmp"):
            d.mkdir(exist_ok=True)
        (self.config_dir / "elasticsearch.yml").write_text(self._settings())
        (self.base_dir / "node.json").write_text(json.dumps(
            {"http_port": self.http_port, "transport_port": self.transport_port,
             "version": VERSION}) + "\n")
        for p in (self.config_dir, self.data_dir, self.logs_dir, self.base_dir / "tmp"):
            _chown_tree(p, user)
        return home, java_home, user

    def _settings(self) -> str:
        return f"""\
# Written by tools/elasticsearch_node.py on every start; edits are lost.
cluster.name: {CLUSTER_NAME}
node.name: {CLUSTER_NAME}-{self.http_port}
discovery.type: single-node
# Bound to the loopback interface only: nothing outside this machine can reach the
# node, which is why security (users, TLS) is switched off for tests.
network.host: 127.0.0.1
http.port: {self.http_port}
transport.port: {self.transport_port}
xpack.security.enabled: false
path.data: {self.data_dir}
path.logs: {self.logs_dir}
# CI machines may have nearly full disks; do not stop allocating shards because of it.
cluster.routing.allocation.disk.threshold_enabled: false
"""

    # lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = 120) -> "ElasticsearchNode":
        """Start the node and wait until it is green (see _wait_ready for the one exception).
        Raises ElasticsearchError (with the log's last 40 lines) if it dies or times out."""
        if self.is_running():
            raise ElasticsearchError(f"a node is already running in {self.base_dir} "
                                     f"(pid {self._current_pid()})")
        try:
            self._start(timeout)
        except ElasticsearchError:
            if not (self._auto_ports and "Address already in use" in self._new_log()):
                raise
            # The ports picked in __init__ were taken in the meantime: pick new ones once.
            _say(f"port clash on {self.http_port}/{self.transport_port}; retrying with new ports")
            self.http_port = free_port()
            self.transport_port = free_port(exclude=(self.http_port,))
            self._start(timeout)
        self._auto_ports = False
        return self

    def _start(self, timeout: float) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout
        home, java_home, user = self._prepare()
        self.pid_file.unlink(missing_ok=True)
        self._log_offset = server_process.file_size(self.log_file)
        env = dict(os.environ)
        env.pop("JAVA_HOME", None)          # Elasticsearch uses ES_JAVA_HOME only
        env.update(ES_JAVA_HOME=str(java_home), ES_PATH_CONF=str(self.config_dir),
                   ES_JAVA_OPTS=f"-Xms{self.heap} -Xmx{self.heap}",
                   ES_TMPDIR=str(self.base_dir / "tmp"))
        if user is not None:
            env.update(HOME=str(self.base_dir), USER=user.pw_name, LOGNAME=user.pw_name)
        cmd = [str(home / "bin" / "elasticsearch"), "-d", "-p", str(self.pid_file)]
        with server_process.log_for(self.launcher_log, cmd) as out:
            launcher = subprocess.Popen(cmd, cwd=self.base_dir, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, **_as_user(user))
        try:
            # With -d the launcher returns once the server has started (or failed).
            while launcher.poll() is None:
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(launcher.pid, signal.SIGKILL)
                    launcher.wait()
                    raise self._failure(f"the launcher did not return within {timeout:.0f} s")
                time.sleep(0.2)
            if launcher.returncode != 0:
                raise self._failure(f"bin/elasticsearch -d exited with {launcher.returncode}")
            while (pid := self._read_pid()) is None:
                if time.monotonic() > deadline:
                    raise self._failure(f"no pid file {self.pid_file} within {timeout:.0f} s")
                time.sleep(0.2)
            self.pid = pid
            self._wait_ready(deadline, timeout)
        except BaseException:
            self._kill_quietly()
            # Before the pid file exists the server is only known as a member of the
            # launcher's process group (its own session, see Popen above).
            with contextlib.suppress(OSError):
                os.killpg(launcher.pid, signal.SIGKILL)
            raise
        self.startup_seconds = time.monotonic() - t0

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        """Wait until the cluster health is green, via GET /_cluster/health.

        One exception: an index with number_of_replicas > 0 can never be green on a
        single node (a replica is never put on its primary's node), so yellow with all
        primaries active and nothing initializing is accepted as ready too; that is the
        best a single node can reach (all data searchable).  A fresh node, or one whose
        indices all have 0 replicas, is green."""
        last = "no answer yet"
        while True:
            if not _pid_alive(self.pid):
                raise self._failure("the server process died during startup")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failure(f"not ready within {timeout:.0f} s; last health: {last}")
            wait = max(1, min(10, int(remaining)))
            try:
                status, body = http_json(
                    f"{self.url}/_cluster/health?wait_for_status=yellow"
                    f"&wait_for_no_initializing_shards=true&timeout={wait}s", timeout=wait + 5)
            except (OSError, urllib.error.URLError) as e:
                last = f"{type(e).__name__}: {e}"
                time.sleep(0.5)
                continue
            last = f"HTTP {status} {json.dumps(body)[:400]}"
            if status != 200 or not isinstance(body, dict):
                time.sleep(0.5)
                continue
            if body.get("status") == "green":
                self.health_status = "green"
                return
            if (body.get("status") == "yellow" and not body.get("timed_out")
                    and body.get("number_of_nodes") == 1
                    and body.get("initializing_shards") == 0
                    and body.get("unassigned_primary_shards", 0) == 0):
                self.health_status = "yellow"
                _say(f"{self.url} is yellow: {body.get('unassigned_shards')} replica shard(s) "
                     "cannot be assigned on a single node (all primaries are active)")
                return

    def _new_log(self) -> str:
        """What the server logged since the last start() began."""
        return server_process.read_from(self.log_file, self._log_offset)

    def _failure(self, what: str) -> ElasticsearchError:
        launcher = _tail(self.launcher_log, 25)
        lines = self._new_log().splitlines()
        first_error = ""
        for i, line in enumerate(lines):
            if "][ERROR][" in line or "][FATAL][" in line:
                first_error = "--- first error logged:\n" + "\n".join(lines[i:i + 3]) + "\n"
                break
        return ElasticsearchError(
            f"Elasticsearch in {self.base_dir} (port {self.http_port}): {what}\n{first_error}"
            f"--- last lines of {self.launcher_log}:\n{launcher}\n"
            f"--- last 40 lines of {self.log_file}:\n{self.log_tail(40)}")

    def _kill_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=10)

    def stop(self, timeout: float = 60) -> bool:
        """Stop the node by its PID: SIGTERM, wait up to timeout, then SIGKILL.
        Returns False if it was not running."""
        pid = self._current_pid()
        self.pid = None
        if pid is None:
            return False
        server_process.stop_pid(pid, signal.SIGTERM, timeout, alive=_pid_alive, say=_say,
                                survived=lambda m: ElasticsearchError(f"Elasticsearch {m}"),
                                interval=0.1)
        self.pid_file.unlink(missing_ok=True)    # Elasticsearch removes it unless killed
        return True

    def restart(self, timeout: float = 120) -> "ElasticsearchNode":
        """stop() and start() again: same ports, same data directory."""
        self.stop()
        return self.start(timeout=timeout)

    def __enter__(self) -> "ElasticsearchNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI

def _run(args) -> int:
    return server_process.run_command(
        args.cmd, args.dir, lambda base: ElasticsearchNode(base, http_port=args.port,
                                                           heap=args.heap),
        tmp_prefix="unioncat-es-", url_env="UNIONCAT_ES_URL", noun="node",
        timeout=args.timeout, say=_say)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    heap = os.environ.get("UNIONCAT_ES_HEAP", DEFAULT_HEAP)
    p = sub.add_parser("fetch", help="download/extract the distribution, find a JDK")
    p.add_argument("--cache-dir", help="default: $UNIONCAT_CACHE or ~/.cache/unioncat")
    sub.add_parser("java", help="print the Java home used (installing a JDK if needed)")
    p = sub.add_parser("start", help="start a node in DIR, print its URL, leave it running")
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, help="HTTP port (default: a free one)")
    p.add_argument("--transport-port", type=int)
    p.add_argument("--heap", default=heap, help=f"JVM heap (default {heap}; $UNIONCAT_ES_HEAP)")
    p.add_argument("--timeout", type=float, default=120)
    p = sub.add_parser("stop", help="stop the node running in DIR (by its pid file)")
    p.add_argument("--dir", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("run", help="run CMD with a node (UNIONCAT_ES_URL), stop it afterwards")
    p.add_argument("--dir", help="node directory (default: a temporary one, deleted afterwards)")
    p.add_argument("--port", type=int)
    p.add_argument("--heap", default=heap)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_distribution(args.cache_dir))
            print(find_java_home())
        elif args.command == "java":
            print(find_java_home())
        elif args.command == "start":
            node = ElasticsearchNode(args.dir, http_port=args.port,
                                     transport_port=args.transport_port, heap=args.heap)
            server_process.start_command(node, args.timeout, _say)
        elif args.command == "stop":
            server_process.stop_command(ElasticsearchNode(args.dir), args.timeout, "node",
                                        args.dir)
        elif args.command == "run":
            return _run(args)
    except ElasticsearchError as e:
        print(f"elasticsearch_node: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
