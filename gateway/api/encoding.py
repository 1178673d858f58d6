"""JSON out: plain values from the service's records, dates and times in the service's zone."""
from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from aiohttp import web

from lifecycle.model import Decision

JST = ZoneInfo("Asia/Tokyo")


def message(d: Decision) -> dict:
    return {"code": d.code, "message_ja": d.message_ja, "message_en": d.message_en}


def jsonable(o: Any) -> Any:
    """Plain JSON values: dates ISO, times ISO with the Japan offset, dataclasses as objects."""
    if isinstance(o, datetime):
        o = o.replace(tzinfo=JST) if o.tzinfo is None else o.astimezone(JST)
        return o.isoformat()
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, Decision):
        return {"allowed": o.allowed, **message(o), "details": jsonable(o.details)}
    if is_dataclass(o) and not isinstance(o, type):
        return jsonable(asdict(o))
    if isinstance(o, Mapping):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in o]
    return o


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    data = jsonable(payload)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate echoed from the input (an unknown field's name, say): escaped
        body = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8",
                        headers=headers)


def local_time(v: datetime) -> datetime:
    """An input time as the service's naive Japan local time."""
    return v.astimezone(JST).replace(tzinfo=None) if v.tzinfo is not None else v
