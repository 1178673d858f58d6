"""The official ISO 18626 v1.2 schema (../shared/standards, beside the checkout) for
validating every message the tests see, and small builders of test messages."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from connectors.iso18626 import model as m

STANDARDS = Path(__file__).resolve().parents[2] / "shared" / "standards"
XSD = STANDARDS / "iso18626" / "ISO-18626-v1_2.xsd"
JST = timezone(timedelta(hours=9))


@cache
def _schema() -> etree.XMLSchema | None:
    if not XSD.exists():
        return None
    return etree.XMLSchema(etree.parse(str(XSD)))


def official_schema() -> etree.XMLSchema:
    schema = _schema()
    if schema is None:
        pytest.skip(f"the official ISO 18626 schema is not beside this checkout ({XSD})")
    return schema


def assert_valid(xml: bytes) -> etree._Element:
    """``xml`` is valid against the official v1.2 schema; returns its root."""
    schema = official_schema()
    root = etree.fromstring(xml)
    if not schema.validate(root):
        raise AssertionError(f"not valid ISO 18626 v1.2: {schema.error_log}\n{xml.decode()[:2000]}")
    return root


US = m.AgencyId.of("ISIL", "JP-1000000")
PARTNER = m.AgencyId.of("ISIL", "JP-1001234")


def header(request_id: str = "req-1", *, now: datetime | None = None, **kw) -> m.Header:
    return m.Header(supplying_agency_id=kw.pop("supplying", PARTNER),
                    requesting_agency_id=kw.pop("requesting", US),
                    timestamp=now or datetime(2026, 12, 6, 10, 0, tzinfo=JST),
                    requesting_agency_request_id=request_id, **kw)
