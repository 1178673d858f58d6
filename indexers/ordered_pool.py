"""Worker processes that map a function over a stream, results in input order, and
that can always be torn down.

The ingest prepares ISO 2709 blocks in worker processes (indexers/ingest.py).  It
used ``multiprocessing.Pool``; a Ctrl-C that reached the ingest while the pool was
being torn down could hang it for good: ``Pool.terminate()`` joins the pool's
task-handler thread, which can be stuck writing to the shared task pipe that no
worker reads any more (seen once: the thread waited in ``SimpleQueue.put`` for
ever).  This pool has no helper threads and no shared queue:

* each worker has its own pair of pipes (tasks in, results out) and ``depth``
  tasks in flight, taken off the task pipe at once by a reader thread of the
  worker, and its results sent by a writer thread: the parent never stays blocked
  writing a task while that worker blocks writing a result (a task of 512 KiB
  does not fit in a pipe; without the reader both sides could wait on each other
  for good), and the worker goes on with its next task while the parent has not
  read the last result yet;
* results are read in input order; as soon as a worker's result is read, its next
  task is sent, before the caller gets the result -- the workers prepare the next
  blocks while the caller stores this one, and the depth absorbs the caller's
  pauses (a commit);
* teardown never waits on anything that may not come: on a normal end every worker
  is sent a stop and joined; on an exception (KeyboardInterrupt, an error of the
  caller, a generator closed early) the workers are killed and then joined --
  SIGKILL cannot be ignored, and no thread of ours is left to join;
* workers ignore SIGINT: a Ctrl-C at a terminal reaches the whole process group,
  and the parent alone decides (the workers would otherwise print tracebacks);
* a worker that dies (OOM killer, kill -9) is an error naming its exit code, not a
  hang; an exception in ``fn`` is re-raised in the parent.
"""
from __future__ import annotations

import queue
import signal
import threading
from collections import deque
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterable, Iterator


class WorkerDied(RuntimeError):
    """A worker process ended without answering."""


def _serve(initializer: Callable[..., None] | None, initargs: tuple, fn: Callable[[Any], Any],
           tasks: Connection, results: Connection) -> None:
    """A worker's loop: run ``fn`` on each task until a None (or the parent's end of
    the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    todo: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:   # takes tasks off the pipe as they come (see the module's docstring)
        while True:
            try:
                task = tasks.recv()
            except (EOFError, OSError):
                task = None
            todo.put(task)
            if task is None:
                return

    done: queue.SimpleQueue = queue.SimpleQueue()

    def write() -> None:  # sends results while the next task is worked on
        while (out := done.get()) is not None:
            try:
                results.send(out)
            except (BrokenPipeError, OSError):
                return
            except Exception as e:  # noqa: BLE001 - the exception itself did not pickle
                results.send((False, RuntimeError(f"{type(e).__name__}: {e}")))

    threading.Thread(target=read, name="tasks", daemon=True).start()
    writer = threading.Thread(target=write, name="results", daemon=True)
    writer.start()
    while (task := todo.get()) is not None:
        try:
            done.put((True, fn(task)))
        except Exception as e:  # noqa: BLE001 - handed to the parent, which re-raises it
            done.put((False, e))
    done.put(None)
    writer.join()


class OrderedPool:
    """``with OrderedPool(ctx, n, fn, initializer, initargs) as pool: for r in pool.map(items): ...``"""

    def __init__(self, ctx, workers: int, fn: Callable[[Any], Any],
                 initializer: Callable[..., None] | None = None, initargs: tuple = (), depth: int = 3):
        self.depth = max(1, depth)
        self._procs = []
        self._tasks: list[Connection] = []
        self._results: list[Connection] = []
        try:
            for _ in range(max(1, workers)):
                task_r, task_w = ctx.Pipe(duplex=False)
                res_r, res_w = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_serve, args=(initializer, initargs, fn, task_r, res_w),
                                name="unioncat-prepare", daemon=True)
                p.start()
                task_r.close()   # the child's ends: closed here, so a dead child reads as EOF
                res_w.close()
                self._procs.append(p)
                self._tasks.append(task_w)
                self._results.append(res_r)
        except BaseException:
            self.kill()
            raise

    def map(self, items: Iterable[Any]) -> Iterator[Any]:
        """``fn(item)`` for each item, in order; ``depth`` tasks in flight per worker."""
        it = iter(items)
        pending: deque[int] = deque()   # worker indexes, in the order of their tasks
        for w in [w for _ in range(self.depth) for w in range(len(self._procs))]:
            item = next(it, _END)
            if item is _END:
                break
            self._send(w, item)
            pending.append(w)
        while pending:
            w = pending.popleft()
            ok, value = self._recv(w)
            item = next(it, _END)
            if item is not _END:
                self._send(w, item)
                pending.append(w)
            if not ok:
                raise value
            yield value

    def _send(self, w: int, item: Any) -> None:
        try:
            self._tasks[w].send(item)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise self._died(w) from e

    def _recv(self, w: int) -> tuple[bool, Any]:
        try:
            return self._results[w].recv()
        except (EOFError, ConnectionResetError) as e:
            raise self._died(w) from e

    def _died(self, w: int) -> WorkerDied:
        p = self._procs[w]
        p.join(timeout=5)
        return WorkerDied(f"a preparing worker process ended without answering (exit code {p.exitcode})")

    def close(self) -> None:
        """The normal end: every worker is told to stop and is joined."""
        for conn in self._tasks:
            try:
                conn.send(None)
            except OSError:
                pass
        for p in self._procs:
            p.join(timeout=30)
        self.kill()   # any that did not stop (none, normally)

    def kill(self) -> None:
        """Kill the workers that still run, join them, close every pipe; never waits on
        a worker that could not end."""
        for p in self._procs:
            if p.exitcode is None:
                p.kill()
        for p in self._procs:
            p.join()
        for conn in (*self._tasks, *self._results):
            conn.close()
        self._procs, self._tasks, self._results = [], [], []

    def __enter__(self) -> "OrderedPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()


_END = object()
