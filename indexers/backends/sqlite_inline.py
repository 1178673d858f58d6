"""When the embedded catalog's work runs inline on the event loop, and when on a thread.

A search, a page, a fetch, a scan, facets: each first runs on the caller's (event loop)
thread within a budget of SQLite time, and is interrupted and run again on one of the
slow-work threads (sqlite_exec.py) when it needs more.  Work that overran its budget
because of its own cost (not a busy machine) is remembered by a key -- the query of a
search, the kind and shape of other work (a scan of one index, facets over a set of a
given size) -- and goes to a thread at once the next times.

InlineWork is the mixin that carries this; SqliteCatalog (sqlite_index.py) provides
``_conn()`` (the thread's SQLite connection), ``clock``/``wall_clock``, ``inline_budget``,
the memories ``_slow`` and ``_overran``, and ``slow_pool``.
"""
from __future__ import annotations

import functools
import sqlite3
from typing import Callable, Hashable

from .sqlite_exec import SlowPool

# Searches and record fetches first run on the caller's (event loop) thread with this
# much SQLite time; one that needs more is interrupted and run again on a worker thread.
# Most requests finish inline, saving the hand-over to a thread and back (a few tenths of
# a millisecond, more than the work itself for a small search); a large one never holds
# the event loop for long.  The time is the thread's CPU time (time.thread_time): on a
# busy machine wall time also counts the time the process waits for a CPU, and small
# searches were interrupted and run twice.  Wall time still bounds it, at INLINE_WALL
# budgets (a search waiting on the disk uses no CPU).  A search that overran the budget goes to a
# thread at once the next times it is asked (SLOW_QUERIES remembered, the oldest forgotten
# first): its inline attempt would be lost work, and the event loop's other sessions wait.
# The threads are those of sqlite_exec.py, at a lower OS priority ([slow_work] of
# config/scheduling.toml), so that short searches of every process get the cores first.
INLINE_BUDGET = 0.002
INLINE_WALL = 5
SLOW_QUERIES = 4096


def _remember(queries: dict, key) -> None:
    """``key`` added to a bounded memory of queries (SLOW_QUERIES, the oldest forgotten first;
    worker threads share it: never fail on a key gone already)."""
    queries[key] = None
    oldest = next(iter(queries), None)
    if len(queries) > SLOW_QUERIES and oldest is not None:
        queries.pop(oldest, None)


def _slow_key(query: Hashable) -> Hashable | None:
    """The work as InlineWork remembers a slow one: a query, or a tuple naming the kind
    and shape of other work (None: unhashable, not remembered)."""
    try:
        return query if hash(query) is not None else None
    except TypeError:           # a query model carrying something unhashable: no memory of it
        return None


class InlineWork:
    """``_run``: inline within the budget, else on the slow-work threads (see the module)."""

    inline_budget: float
    clock: Callable[[], float]          # the budget's CPU clock (the thread's; injected by tests)
    wall_clock: Callable[[], float]     # ... and the wall time that bounds it (INLINE_WALL budgets)
    slow_pool: SlowPool
    _slow: dict[Hashable, None]         # work that overran (oldest first)
    _overran: dict[Hashable, None]      # ... once, but not on the thread (cold pages): a second chance

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    async def _run(self, fn, *args, slow_key=None):
        """``fn(*args)`` inline within INLINE_BUDGET of SQLite time, else on a thread;
        ``slow_key``: a search's query or the kind and shape of other work, remembered when
        it overruns (straight to a thread next time)."""
        if self.inline_budget > 0 and (slow_key is None or slow_key not in self._slow):
            conn = self._conn()
            clock, wall = self.clock, self.wall_clock
            budget = self.inline_budget
            wall_limit = budget * INLINE_WALL
            cpu0, wall0 = clock(), wall()
            spent: list[bool] = []      # the CPU budget ran out (not just the wall time)

            def over() -> bool:
                # A thread's CPU time never exceeds the wall time that passed: while the wall
                # clock is within the budget, so is the CPU, and the CPU clock (a system call,
                # ~1.3 us on this project's VMs against ~0.5 us for the wall clock) is not read.
                elapsed = wall() - wall0
                if elapsed <= budget:
                    return False
                if clock() - cpu0 > budget:
                    spent.append(True)
                    return True
                return elapsed > wall_limit
            conn.set_progress_handler(over, 200)
            try:
                return fn(*args)
            except sqlite3.OperationalError as e:
                if "interrupted" not in str(e):
                    raise
            finally:
                conn.set_progress_handler(None, 200)
            if slow_key is not None and spent:          # slow by its own work, not by a busy machine
                return await self._run_and_judge(fn, args, slow_key)
        return await self.slow_pool.run(fn, *args)

    async def _run_and_judge(self, fn, args, slow_key):
        """Work that spent its inline CPU budget, run in full on a thread, and remembered
        as slow only when that full run also needs more than the budget, or when it overran
        inline before: a first search on cold pages (a new process, its first touch of the
        index) overruns once and is cheap ever after, and sending it to a thread for good
        cost it the hand-over and the lower priority at every later search."""
        clock, budget = self.clock, self.inline_budget
        used: list[float] = []

        @functools.wraps(fn)
        def timed():
            t0 = clock()                      # the thread's own CPU clock (thread_time)
            try:
                return fn(*args)
            finally:
                used.append(clock() - t0)
        try:
            return await self.slow_pool.run(timed)
        finally:
            if not used or used[0] > budget or slow_key in self._overran:
                self._overran.pop(slow_key, None)
                _remember(self._slow, slow_key)
            else:
                _remember(self._overran, slow_key)
