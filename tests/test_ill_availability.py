"""Availability where a partner tells it: a partner whose catalog (SRU, YAZ's OPAC XML)
says no copy is in now is asked last in the rota."""
from __future__ import annotations

import pytest
from lxml import etree

from circulation.ill.requester import order_by_availability
from connectors import opac_availability as oa
from connectors.iso18626 import config as C
from iso18626_helpers import STANDARDS

OPAC_XSD = STANDARDS / "marcxml" / "opacxml.xsd"


def _circulation(v: str) -> str:
    return f'<circulation><availableNow value="{v}"/><renewable value="0"/><onHold value="0"/></circulation>'


def _response(*holdings: list[str]) -> bytes:
    recs = "".join(
        "<record><recordSchema>opac</recordSchema><recordPacking>xml</recordPacking><recordData>"
        "<opacRecord><bibliographicRecord/><holdings>"
        f'<holding><circulations>{"".join(_circulation(v) for v in hs)}</circulations></holding>'
        "</holdings></opacRecord></recordData></record>" for hs in holdings)
    return (f'<searchRetrieveResponse xmlns="http://www.loc.gov/zing/srw/"><version>1.2</version>'
            f"<numberOfRecords>{len(holdings)}</numberOfRecords><records>{recs}</records>"
            f"</searchRetrieveResponse>").encode()


def test_opac_records_are_counted():
    if OPAC_XSD.exists():
        schema = etree.XMLSchema(etree.parse(str(OPAC_XSD)))
        for rec in etree.fromstring(_response(["0", "1"])).iter("{*}opacRecord"):
            rec = etree.fromstring(etree.tostring(rec).replace(b' xmlns="http://www.loc.gov/zing/srw/"', b""))
            assert schema.validate(rec), schema.error_log
    assert oa.copies(_response(["0", "1"])) == oa.Copies(2, 1)
    assert not oa.copies(_response(["0"], ["0"])).any_in
    assert oa.copies(b'<searchRetrieveResponse xmlns="http://www.loc.gov/zing/srw/"><numberOfRecords>0'
                     b"</numberOfRecords></searchRetrieveResponse>") is None
    for junk in (b"", b"<x/>", b"not xml", b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"):
        assert oa.copies(junk) is None
    assert "recordSchema=opac" in oa.query_url("http://h/sru", "9784000000017")


def _config():
    return C.load({"ill": {"agency_id": "ISIL:JP-1", "callback_url": "http://127.0.0.1:1/iso18626", "partners": {
        code: {"url": "http://127.0.0.1:1/iso18626", "accept_token": "t", "rota": i,
               **({"availability_sru": f"http://127.0.0.1:1/sru/{code}"} if code != "JP-3" else {})}
        for i, code in enumerate(["JP-2", "JP-3", "JP-4", "JP-5"], 1)}}}, env={})


@pytest.mark.parametrize("answers, order", [
    ({"JP-2": ["0"], "JP-4": ["1"], "JP-5": None}, ["JP-3", "JP-4", "JP-5", "JP-2"]),   # JP-2: none in
    ({"JP-2": ["1"], "JP-4": ["0", "0"], "JP-5": ["0"]}, ["JP-2", "JP-3", "JP-4", "JP-5"]),
    ({"JP-2": None, "JP-4": None, "JP-5": None}, ["JP-2", "JP-3", "JP-4", "JP-5"]),    # nobody answers
])
async def test_partners_without_a_copy_in_are_asked_last(answers, order):
    cfg = _config()
    asked = []

    async def probe(partner, isbn):
        asked.append((partner.code, isbn))
        got = answers[partner.code]
        if got == "boom":
            raise OSError("down")
        return oa.copies(_response(got)) if got is not None else None

    class IllLike:
        config = cfg
    ill = IllLike()
    ill.probe = probe
    got = await order_by_availability(ill, cfg.rota(), "9784000000017")
    assert [p.code for p in got] == order
    assert sorted(asked) == [(c, "9784000000017") for c in ("JP-2", "JP-4", "JP-5")]   # JP-3 has no catalog
