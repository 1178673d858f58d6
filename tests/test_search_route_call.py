"""``SearchRoute.call`` runs a catalog call up to its first wait before it sets up the
request's timer (search/route.py): a call that answers at once needs none; one that
waits is awaited from there as before -- results, errors, cancellation and the
budget's timeout all reach it as ``await`` would pass them."""
from __future__ import annotations

import asyncio

import pytest

from search import route as route_mod
from search.databases import Databases
from search.route import SearchRoute, SearchTimeout


def make(timeout: float = 5.0) -> SearchRoute:
    return SearchRoute(object(), Databases(()), timeout=timeout)  # type: ignore[arg-type]


@pytest.fixture()
def timers(monkeypatch):
    made = []
    real = asyncio.timeout_at

    def counting(when):
        made.append(when)
        return real(when)
    monkeypatch.setattr(route_mod.asyncio, "timeout_at", counting)
    return made


def test_a_call_that_answers_without_waiting_needs_no_timer(timers):
    async def inline():
        return 42

    async def go():
        route = make()
        async with route.request():
            return await route.call(inline())
    assert asyncio.run(go()) == 42 and timers == []


def test_a_call_that_waits_is_resumed_under_the_timer_with_what_it_is_sent(timers):
    async def waits():
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, "a")
        got = await fut
        await asyncio.sleep(0)                   # a bare yield to the loop
        return got + await asyncio.to_thread(lambda: "b")

    async def go():
        route = make()
        async with route.request():
            return await route.call(waits())
    assert asyncio.run(go()) == "ab" and len(timers) == 1


def test_errors_after_a_wait_and_before_one_reach_the_caller():
    async def fails_later():
        await asyncio.sleep(0)
        raise ValueError("later")

    async def fails_at_once():
        raise KeyError("at once")

    async def go():
        route = make()
        with pytest.raises(ValueError, match="later"):
            await route.call(fails_later())
        with pytest.raises(KeyError):
            await route.call(fails_at_once())
        with pytest.raises(SearchTimeout):              # a TimeoutError of the call's own, as before
            await route.call(_raises(TimeoutError()))
    asyncio.run(go())


async def _raises(exc: BaseException):
    raise exc


def test_a_call_waiting_beyond_the_budget_is_given_up_and_cancelled():
    seen = []

    async def hangs():
        try:
            await asyncio.get_running_loop().create_future()     # never answers
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def go():
        route = make(timeout=0.01)
        async with route.request():
            with pytest.raises(SearchTimeout):
                await route.call(hangs())
    asyncio.run(go())
    assert seen == ["cancelled"]


def test_cancelling_the_request_cancels_the_call_it_waits_for():
    seen = []

    async def hangs():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def go():
        route = make()
        task = asyncio.ensure_future(route.call(hangs()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(go())
    assert seen == ["cancelled"]


def test_the_z3950_idle_watch_cancels_only_a_wait_that_ran_out():
    """gateway/z3950_server.py waits for a request without a timer per read (_IdleWatch)."""
    from gateway.z3950_server import _IdleWatch

    async def association(limit: float, others_cancel: bool = False):
        watch = _IdleWatch()
        watch.waiting(3600)                   # a long wait, then a request: the timer stays armed for it
        watch.busy()
        watch.waiting(limit)                  # a shorter one: armed for that
        if others_cancel:
            asyncio.get_running_loop().call_soon(asyncio.current_task().cancel)
        try:
            await asyncio.get_running_loop().create_future()       # the peer never sends
        except asyncio.CancelledError:
            return "idle" if watch.expired() else "cancelled"
        finally:
            watch.busy()
            watch.close()

    assert asyncio.run(association(0.01)) == "idle"
    assert asyncio.run(association(3600, others_cancel=True)) == "cancelled"
