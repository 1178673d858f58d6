"""Long catalog work runs on threads of lower OS priority (indexers/backends/sqlite_exec.py,
``[slow_work]`` of config/scheduling.toml): the threads report the configured nice value,
the answers are those of the normal-priority path, and ``nice = 0`` turns it off.
Nothing here measures time: the priority is read back from the kernel."""
from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest

from indexers.backends import sqlite_exec
from indexers.backends.sqlite_exec import SlowWork, load_slow_work, pool_for
from indexers.backends.sqlite_index import SqliteCatalog
from sqlite_helpers import answers, demo_catalog

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")

def thread_nice() -> tuple[int, int, str]:
    """This thread's nice value as the kernel reports it, twice (getpriority and
    /proc/self/task/<tid>/stat, field 19), and the thread's name."""
    tid = threading.get_native_id()
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()     # after "pid (comm) "; field 3 is fields[0]
    return os.getpriority(os.PRIO_PROCESS, tid), int(fields[19 - 3]), threading.current_thread().name


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    return demo_catalog(tmp_path_factory.mktemp("slowwork"))


def test_the_shipped_setting_and_its_checks(tmp_path):
    shipped = load_slow_work()
    assert shipped == SlowWork(nice=19, threads=4)
    cfg = tmp_path / "scheduling.toml"
    cfg.write_text("[slow_work]\nnice = 0\nthreads = 2\n")
    assert load_slow_work(cfg) == SlowWork(0, 2)
    for bad in ("nice = -1", "nice = 20", "nice = 'low'", "threads = 0", "nice = true", "speed = 3"):
        cfg.write_text(f"[slow_work]\n{bad}\n")
        with pytest.raises(ValueError, match="slow_work"):
            load_slow_work(cfg)


def test_the_config_directory_decides(tmp_path, monkeypatch, catalog_path):
    (tmp_path / "scheduling.toml").write_text("[slow_work]\nnice = 0\n")
    monkeypatch.setenv("UNIONCAT_CONFIG_DIR", str(tmp_path))
    assert load_slow_work() == SlowWork(0, 4)
    cat = SqliteCatalog(catalog_path)
    assert cat.slow_pool.settings == SlowWork(0, 4)
    cat.close()


@linux
def test_the_threads_report_the_configured_nice_and_the_loop_keeps_its_own():
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = pool_for(SlowWork(nice=7, threads=2))

    async def main():
        loop_before = thread_nice()
        got = [await pool.run(thread_nice) for _ in range(4)]
        return loop_before, got, thread_nice()
    loop_before, got, loop_after = asyncio.run(main())
    want = min(19, base + 7)
    assert {g[:2] for g in got} == {(want, want)}
    assert all(g[2].startswith("unioncat-slow") for g in got)
    assert loop_before[:2] == loop_after[:2] == (base, base)       # the event loop's thread is never niced
    # nice 0: off, the loop's default executor at the process's own priority
    off = pool_for(SlowWork(nice=0, threads=2))
    got_off = asyncio.run(off.run(thread_nice))
    assert got_off[:2] == (base, base) and not got_off[2].startswith("unioncat-slow")
    assert off._executor is None


@linux
def test_the_answers_are_those_of_the_normal_priority_path(catalog_path, monkeypatch):
    seen: list[tuple[str, int]] = []
    real = sqlite_exec.SlowPool.run

    async def recording(self, fn, *a):
        def probe(*args):
            seen.append((fn.__name__, thread_nice()[0]))
            return fn(*args)
        return await real(self, probe, *a)
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", recording)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    results = {}
    for nice in (0, 5):
        cat = SqliteCatalog(catalog_path, slow_work=SlowWork(nice=nice, threads=2))
        cat.inline_budget = 0                           # every search and fetch off the loop
        seen.clear()
        results[nice] = asyncio.run(answers(cat))
        assert {"search_sync", "fetch_sync", "page_iso2709_sync", "count_sync", "scan_sync"} <= {n for n, _ in seen}
        assert {p for _, p in seen} == {min(19, base + nice)}
        cat.close()
    inline = SqliteCatalog(catalog_path, clock=lambda: 0.0)   # a clock that stands still: all inline
    seen.clear()
    results["inline"] = asyncio.run(answers(inline))
    inline.close()
    assert seen == []                               # scans, facets and counts too: none left the loop
    assert results[0] == results[5] == results["inline"]
    assert results[0][1][0] > 5 and results[0][-2] > 5 and results[0][-1]


@linux
def test_a_forked_child_runs_the_work_on_threads_of_its_own():
    pool = pool_for(SlowWork(nice=3, threads=1))
    asyncio.run(pool.run(thread_nice))                  # the parent's thread exists now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                        # the child: answer through the pipe, exit at once
        try:
            got = asyncio.run(asyncio.wait_for(pool.run(thread_nice), 30))     # the pool it held
            shared = pool_for(SlowWork(nice=3, threads=1))                      # ... and the registry's
            again = asyncio.run(asyncio.wait_for(shared.run(thread_nice), 30))
            os.write(write, repr((got[:2], shared is pool, again[:2])).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        answer = fh.read()
    os.waitpid(pid, 0)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    want = (min(19, base + 3),) * 2
    assert answer == repr((want, True, want))
    assert not hasattr(pool, "_pid")        # one mechanism: the at-fork hook, no process-id check per use
