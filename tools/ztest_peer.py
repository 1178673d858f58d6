#!/usr/bin/env python3
"""yaz-ztest (YAZ's canned-result Z39.50/SRU test server, Debian ``yaz``) as a test peer.

    python tools/ztest_peer.py start --dir D [--port P]   # prints the address, leaves it running
    python tools/ztest_peer.py stop --dir D
    python tools/ztest_peer.py serve [--dir D] [--port P]  # foreground until Ctrl-C

Everything binds to 127.0.0.1.  The server runs with ``D`` as its working
directory, which holds:

* ``dummy-words`` -- the word list yaz-ztest's scan handler reads from its cwd
  (lines ``WORD:hits``, upper case, sorted).  It is not shipped by Debian and a
  scan without it makes the session process exit (the client just sees the
  connection close), so it is always written here first.
* ``yaz-ztest.log`` (``-l``), ``yaz-ztest.pid`` (``-p``) and ``port``.

yaz-ztest forks one process per connection.  ``stop`` sends SIGTERM to the
listener's PID and to its session children (found by their parent PID in
/proc), SIGKILL after a timeout -- never by process name.

Things yaz-ztest does that tests rely on (man yaz-ztest, TESTING):

* hit count: random 0..23, unless the query term starts with digits: then that
  number is the hit count;
* 24 built-in MARC records, repeated for positions beyond 24; USMARC, XML
  (MARCXML), SUTRS, OPAC (USMARC plus holdings) and GRS-1;
* databases ``Default``, ``slow`` and ``db*``; options can ride in the database
  name like URL arguments: ``Default?search-delay=2.5&present-delay=0.1:0.5``
  (``search-delay``, ``present-delay``, ``fetch-delay``: seconds, or ``lo:hi``
  for a random sleep; ``seed`` for srand).
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# process helpers (free ports, stop a process tree by PID) shared with the benchmarks
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from procmon import free_port, stop_tree

DUMMY_WORDS = [
    ("ART", 12), ("BIRDS", 3), ("COMPUTER", 41), ("COMPUTERS", 7), ("DATA", 19), ("INDEX", 5),
    ("INDEXING", 8), ("LIBRARY", 24), ("MUSIC", 2), ("SCIENCE", 17), ("SEARCH", 9), ("ZEBRA", 1),
]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class ZtestPeer:
    """One yaz-ztest listening on ``tcp:127.0.0.1:port`` with ``root`` as its cwd."""

    def __init__(self, root: Path | str | None = None, port: int | None = None, *, threaded: bool = False):
        self.root = Path(root or tempfile.mkdtemp(prefix="ztest-peer-")).resolve()
        self.port = port or free_port()
        self.threaded = threaded
        self.proc: subprocess.Popen | None = None
        self.pidfile = self.root / "yaz-ztest.pid"
        self.logfile = self.root / "yaz-ztest.log"

    @property
    def address(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def write_words(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "dummy-words").write_text("".join(f"{w}:{n}\n" for w, n in sorted(DUMMY_WORDS)))

    def start(self, *, wait: float = 10.0) -> int:
        """Start yaz-ztest in the foreground as our child (its PID is known and it
        is reaped) and wait until the port accepts connections."""
        if self.proc is not None:
            raise RuntimeError("already started")
        exe = shutil.which("yaz-ztest")
        if exe is None:
            raise RuntimeError("yaz-ztest not installed (apt-get install yaz)")
        self.write_words()
        self.pidfile.unlink(missing_ok=True)
        (self.root / "port").write_text(f"{self.port}\n")
        # GFS options must precede the listener
        args = [exe, "-p", str(self.pidfile), "-l", str(self.logfile)]
        if self.threaded:
            args.append("-T")
        args.append(self.address)
        self.proc = subprocess.Popen(args, cwd=self.root, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.logfile.read_text(errors="replace")[-1500:] if self.logfile.exists() else ""
                self.proc = None
                raise RuntimeError(f"yaz-ztest exited during start-up\n{tail}")
            if _port_open(self.port):
                return self.proc.pid
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"yaz-ztest did not listen on {self.address} within {wait:.0f} s")

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the listener and its session processes (by PID), SIGKILL what is left."""
        if self.proc is None:
            return
        stop_tree(self.proc.pid, timeout)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def __enter__(self) -> "ZtestPeer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("start", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=None)
        p.add_argument("--port", type=int, default=None)
    p = sub.add_parser("stop")
    p.add_argument("--dir", type=Path, required=True)
    a = ap.parse_args(argv)

    if a.cmd == "stop":
        pidfile = a.dir / "yaz-ztest.pid"
        if not pidfile.exists():
            print(f"no {pidfile}", file=sys.stderr)
            return 1
        stop_tree(int(pidfile.read_text().split()[0]))
        pidfile.unlink(missing_ok=True)
        return 0

    peer = ZtestPeer(a.dir, a.port)
    if a.cmd == "start":
        # detached: the process outlives us; `stop --dir` finds it by its PID file
        peer.write_words()
        peer.pidfile.unlink(missing_ok=True)
        (peer.root / "port").write_text(f"{peer.port}\n")
        subprocess.run(["yaz-ztest", "-D", "-p", str(peer.pidfile), "-l", str(peer.logfile), peer.address],
                       cwd=peer.root, check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _port_open(peer.port):
            time.sleep(0.05)
        print(f"{peer.address} (dir {peer.root})")
        return 0
    peer.start()
    print(f"yaz-ztest pid {peer.pid}: {peer.address} (dir {peer.root})", flush=True)
    try:
        while peer.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        peer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
