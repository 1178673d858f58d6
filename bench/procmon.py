"""Process helpers for the benchmark: memory of a process tree, free ports, and
stopping processes by PID.

Linux only (reads /proc).  Nothing here kills by name: every signal goes to a PID
the benchmark itself started (or a descendant of one, found through /proc).
"""
from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1/0.0.0.0:``port`` (/proc/net/tcp; SO_REUSEPORT
    gives each process its own)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 3 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def _status_kb(pid: int, key: str) -> int:
    """A ``kB`` value (VmRSS, VmHWM, ...) from /proc/<pid>/status; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        pass
    return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size (shared pages divided among sharers); 0 if unknown."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all threads' children files)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (bounded walk)."""
    seen: list[int] = []
    todo = [pid]
    while todo and len(seen) < 10_000:
        p = todo.pop()
        if p in seen or not os.path.exists(f"/proc/{p}"):
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int, with_children: bool) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return 0
    # after ")": state=0 ... utime=11 stime=12 cutime=13 cstime=14
    t = int(fields[11]) + int(fields[12])
    if with_children:
        t += int(fields[13]) + int(fields[14])
    return t


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user+system) used so far by a process tree: every live member,
    plus the reaped children accounted to the root (so a forking server's
    finished per-connection children still count)."""
    pids = tree(pid)
    ticks = sum(_cpu_ticks(p, with_children=(p == pid)) for p in pids)
    return ticks / _TICK


def hwm_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of one live process."""
    return _status_kb(pid, "VmHWM")


@dataclass
class TreeMemory:
    """Polls the memory of a process tree in a background thread.

    ``peak_rss_kb``: the largest sum of VmRSS over the tree seen at any poll;
    ``peak_pss_kb``: the same for PSS (counts shared pages once -- fairer for
    forking servers like zebrasrv whose children share the register mmaps);
    ``peak_hwm_kb``: the largest single-process VmHWM seen (exact peak of the
    biggest process, independent of the polling interval);
    ``peak_anon_kb``: the same for RssAnon (anonymous memory only: no file-backed
    pages, so an SQLite ``mmap_size`` or Zebra's register mmaps do not count);
    ``max_procs``: the most processes seen in the tree at once.
    """

    pid: int
    interval: float = 0.2
    peak_rss_kb: int = 0
    peak_pss_kb: int = 0
    peak_hwm_kb: int = 0
    peak_anon_kb: int = 0
    max_procs: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def poll(self) -> None:
        pids = tree(self.pid)
        if not pids:
            return
        rss = sum(_status_kb(p, "VmRSS") for p in pids)
        pss = sum(_pss_kb(p) for p in pids)
        hwm = max(_status_kb(p, "VmHWM") for p in pids)
        anon = sum(_status_kb(p, "RssAnon") for p in pids)
        self.peak_anon_kb = max(self.peak_anon_kb, anon)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_hwm_kb = max(self.peak_hwm_kb, hwm)
        self.max_procs = max(self.max_procs, len(pids))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def start(self) -> "TreeMemory":
        self._thread = threading.Thread(target=self._run, name=f"mem-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.as_dict()

    def as_dict(self) -> dict:
        return {
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "peak_pss_mb": round(self.peak_pss_kb / 1024, 1),
            "peak_hwm_mb": round(self.peak_hwm_kb / 1024, 1),
            "peak_anon_mb": round(self.peak_anon_kb / 1024, 1),
            "max_procs": self.max_procs,
            "samples": self.samples,
        }


def run_measured(cmd: list[str], *, log_path, cwd=None, timeout: float, env=None,
                 register=None) -> dict:
    """Run ``cmd`` to completion, measuring wall time and memory.

    Memory: ``peak_rss_mb`` is the largest VmHWM (peak resident set) of any
    process of the tree, polled every 0.1 s (VmHWM is monotonic, so polling only
    misses growth in the last interval before exit); ``tree.peak_rss_mb`` the
    largest polled sum over the tree (worker processes).  ``ru_maxrss`` from
    ``os.wait4`` is kept as ``ru_maxrss_mb`` for reference only: on Linux it
    includes the RSS the child inherited from *this* process at fork time, so a
    big parent inflates it.
    stdout+stderr go to ``log_path`` (a file, so a chatty process never blocks on
    a full pipe) and are returned as ``output``.  Raises ``TimeoutError`` after
    ``timeout`` seconds (the process tree is stopped first).  ``register`` (an
    object with ``add(pid)``/``discard(pid)``, e.g. :class:`Registry`) learns the
    PID right after start, so a caller can stop it on Ctrl-C, and forgets it once
    the process has been reaped.
    """
    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
        if register is not None:
            register.add(proc.pid)
        mon = TreeMemory(proc.pid, interval=0.1).start()
        deadline = t0 + timeout
        while True:
            wpid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if wpid == proc.pid:
                break
            if time.perf_counter() > deadline:
                mon.stop()
                stop_tree(proc.pid)
                if register is not None:
                    register.discard(proc.pid)
                raise TimeoutError(f"{cmd[0]} did not finish within {timeout:.0f} s")
            time.sleep(0.02)
        if register is not None:
            register.discard(proc.pid)
        wall = time.perf_counter() - t0
        mon.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
    # CPU of the whole tree: a reaped process's own times *and* those of the
    # children it reaped are added to its parent's RUSAGE_CHILDREN, so the delta
    # covers worker processes too (on Linux wait4's rusage does as well: the two
    # agree; both are kept).
    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "rb") as f:
        captured = f.read()
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "peak_rss_mb": round(mon.peak_hwm_kb / 1024, 1),
        "ru_maxrss_mb": round(rusage.ru_maxrss / 1024, 1),  # kB on Linux; see above
        "user_s": round(rusage.ru_utime, 2),       # the process and its reaped children
        "sys_s": round(rusage.ru_stime, 2),
        "tree_cpu_s": round((ch1.ru_utime - ch0.ru_utime) + (ch1.ru_stime - ch0.ru_stime), 2),
        "tree": mon.as_dict(),
        "output": captured.decode("utf-8", "replace"),
    }


class Registry:
    """The PIDs a run has started and not yet reaped; :meth:`stop_all` stops the
    ones still alive (on Ctrl-C or an exception).  A PID is discarded as soon as
    its process is reaped, so a recycled PID is never signalled."""

    def __init__(self):
        self.pids: list[int] = []

    def add(self, pid: int) -> None:
        self.pids.append(pid)

    def discard(self, pid: int) -> None:
        while pid in self.pids:
            self.pids.remove(pid)

    def stop_all(self) -> None:
        for pid in reversed(list(self.pids)):
            if alive(pid):
                print(f"stopping process {pid}", flush=True)
                stop_tree(pid)
            self.discard(pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still "exists"; treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_tree(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM ``pid`` and its descendants (by PID), SIGKILL what is left after
    ``timeout`` seconds.  Reaps ``pid`` if it is our child."""
    pids = tree(pid)
    if not pids:
        _reap(pid)
        return
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not any(alive(p) for p in pids):
            return
        time.sleep(0.05)
    for p in pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    end = time.monotonic() + 5
    while time.monotonic() < end and alive(pid):
        _reap(pid)
        time.sleep(0.05)
    _reap(pid)
