"""indexers/ordered_pool.py: results in order, errors and dead workers reported, and
-- the reason it exists -- a Ctrl-C at any point ends the parent and every worker
(multiprocessing.Pool's teardown could hang for good).  The interruptions run in a
child Python process so that a hang fails the test (timeout) instead of the suite."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from indexers.ordered_pool import OrderedPool, WorkerDied

ROOT = Path(__file__).resolve().parent.parent
CTX = mp.get_context("fork")


def square(x: int) -> int:
    return x * x


def big(n: int) -> bytes:
    return bytes([n % 256]) * (1 << 20)   # 1 MiB: no result fits in a pipe


def fail_on_3(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def die_on_2(x: int) -> int:
    if x == 2:
        os._exit(7)
    return x


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("depth", [1, 3])
def test_results_come_in_input_order(workers, depth):
    with OrderedPool(CTX, workers, square, depth=depth) as pool:
        assert list(pool.map(range(50))) == [x * x for x in range(50)]
    with OrderedPool(CTX, workers, square, depth=depth) as pool:
        assert list(pool.map(range(2))) == [0, 1]        # fewer items than the window
    with OrderedPool(CTX, workers, square, depth=depth) as pool:
        assert list(pool.map([])) == []


def test_tasks_and_results_larger_than_a_pipe_do_not_deadlock():
    with OrderedPool(CTX, 2, big, depth=4) as pool:
        out = list(pool.map(range(12)))
    assert [len(b) for b in out] == [1 << 20] * 12 and [b[0] for b in out] == list(range(12))
    with OrderedPool(CTX, 2, bytes, depth=4) as pool:   # 1 MiB in, 1 MiB out, 8 in flight
        assert [len(b) for b in pool.map([1 << 20] * 6)] == [1 << 20] * 6
    with OrderedPool(CTX, 1, len, depth=4) as pool:
        assert list(pool.map(bytes(1 << 20) for _ in range(6))) == [1 << 20] * 6


def test_an_error_in_a_worker_is_raised_in_the_parent_and_the_workers_end():
    pool = OrderedPool(CTX, 2, fail_on_3)
    procs = list(pool._procs)
    got = []
    with pytest.raises(ValueError, match="three"):
        with pool:
            for x in pool.map(range(10)):
                got.append(x)
    assert got == [0, 1, 2]
    assert all(p.exitcode is not None for p in procs)


def test_a_worker_that_dies_is_an_error_not_a_hang():
    pool = OrderedPool(CTX, 2, die_on_2)
    with pytest.raises(WorkerDied, match="exit code 7"):
        with pool:
            list(pool.map(range(10)))


def test_closing_the_consumer_early_ends_the_workers():
    pool = OrderedPool(CTX, 2, square)
    procs = list(pool._procs)

    def consume():
        with pool:
            yield from pool.map(range(1000))

    gen = consume()
    assert next(gen) == 0
    gen.close()
    assert all(p.exitcode is not None for p in procs)


SCRIPT = textwrap.dedent("""
    import json, multiprocessing as mp, os, signal, sys, time
    from indexers.ordered_pool import OrderedPool

    where, k = sys.argv[1], int(sys.argv[2])

    def fn(x):
        if where == "in-worker" and x == k:
            os.kill(os.getppid(), signal.SIGINT)   # the parent is reading (or about to)
            time.sleep(600)                         # and this worker never answers
        if where == "group" and x == k:
            os.killpg(0, signal.SIGINT)             # a terminal's Ctrl-C: every process
        return bytes(300_000)                       # no result fits in a pipe

    pool = OrderedPool(mp.get_context("fork"), 2, fn)
    print(json.dumps([p.pid for p in pool._procs]), flush=True)
    try:
        with pool:
            for i, _ in enumerate(pool.map(range(40))):
                if where == "consumer" and i == k:
                    signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    print("finished", flush=True)
""")


@pytest.mark.parametrize("where,k", [("consumer", 0), ("consumer", 1), ("consumer", 20), ("consumer", 39),
                                     ("in-worker", 0), ("in-worker", 1), ("in-worker", 17),
                                     ("group", 0), ("group", 9)])
def test_ctrl_c_anywhere_ends_the_parent_and_every_worker(tmp_path, where, k):
    script = tmp_path / "interrupt.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), where, str(k)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the interrupted pool hung: {out} {err}")
    lines = out.splitlines()
    workers = json.loads(lines[0])
    assert lines[-1] == "interrupted" and proc.returncode == 130, out + err
    assert "Traceback" not in err, err      # workers ignore SIGINT: no stack trace from them
    deadline = time.monotonic() + 30        # (the parent joined them; this only waits for /proc)
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in workers), "a worker outlived its interrupted parent"
