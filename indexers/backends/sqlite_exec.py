"""Where the embedded catalog's long work runs: threads of lower OS priority.

Work that overran the inline budget (sqlite_inline.py, INLINE_BUDGET: searches, pages,
fetches, scans, facets, counts) and work remembered as slow leave the event loop for a
thread.  With several Z39.50/SRU worker processes on
few cores, a cheap search that is answered inline on some process's event loop would
otherwise wait for a core behind those long ones, whichever process they belong to: the
kernel shares the cores evenly between runnable threads.  So the long work runs on a
dedicated pool whose threads lower their own scheduling priority (Linux: a nice value
per thread) when they start; the CFS scheduler then gives the cores to the event-loop
threads of every process first, and to the long work whatever is left.  The event-loop
thread itself is never niced (an unprivileged thread cannot raise its priority back).

Each thread only lowers its priority relative to the process: ``nice`` steps below
the thread that started it, at most to 19.  ``nice = 0`` turns this off: the work
goes to the event loop's default executor (``asyncio.to_thread``) at normal priority,
as before.

Priority inversion through the GIL: a low-priority thread holding the GIL while its
process's event loop waits for it would slow the short requests of that process.  The
long work here is nearly all inside SQLite, which releases the GIL while it runs, so
the Python part a niced thread holds the GIL for is small.

Configuration: ``[slow_work]`` of ``scheduling.toml``, found by :func:`config.locate`
(``$UNIONCAT_CONFIG_DIR`` first, then the shipped ``config/``).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import sys
import threading
import tomllib
import weakref
from dataclasses import dataclass
from pathlib import Path

import config

CONFIG_FILE = "scheduling.toml"
MAX_NICE = 19                   # the lowest priority Linux has
MAX_THREADS = 64


@dataclass(frozen=True)
class SlowWork:
    """How long catalog work is run: ``nice`` steps of OS priority below the process
    (0 = off: the event loop's default executor), on at most ``threads`` threads per
    process."""
    nice: int = 19
    threads: int = 4


def load_slow_work(path: str | os.PathLike | None = None) -> SlowWork:
    """``[slow_work]`` of ``path`` (default: ``scheduling.toml`` found by config.locate;
    built-in defaults when there is none).  A bad value is a ValueError naming it."""
    try:
        p = Path(path) if path is not None else config.locate(CONFIG_FILE)
    except FileNotFoundError:
        return SlowWork()
    with open(p, "rb") as fh:
        section = tomllib.load(fh).get("slow_work", {})
    if not isinstance(section, dict):
        raise ValueError(f"{p}: [slow_work] must be a table")
    unknown = set(section) - {"nice", "threads"}
    if unknown:
        raise ValueError(f"{p}: unknown key(s) in [slow_work]: {', '.join(sorted(unknown))}")
    default = SlowWork()
    nice = section.get("nice", default.nice)
    threads = section.get("threads", default.threads)
    if type(nice) is not int or not 0 <= nice <= MAX_NICE:
        raise ValueError(f"{p}: [slow_work] nice must be an integer from 0 to {MAX_NICE}, not {nice!r}")
    if type(threads) is not int or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"{p}: [slow_work] threads must be an integer from 1 to {MAX_THREADS}, not {threads!r}")
    return SlowWork(nice, threads)


def _lower_priority(steps: int) -> None:
    """Executor initializer: this thread ``steps`` below its current priority (Linux
    only: there ``setpriority`` on a thread id changes that one thread; elsewhere the
    id would name a process, and nothing is done)."""
    if not sys.platform.startswith("linux") or steps <= 0:
        return
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, now + steps))
    except OSError:         # not permitted here (a sandbox): the work still runs, at normal priority
        pass


class SlowPool:
    """The process's pool for long catalog work (one per setting, made when first used)."""

    def __init__(self, settings: SlowWork):
        self.settings = settings
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        _all_pools.add(self)

    def _forget_threads(self) -> None:
        """In a forked child: the parent's threads are not here, and its lock may have been
        held by one of them at the fork.  A new lock, and an executor made at the next use."""
        self._lock, self._executor = threading.Lock(), None

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.settings.threads, thread_name_prefix=f"unioncat-slow-nice{self.settings.nice}",
                    initializer=_lower_priority, initargs=(self.settings.nice,))
            return self._executor

    async def run(self, fn, /, *args):
        """``fn(*args)`` off the event loop: on this pool's threads, or with nice 0 on
        the loop's default executor (``asyncio.to_thread``)."""
        if self.settings.nice <= 0:
            return await asyncio.to_thread(fn, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor(), functools.partial(fn, *args))

    def shutdown(self) -> None:
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=False)


_pools: dict[SlowWork, SlowPool] = {}
_pools_lock = threading.Lock()
_all_pools: weakref.WeakSet[SlowPool] = weakref.WeakSet()   # every pool of the process, shared or not


def _forget_pools_in_child() -> None:
    """A forked child has none of its parent's threads: every pool (also one a catalog
    already holds) forgets its executor and makes one of its own at its next use.  This
    hook is the one place a fork is handled (no process-id check on every use)."""
    global _pools_lock
    _pools_lock = threading.Lock()
    for pool in list(_all_pools):
        pool._forget_threads()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def pool_for(settings: SlowWork) -> SlowPool:
    """The process's pool for ``settings`` (catalogs with the same settings share one)."""
    with _pools_lock:
        pool = _pools.get(settings)
        if pool is None:
            pool = _pools[settings] = SlowPool(settings)
        return pool
