"""What tools/postgres_node.py and tools/elasticsearch_node.py share: a free port, the
unprivileged user a server runs as when we are root, its log file, stopping it by PID
and the ``run -- CMD`` wrapper.  Standard library only; imported as a sibling module
(tools/ is not a package)."""
from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

Say = Callable[[str], None]


# --------------------------------------------------------------------------- ports, files

# Ports handed out are taken from below the kernel's ephemeral range (32768-60999 on
# Linux), so an outgoing connection's local port can never take one between our check and
# the server's bind; each pytest-xdist worker walks its own part of the range and no
# process hands out the same port twice.  Stop 22's CI failure was
# such a race: a port from bind(("127.0.0.1", 0)) was in use by the time a peer bound it.
_LOW, _HIGH = 20000, 32760
_handed: set[int] = set()
_next: list[int] = []


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(exclude: tuple[int, ...] = ()) -> int:
    """A free TCP port on 127.0.0.1 that this process has not handed out before (and not
    one of exclude), outside the ephemeral range when the kernel leaves room below it."""
    high = min(_HIGH, _ephemeral_low() - 1)
    if high - _LOW < 1000:                 # an unusual port range: ask the kernel
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in exclude and port not in _handed:
                _handed.add(port)
                return port
    # each pytest-xdist worker walks its own eighth of the range, from a place set by its PID
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    slot = int(worker[2:]) % 8 if worker[2:].isdigit() else 0
    span = (high - _LOW) // 8
    base = _LOW + slot * span
    if not _next:
        _next.append(os.getpid() * 97 % span)
    for _ in range(span):
        port = base + _next[0]
        _next[0] = (_next[0] + 1) % span
        if port in exclude or port in _handed:
            continue
        if _bindable(port):
            _handed.add(port)
            return port
    raise OSError("no free TCP port on 127.0.0.1")


def read_json(path: Path) -> dict:
    """The JSON object in path, {} when it is missing or unreadable (e.g. node.json)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def file_size(path: Path) -> int:
    """path's size, 0 when it does not exist (a log's offset before a start)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tail(path: Path, n: int = 40, start: int = 0) -> str:
    """The last n lines of path (of its last 256 KiB, not before offset start)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(start, f.tell() - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return f"(no {path})"
    return "\n".join(lines[-n:])


def read_from(path: Path, offset: int) -> str:
    """What path holds from offset on (at most 4 MiB), '' when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(4 << 20).decode("utf-8", "replace")
    except OSError:
        return ""


@contextlib.contextmanager
def log_for(path: Path, cmd: list[str]) -> Iterator:
    """path opened for appending, with a ``--- TIME CMD`` line written first: the
    stdout/stderr of a server command."""
    with open(path, "ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        yield out


# --------------------------------------------------------------------------- the run-as user

def run_user(names: list[str], refusing: str, say: Say) -> pwd.struct_passwd | None:
    """The first existing account of names (the last one is created when none exists)
    when we are root; None when not root (the server then runs as the current user).
    refusing says who refuses to run as root, for the message."""
    if os.geteuid() != 0:
        return None
    for name in names:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    name = names[-1]
    say(f"creating system user {name} ({refusing})")
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                    "--shell", "/usr/sbin/nologin", name], check=True)
    return pwd.getpwnam(name)


def as_user(user: pwd.struct_passwd | None) -> dict:
    """Popen keyword arguments that run the child as user (nothing when None)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def user_can(user: pwd.struct_passwd | None, *test_args: str) -> bool:
    """Whether `test ARGS` succeeds as user (e.g. "-x", path)."""
    if user is None:
        return True
    test = shutil.which("test") or "/usr/bin/test"
    return subprocess.run([test, *test_args], **as_user(user)).returncode == 0


def make_base_dir(base_dir: Path, user: pwd.struct_passwd | None, runs: Path, *,
                  refusing: str, error: type[Exception]) -> None:
    """Create base_dir; as root also chown it to user and check that user can reach it
    and run the program runs.  Raises error when it cannot."""
    base_dir.mkdir(parents=True, exist_ok=True)
    if user is None:
        return
    os.chown(base_dir, user.pw_uid, user.pw_gid)
    if not user_can(user, "-w", str(base_dir), "-a", "-x", str(base_dir)):
        raise error(
            f"user {user.pw_name} ({refusing}) cannot reach {base_dir}: a parent directory "
            "is closed to it; use a directory under /tmp (tempfile.mkdtemp()), not "
            "pytest's tmp_path")
    if not user_can(user, "-x", str(runs)):
        raise error(f"user {user.pw_name} cannot run {runs}")


# --------------------------------------------------------------------------- stopping

def pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def wait_gone(pid: int, timeout: float, alive: Callable[[int], bool],
              proc: subprocess.Popen | None = None, interval: float = 0.05) -> bool:
    """Wait up to timeout until alive(pid) is false (reaping proc when it is pid, so no
    zombie stays); whether it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.pid == pid:
            proc.poll()
        if not alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def stop_pid(pid: int, signum: int, timeout: float, *, alive: Callable[[int], bool],
             say: Say, survived: Callable[[str], Exception],
             proc: subprocess.Popen | None = None, kill_group: bool = False,
             interval: float = 0.05) -> bool:
    """Send signum to pid and wait up to timeout, then SIGKILL it (its process group
    when kill_group and it leads one) and wait 30 s more.  Returns whether SIGKILL was
    needed; raises survived(message) if even that did not end it."""
    own_group = kill_group and pgid(pid) == pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
    if wait_gone(pid, timeout, alive, proc, interval):
        return False
    say(f"pid {pid} ignored {signal.Signals(signum).name} for {timeout:.0f} s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        if own_group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, 30, alive, proc, interval):
        raise survived(f"pid {pid} survived SIGKILL")
    return True


# --------------------------------------------------------------------------- CLI

def run_command(cmd: list[str], base_dir: str | None, make_node: Callable, *,
                tmp_prefix: str, url_env: str, noun: str, timeout: float, say: Say) -> int:
    """`run [--dir D] -- CMD`: start make_node(base) (base: D, else a fresh temporary
    directory deleted afterwards), run CMD with url_env=<its url>, always stop it
    afterwards (also on Ctrl-C, SIGTERM, SIGHUP or failure) and return CMD's exit code
    (130 when interrupted before CMD ran)."""
    cmd = cmd[1:] if cmd[:1] == ["--"] else cmd
    if not cmd:
        raise SystemExit("run: give the command after --, e.g. run -- pytest -q")
    own_dir = base_dir is None
    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix=tmp_prefix))
    node = make_node(base)
    child: subprocess.Popen | None = None

    def forward(signum, _frame):
        # SIGTERM/SIGHUP (e.g. a CI timeout): pass it on and stop the server once CMD ends.
        if child is not None and child.poll() is None:
            child.send_signal(signum)
        elif child is None:
            raise KeyboardInterrupt
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        node.start(timeout=timeout)
        say(f"{noun} {node.url} up after {node.startup_seconds:.1f} s (pid {node.pid}, "
            f"{node.base_dir})")
        child = subprocess.Popen(cmd, env=dict(os.environ, **{url_env: node.url}))
        interrupts = 0
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:
                # Ctrl-C reaches CMD too (same process group); let it finish its cleanup,
                # a second Ctrl-C terminates it.
                interrupts += 1
                if interrupts > 1:
                    child.terminate()
        return 128 - rc if rc < 0 else rc
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        try:
            if node.stop():
                say(f"{noun} {node.url} stopped")
        finally:
            if own_dir:
                shutil.rmtree(base, ignore_errors=True)


def start_command(node, timeout: float, say: Say) -> None:
    """`start --dir D`: start node, report its startup, print its URL."""
    node.start(timeout=timeout)
    say(f"up after {node.startup_seconds:.1f} s, pid {node.pid}")
    print(node.url)


def stop_command(node, timeout: float, noun: str, base_dir: str) -> None:
    """`stop --dir D`: stop node, print whether one was running."""
    print("stopped" if node.stop(timeout=timeout) else f"no {noun} running in {base_dir}")
