"""JSON in and out: plain values from the service's records; times in the service's zone.

The service keeps naive local times of its zone (:class:`circulation.store.Clock`, which
does every conversion): answers carry them with the zone's offset, and input times with
an offset are turned into the zone's local time (without one they are local already)."""
from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, Mapping

from aiohttp import web

from circulation.store import Clock
from lifecycle.model import Decision


def message(d: Decision) -> dict:
    return {"code": d.code, "message_ja": d.message_ja, "message_en": d.message_en}


def jsonable(o: Any, clock: Clock) -> Any:
    """Plain JSON values: dates ISO, times ISO with the offset of the service's zone
    (``clock``), dataclasses as objects."""
    if isinstance(o, datetime):
        return clock.aware(clock.local(o)).isoformat()
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, Decision):
        return {"allowed": o.allowed, **message(o), "details": jsonable(o.details, clock)}
    if is_dataclass(o) and not isinstance(o, type):
        return jsonable(asdict(o), clock)
    if isinstance(o, Mapping):
        return {str(k): jsonable(v, clock) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        return [jsonable(v, clock) for v in o]
    return o


def json_response(payload: Any, status: int = 200, headers: dict | None = None, *,
                  clock: Clock) -> web.Response:
    data = jsonable(payload, clock)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate echoed from the input (an unknown field's name, say): escaped
        body = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8",
                        headers=headers)


def local_times(v: Any, clock: Clock) -> Any:
    """Checked input with every time as the service keeps it: an aware time in the
    service's zone without its offset; a naive one is read as the zone's local time."""
    if isinstance(v, datetime):
        return clock.local(v)
    if isinstance(v, dict):
        return {k: local_times(x, clock) for k, x in v.items()}
    if isinstance(v, list):
        return [local_times(x, clock) for x in v]
    return v
