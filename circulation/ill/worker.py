"""The ILL node's background work inside the service: after every change (the node's
``wake``) and at least every ``interval`` seconds, :func:`.sync.sync` then
:func:`.outbox.dispatch`; every ``silence_interval`` seconds the silent suppliers are
given up (:func:`.requester.give_up_silent`).  One task, started and stopped with the
application; an error in one round is logged once per kind and the next round runs."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from connectors.iso18626_client import Sender

from . import outbox, requester, sync
from .common import Ill

log = logging.getLogger("unioncat.ill")


class IllWorker:
    def __init__(self, ill: Ill, sender: Sender, *, interval: float = 30.0, silence_interval: float = 3600.0):
        self.ill, self.sender = ill, sender
        self.interval, self.silence_interval = interval, silence_interval
        self._event = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_error: str | None = None
        self.rounds = 0
        ill.wake.append(self.wake)

    def wake(self) -> None:
        self._event.set()

    async def run_once(self) -> int:
        """One round: what is owed is queued and what is due is sent. Returns messages moved."""
        moved = 0
        for _ in range(20):                   # until quiet (a reply may owe another message)
            queued = await sync.sync(self.ill)
            counts = await outbox.dispatch(self.ill, self.sender)
            step = queued + counts.sent + counts.refused
            moved += step
            if not step:
                break
        self.rounds += 1
        return moved

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_silence = loop.time() + self.silence_interval
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), self.interval)
            self._event.clear()
            try:
                await self.run_once()
                if loop.time() >= next_silence:
                    await requester.give_up_silent(self.ill)
                    next_silence = loop.time() + self.silence_interval
                self._last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - one bad round must not stop ILL; said once
                kind = f"{type(e).__name__}: {e}"[:300]
                if kind != self._last_error:
                    log.error("ILL round failed (retried every %.0f s): %s", self.interval, kind)
                    self._last_error = kind

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="ill-worker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(ValueError):
            self.ill.wake.remove(self.wake)
