"""Availability everywhere (issue 13): the live status of every copy per branch and the
title's reservations, read from the circulation database in one read per page
(circulation/availability_view.py); the one mapping between union records and circulation
title ids (search/titles.py); the search limit local.available (search/availability.py,
a route step); the SRU ``opac`` schema (YAZ's OPAC XML, validated against the official
opacxml.xsd) and Z39.50 OPAC circulationData, asked with yaz-client and zoomsh.

The circulation reads run on SQLite and on PostgreSQL (``db_url``)."""
from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pymarc
import pytest
from lxml import etree
from sqlalchemy import event, insert

from circ_helpers import NOW, add_item, add_patron, aiosqlite_threads_joined
from circulation import schema as s
from circulation.availability_view import (
    AVAILABLE,
    IN_TRANSIT,
    LOST,
    NOT_FOR_LOAN,
    ON_HOLD_SHELF,
    ON_LOAN,
    CopyStatus,
    TitleStatus,
    UnknownPlace,
    available_title_ids,
    copy_state,
    title_status,
)
from indexers.query_model import Boolean, Clause, Query, QueryError
from indexers.records import Holding, UnionRecord
from search.availability import limit_available, places_of, record_holdings
from search.titles import ISBNS_PER_CLAUSE, isbn_title_id, parse_title_id, primary_title_id, title_ids, titles_query

# --------------------------------------------------------------------------- the mapping

def _union(rid: int, *isbns: str, holdings=()) -> UnionRecord:
    r = pymarc.Record()
    for i in isbns:
        r.add_field(pymarc.Field(tag="020", indicators=pymarc.Indicators(" ", " "),
                                 subfields=[pymarc.Subfield("a", i)]))
    return UnionRecord(rid, r, list(holdings))


def test_title_ids_of_a_record_are_its_isbn13s_then_its_number():
    u = _union(42, "4-00-431001-6 (pbk.)", "9784004310013", "978-4-10-101001-4")
    assert title_ids(u) == ["isbn:9784004310013", "isbn:9784101010014", "42"]
    assert primary_title_id(u) == "isbn:9784004310013"
    assert title_ids(_union(7)) == ["7"] and primary_title_id(_union(7)) == "7"


def test_title_ids_parse_back():
    assert parse_title_id("isbn:9784004310013") == ("isbn", "9784004310013")
    assert parse_title_id("isbn:4004310016") == ("isbn", "9784004310013")
    assert parse_title_id("123") == ("record", 123)
    for other in ("issn:0000-0001:2026-11", "jan:4988000000001", "isbn:nope", "", "12x", "1" * 13):
        assert parse_title_id(other) is None, other
    assert isbn_title_id("4-00-431001-6") == "isbn:9784004310013" and isbn_title_id("abc") is None


def test_titles_query_splits_isbns_and_keeps_record_numbers_in_a_set():
    ids = [f"isbn:978{n:010d}" for n in range(ISBNS_PER_CLAUSE + 5)] + ["17", "5", "jan:4988000000001"]
    node, numbers = titles_query(ids, "s1")
    assert numbers == [5, 17]
    clauses = [n for n in _leaves(node)]
    assert clauses[0] == Clause("cql.resultSetId", "=", "s1")
    isbn_clauses = [c for c in clauses if c.index == "bath.isbn"]
    assert [len(c.term.split()) for c in isbn_clauses] == [ISBNS_PER_CLAUSE, 5]
    assert all(c.relation == "any" for c in isbn_clauses)
    empty, none = titles_query([], "s2")
    assert empty == Clause("cql.resultSetId", "=", "s2") and none == []


def _leaves(node):
    if isinstance(node, Boolean):
        yield from _leaves(node.left)
        yield from _leaves(node.right)
    else:
        yield node


# --------------------------------------------------------------------------- pure rules

def test_copy_state_by_item_row():
    assert copy_state("available", True, False) == AVAILABLE
    assert copy_state("available", False, False) == NOT_FOR_LOAN
    assert copy_state("available", True, True) == NOT_FOR_LOAN          # the newest issue is read in the library
    assert copy_state("on_loan", False, False) == ON_LOAN
    assert copy_state("on_hold_shelf", True, False) == ON_HOLD_SHELF
    assert copy_state("in_transit", True, False) == IN_TRANSIT
    assert copy_state("lost", True, False) == LOST
    assert copy_state("withdrawn", True, False) is None


def _copy(barcode, status, **kw) -> CopyStatus:
    base = dict(title_id="isbn:9784004310013", barcode=barcode, library="iizuka", branch="iizuka",
                branch_name="飯塚図書館", location="一般書架", call_number="010", material_type="book")
    base.update(kw)
    return CopyStatus(status=status, **base)


def test_record_holdings_match_copies_by_barcode_and_add_the_others():
    cat = [Holding("iizuka", "i1", "中央", "010", "一般", "B1"), Holding("komae", "k1", "西", "010", "", "Z9")]
    u = _union(3, "9784004310013", holdings=cat)
    statuses = {"isbn:9784004310013": TitleStatus("isbn:9784004310013", (
        _copy("B1", ON_LOAN, due=date(2026, 12, 4)), _copy("B2", AVAILABLE, branch="honami", branch_name="穂波図書館")),
        reservations=2),
        "3": TitleStatus("3", (_copy("B3", LOST, title_id="3"),), reservations=1)}
    hs = record_holdings(u, statuses)
    assert [(h.holding.barcode, h.copy.status if h.copy else None) for h in hs] == [
        ("B1", ON_LOAN), ("Z9", None), ("B2", AVAILABLE), ("B3", LOST)]
    assert hs[0].holding is cat[0]                        # the catalog's holding, with the copy's status
    assert hs[2].holding == Holding("iizuka", "", "穂波図書館", "010", "一般書架", "B2")
    assert {h.reservations for h in hs} == {3}            # every title of the record
    assert [h.known for h in record_holdings(u, None)] == [False, False]


def test_texts_and_branch_summary():
    on_loan = _copy("B1", ON_LOAN, due=date(2026, 12, 4))
    assert on_loan.text("ja") == "貸出中（返却予定日 2026-12-04）" and on_loan.text("en") == "On loan (due 2026-12-04)"
    moving = _copy("B2", IN_TRANSIT, at_branch="honami", at_branch_name="穂波図書館")
    assert moving.text("ja") == "移送中（穂波図書館へ）" and moving.label_en == "In transit"
    t = TitleStatus("x", (on_loan, _copy("B3", ON_LOAN, due=date(2026, 12, 1)),
                          _copy("B4", AVAILABLE, branch="honami", branch_name="穂波図書館")), reservations=2)
    assert t.reservations_text("ja") == "予約 2 件" and t.reservations_text("en") == "2 reservation(s)"
    iizuka, honami = t.branches()
    assert (iizuka.copies, iizuka.available, iizuka.status, iizuka.due, iizuka.label_ja) == (
        2, 0, ON_LOAN, date(2026, 12, 1), "貸出中")
    assert (honami.available, honami.label_ja, honami.due) == (1, "在架", None)


# --------------------------------------------------------------------------- the read

T1, T2, T3 = "isbn:9784004310013", "isbn:9784062880015", "isbn:9784101010014"


async def _seed(circ):
    """Copies of T1 in every status, one of T2, reservations on T1 (Iizuka and Komae)."""
    pid = await add_patron(circ, "C1", "iizuka")
    kid = await add_patron(circ, "C2", "komae")
    ids = {}
    for bc, title, lib, br, kw in [
            ("A1", T1, "iizuka", "iizuka", {}),
            ("A2", T1, "iizuka", "iizuka", {"status": "on_loan"}),
            ("A3", T1, "iizuka", "honami", {"status": "on_hold_shelf"}),
            ("A4", T1, "iizuka", "honami", {"status": "in_transit"}),
            ("A5", T1, "iizuka", "chikuho", {"circulating": False}),
            ("A6", T1, "iizuka", "chikuho", {"status": "lost"}),
            ("A7", T1, "iizuka", "chikuho", {"status": "withdrawn"}),
            ("A8", T1, "iizuka", "iizuka", {"ill": True}),
            ("A9", T1, "iizuka", "honami", {"current_branch": "chikuho"}),   # in, at chikuho now
            ("K1", T2, "komae", "komae-central", {})]:
        ids[bc] = await add_item(circ, bc, title, lib, br, **kw)
    async with circ.db.transaction() as conn:
        await conn.execute(insert(s.loans).values(item_id=ids["A2"], patron_id=pid, branch="iizuka",
                                                  lent_at=NOW - timedelta(days=3), due=date(2026, 12, 4)))
        # an old loan of A1, returned: not its status
        await conn.execute(insert(s.loans).values(item_id=ids["A1"], patron_id=pid, branch="iizuka",
                                                  lent_at=NOW - timedelta(days=30), due=date(2026, 11, 1),
                                                  returned_at=NOW - timedelta(days=20), state="returned"))
        await conn.execute(insert(s.transits).values(item_id=ids["A4"], from_branch="honami", to_branch="iizuka",
                                                     reason="hold", sent_at=NOW - timedelta(hours=2)))
        for st, who, lib, pick in [("QUEUED", pid, "iizuka", "iizuka"), ("ON_HOLD_SHELF", pid, "iizuka", "honami"),
                                   ("SUSPENDED", pid, "iizuka", "iizuka"), ("CANCELLED", pid, "iizuka", "iizuka"),
                                   ("QUEUED", kid, "komae", "komae-central")]:
            await conn.execute(insert(s.requests).values(
                patron_id=who, library=lib, title_id=T1, pickup_branch=pick, channel="web", state=st,
                placed_at=NOW - timedelta(days=1), updated_at=NOW))
    return ids


async def test_title_status_every_status_and_reservations(circ):
    await _seed(circ)
    got = await title_status(circ, [T1, T2, T3, T1])
    assert set(got) == {T1, T2, T3}
    t1 = got[T1]
    by = {c.barcode: c for c in t1.copies}
    assert set(by) == {"A1", "A2", "A3", "A4", "A5", "A6", "A9"}        # not withdrawn, not ILL
    assert [by[b].status for b in ("A1", "A2", "A3", "A4", "A5", "A6", "A9")] == [
        AVAILABLE, ON_LOAN, ON_HOLD_SHELF, IN_TRANSIT, NOT_FOR_LOAN, LOST, AVAILABLE]
    assert by["A2"].due == date(2026, 12, 4) and by["A1"].due is None
    assert by["A4"].at_branch == "iizuka" and by["A4"].at_branch_name == "飯塚図書館" and by["A4"].for_request
    assert by["A3"].at_branch == "honami" and by["A3"].for_request and by["A3"].label_ja == "取置中"
    assert by["A5"].label_ja == "館内のみ" and by["A6"].label_ja == "所在不明" and by["A1"].label_en == "Available"
    assert by["A1"].branch_name == "飯塚図書館"
    assert t1.reservations == 4 and t1.reservations_by_library == {"iizuka": 3, "komae": 1}
    assert [(b.branch, b.status) for b in t1.branches()] == [
        ("chikuho", NOT_FOR_LOAN), ("honami", AVAILABLE), ("iizuka", AVAILABLE)]
    assert got[T2].available and got[T2].reservations == 0
    assert got[T3] == TitleStatus(T3)                                 # unknown to circulation
    assert await title_status(circ, []) == {}


async def test_title_status_reads_a_page_in_two_queries(circ):
    """No N+1: the copies (with loans and transits) in one query, the reservations in one."""
    await _seed(circ)
    for i in range(40):
        await add_item(circ, f"P{i}", f"isbn:97840000{i:05d}", "iizuka", "iizuka")
    statements = []

    def count(_conn, _cursor, statement, *_a):
        if statement.lstrip().upper().startswith("SELECT"):      # not BEGIN / SET of the transaction
            statements.append(statement)

    engine = circ.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        page = [T1, T2] + [f"isbn:97840000{i:05d}" for i in range(18)]
        got = await title_status(circ, page)
        small = len(statements)
        statements.clear()
        got40 = await title_status(circ, [T1] + [f"isbn:97840000{i:05d}" for i in range(40)])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(got) == 20 and all(got[t].copies for t in page)
    assert len(got40) == 41
    assert small == len(statements) == 2, (small, len(statements))


async def test_available_title_ids_at_a_branch_or_library(circ):
    await _seed(circ)
    assert await available_title_ids(circ, ["iizuka"]) == {T1}           # library code: all its branches
    assert await available_title_ids(circ, ["IIZUKA"]) == {T1}
    # at the branch iizuka: A1 is in; at honami nothing is in (A3 hold shelf, A4 in transit,
    # A9 is honami's but at chikuho now); chikuho: A9 (A5 does not circulate, A6 lost)
    assert await available_title_ids(circ, ["honami"]) == frozenset()
    assert await available_title_ids(circ, ["chikuho"]) == {T1}
    assert await available_title_ids(circ, ["komae-central", "honami"]) == {T2}
    with pytest.raises(UnknownPlace) as e:
        await available_title_ids(circ, ["nowhere"])
    assert e.value.place == "nowhere" and isinstance(e.value, LookupError)


# --------------------------------------------------------------------------- the limit (route step)

class _Source:
    """The availability source's interface over fixed data: the route step's rules alone
    (the circulation database behind it is tested above and end to end below)."""

    def __init__(self, at: dict[str, set[str]]):
        self.at = at
        self.asked: list[list[str]] = []

    async def available_title_ids(self, places):
        places = list(places)
        self.asked.append(places)
        out: set[str] = set()
        for p in places:
            if p not in self.at:
                e = LookupError(p)
                e.place = p
                raise e
            out |= self.at[p]
        return out

    async def title_status(self, title_ids):
        return {}


class _Route:
    def __init__(self, source):
        self.availability = source

    async def call(self, aw):
        return await aw


class _S:
    def __init__(self, root):
        self.restricted = Query(root)
        self.reuse = True
        self.extra_sets = {}


def test_places_of_a_clause():
    assert places_of(Clause("local.available", "=", "iizuka")) == ["iizuka"]
    assert places_of(Clause("local.available", "any", "iizuka honami")) == ["iizuka", "honami"]
    for c, code in [(Clause("local.available", "<", "iizuka"), 19), (Clause("local.available", "=", "iiz*"), 28),
                    (Clause("local.available", "=", ""), 27), (Clause("local.available", "=", "a b"), 36)]:
        with pytest.raises(QueryError) as e:
            places_of(c)
        assert e.value.code == code, c


async def test_limit_step_replaces_the_clause_where_it_stands():
    src = _Source({"iizuka": {"isbn:9784004310013", "12", "jan:1"}})
    s = _S(Boolean("not", Clause("dc.title", "=", "x"), Clause("local.available", "=", "iizuka")))
    await limit_available(_Route(src), s)
    root = s.restricted.root
    assert root.op == "not" and root.left == Clause("dc.title", "=", "x")
    leaves = list(_leaves(root.right))
    name = leaves[0].term
    assert leaves == [Clause("cql.resultSetId", "=", name), Clause("bath.isbn", "any", "9784004310013")]
    assert s.extra_sets[name].ids == [12] and s.reuse is False and src.asked == [["iizuka"]]
    plain = _S(Clause("dc.title", "=", "x"))
    await limit_available(_Route(None), plain)               # no limit, no source needed
    assert plain.restricted.root == Clause("dc.title", "=", "x") and plain.reuse


async def test_limit_step_diagnostics():
    with pytest.raises(QueryError) as e:
        await limit_available(_Route(None), _S(Clause("local.available", "=", "iizuka")))
    assert e.value.code == 16
    with pytest.raises(QueryError) as e:
        await limit_available(_Route(_Source({})), _S(Clause("local.available", "=", "nowhere")))
    assert e.value.code == 36 and e.value.details == "nowhere"


# --------------------------------------------------------------------------- end to end: serve

needs_yaz = pytest.mark.skipif(shutil.which("yaz-client") is None or shutil.which("zoomsh") is None,
                               reason="yaz-client/zoomsh not installed (apt-get install yaz)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo catalog and the demo circulation database (config/samples) served by the
    real application, with the SRU, Z39.50 and circulation API front ends."""
    from circ_helpers import CHEAP_HASHING
    from circulation import auth
    from circulation.service import Circulation
    from circulation.store import Clock, Database
    from gateway.demo import setup_circulation, write_demo_files
    from indexers.ingest import ingest
    from lifecycle.profiles import load_all
    from live_server import Server

    d = tmp_path_factory.mktemp("availability")
    for lib, path in write_demo_files(d / "in").items():
        ingest(d, lib, [path], quiet=True)
    url = f"sqlite+aiosqlite:///{d}/circulation.db"
    auth.configure_password_hashing(**CHEAP_HASHING)
    try:
        asyncio.run(setup_circulation(url))
        server = Server(d, circulation=Circulation(Database(url), load_all(), Clock()), circulation_jobs={})
    finally:
        auth.configure_password_hashing(reset=True)
    yield server
    server.stop()


def _sru(server, **params) -> etree._Element:
    from sru_validation import validate_sru
    params.setdefault("version", "1.2")
    params.setdefault("operation", "searchRetrieve")
    status, body, _ = server.get(**params)
    assert status == 200
    return validate_sru(body, params["version"]).getroot()      # opac records: against opacxml.xsd


def _holdings(root) -> dict[str, etree._Element]:
    return {h.findtext("copyNumber"): h for h in root.iter("holding")}


def _staff(server):
    from test_circulation_api import Client
    c = Client(server.base)
    c.staff_login("iizuka.counter", "counter-2026")
    return c


def _hits(root) -> int:
    return int(root.findtext("{http://www.loc.gov/zing/srw/}numberOfRecords"))


def _yaz(server, tmp_path: Path, lines: list[str]) -> str:
    cmds = tmp_path / "session.cmds"
    cmds.write_text("\n".join(["charset UTF-8", f"open {server.z3950}", *lines, "quit"]) + "\n", encoding="utf-8")
    out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, timeout=60, text=True,
                         stdin=subprocess.DEVNULL)
    return out.stdout + out.stderr


def _zoom_opac_xml(server, query: str) -> etree._Element:
    """The OPAC record as zoomsh renders it in YAZ's OPAC XML ("show 0 1 opac")."""
    out = subprocess.run(["zoomsh", f"connect {server.z3950}", "set preferredRecordSyntax opac", "set charset UTF-8",
                          f"search {query}", "show 0 1 opac", "quit"],
                         capture_output=True, timeout=60, text=True, stdin=subprocess.DEVNULL)
    text = out.stdout
    start, end = text.find("<opacRecord"), text.find("</opacRecord>")
    assert start >= 0 and end > start, text
    return etree.fromstring(text[start:end + len("</opacRecord>")].encode("utf-8"))


def test_sru_opac_schema_is_listed_and_valid(served):
    status, body, _ = served.get(version="1.2", operation="explain")
    assert b"info:unioncat/schema/opacxml-1" in body and b"local.available" in body
    root = _sru(served, query="bath.isbn=9784004310013", recordSchema="opac")
    hs = _holdings(root)
    assert {"I0000001", "I0000002", "ii00000", "hu00000"} <= set(hs)
    one = hs["I0000001"]
    assert one.findtext("nucCode") == "iizuka" and one.findtext("localLocation") == "飯塚図書館"
    assert one.find("circulations/circulation/availableNow").get("value") == "1"
    assert one.findtext("publicNote") == "在架 / Available"
    catalog_only = hs["ii00000"]            # a catalog holding circulation does not know: marked unknown
    assert catalog_only.find("circulations") is None
    assert catalog_only.findtext("publicNote") == "貸出状況不明 / Availability unknown"
    # every version, and a page of several records
    for version in ("1.1", "2.0"):
        root = _sru(served, query="dc.title=図書館", recordSchema="opac", version=version, maximumRecords="10")
        assert len(list(root.iter("opacRecord"))) >= 3


@needs_yaz
def test_a_check_out_shows_at_once_on_sru_and_z3950(served, tmp_path):
    staff = _staff(served)
    before = _holdings(_sru(served, query="bath.isbn=9784004310013", recordSchema="opac"))["I0000001"]
    assert before.find("circulations/circulation/availableNow").get("value") == "1"
    r = staff.post("/staff/checkout", {"barcode": "I0000001", "card_number": "2100000001"}, expect=201)
    due = r["due"]
    try:
        h = _holdings(_sru(served, query="bath.isbn=9784004310013", recordSchema="opac"))["I0000001"]
        c = h.find("circulations/circulation")
        assert c.find("availableNow").get("value") == "0" and c.findtext("availabilityDate") == due
        assert c.findtext("restrictions") == "貸出中 / On loan"
        assert h.findtext("publicNote") == f"貸出中（返却予定日 {due}） / On loan (due {due})"
        # Z39.50: yaz-client's OPAC display, and zoomsh's OPAC XML against the official schema
        out = _yaz(served, tmp_path, ["find @attr 1=7 9784004310013", "format opac", "show 1"])
        block = out[out.index("I0000001"):]
        # yaz-client prints the element as "availabiltyDate" (its own spelling of the ASN.1's)
        assert "availableNow: 0" in block and f"availabiltyDate: {due}" in block, out
        xml = _yaz(served, tmp_path, ["find @attr 1=7 9784004310013", "format xml", "elements opac", "show 1"])
        assert "<opacRecord>" in xml and "<availabilityDate>" + due in xml, xml
        from sru_validation import validate_opac
        z = validate_opac(_zoom_opac_xml(served, "@attr 1=7 9784004310013"))
        zh = _holdings(z)["I0000001"]
        assert zh.find("circulations/circulation/availableNow").get("value") == "0"
        assert zh.findtext("circulations/circulation/availabilityDate") == due
        assert _holdings(z)["I0000002"].find("circulations/circulation/availableNow").get("value") == "1"
    finally:
        staff.post("/staff/checkin", {"barcode": "I0000001"}, expect=200)
    after = _holdings(_sru(served, query="bath.isbn=9784004310013", recordSchema="opac"))["I0000001"]
    assert after.find("circulations/circulation/availableNow").get("value") == "1"


@needs_yaz
def test_the_limit_on_sru_and_z3950(served, tmp_path):
    """「貸出可能な資料のみ」: local.available (SRU CQL, Z39.50 CQL and Bib-1 use 9001)."""
    staff = _staff(served)
    q = "dc.title=図書館の歴史"
    assert _hits(_sru(served, query=q)) == 1
    assert _hits(_sru(served, query=f"{q} and local.available=iizuka")) == 1
    assert _hits(_sru(served, query=f"{q} and available=komae")) == 0      # Komae has no copy of it
    assert _hits(_sru(served, query=f"{q} not local.available=iizuka")) == 0
    staff.post("/staff/checkout", {"barcode": "I0000001", "card_number": "2100000001"}, expect=201)
    try:
        assert _hits(_sru(served, query=f"{q} and local.available=iizuka")) == 0      # its only copy there is out
        assert _hits(_sru(served, query=f'{q} and local.available any "iizuka honami"')) == 1
        assert _hits(_sru(served, query=f"{q} and local.available=honami")) == 1
        out = _yaz(served, tmp_path, ["find @and @attr 1=4 図書館の歴史 @attr 1=9001 iizuka",
                                      "find @and @attr 1=4 図書館の歴史 @attr 1=9001 honami",
                                      "querytype cql", "find dc.title=図書館の歴史 and available=iizuka"])
        assert [int(n) for n in re.findall(r"Number of hits: (\d+)", out)] == [0, 1, 0], out
    finally:
        staff.post("/staff/checkin", {"barcode": "I0000001"}, expect=200)
    assert _hits(_sru(served, query=f"{q} and local.available=iizuka")) == 1
    # diagnostics, never a failure
    root = _sru(served, query=f"{q} and local.available=nowhere")
    assert root.findtext(".//{http://www.loc.gov/zing/srw/diagnostic/}uri") == "info:srw/diagnostic/1/36"
    status, body, _ = served.get(version="1.2", operation="scan", scanClause="local.available=i")
    assert status == 200 and b"info:srw/diagnostic/1/16" in body


def test_without_circulation_holdings_are_unknown_and_the_limit_is_a_diagnostic(demo_server):
    root = _sru(demo_server, query="bath.isbn=9784004310013", recordSchema="opac")
    hs = list(root.iter("holding"))
    assert hs and all(h.find("circulations") is None for h in hs)
    assert {h.findtext("publicNote") for h in hs} == {"貸出状況不明 / Availability unknown"}
    root = _sru(demo_server, query="dc.title=図書館 and local.available=iizuka")
    assert root.findtext(".//{http://www.loc.gov/zing/srw/diagnostic/}uri") == "info:srw/diagnostic/1/16"


async def test_a_circulation_outage_shows_holdings_unknown_not_an_error(caplog):
    """The database cannot answer: the page is shown with every status unknown (one
    warning), never a failed Present or searchRetrieve."""
    from gateway.availability import holdings_of_page, opac_holdings, status_note
    from indexers.backend import BackendUnavailable

    class Down:
        async def title_status(self, title_ids):
            raise BackendUnavailable("the circulation database is unavailable: OperationalError")

    u = _union(3, "9784004310013", holdings=[Holding("iizuka", "i1", "中央", "010", "一般", "B1")])
    page = await holdings_of_page(Down(), [u])
    assert [h.known for h in page[3]] == [False]
    assert status_note(page[3][0]) == "貸出状況不明 / Availability unknown"
    assert opac_holdings(page[3])[0].circulation is None
    assert "availability not shown" in caplog.text


async def test_an_outage_of_the_circulation_database_is_backend_unavailable(tmp_path):
    """CirculationAvailability says a database that cannot be reached as the catalog's
    BackendUnavailable (SRU diagnostic 1, Bib-1 2): the limit cannot be evaluated."""
    from circulation.availability_view import CirculationAvailability
    from circulation.service import Circulation
    from circulation.store import Clock, Database
    from indexers.backend import BackendUnavailable
    from lifecycle.profiles import load_all

    async with aiosqlite_threads_joined():
        circ = Circulation(Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/circ.db"), load_all(), Clock(NOW))
        try:
            with pytest.raises(BackendUnavailable):
                await CirculationAvailability(circ).available_title_ids(["iizuka"])
            with pytest.raises(BackendUnavailable):
                await CirculationAvailability(circ).title_status(["isbn:9784004310013"])
        finally:
            await circ.db.dispose()


# --------------------------------------------------------------------------- the limit on every backend

@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def limit_catalog(request, tmp_path_factory):
    from catalog_builder import backend_fixture, df, rec

    c = backend_fixture(request, tmp_path_factory.mktemp(f"limit-{request.param}"))
    c.load("iizuka", [
        rec("L1", title="Libraries of Japan", fields=[df("020", a="4-00-431001-6")]),   # ISBN-10 in the record
        rec("L2", title="Libraries and society", fields=[df("020", a="9784062880015")]),
        rec("L3", title="Libraries without ISBN"),
        rec("L4", title="Rivers of Japan", fields=[df("020", a="9784101010014")])])
    yield c
    c.close()


def test_the_limit_through_the_route_on_every_backend(limit_catalog):
    """local.available on the embedded index and on Elasticsearch alike: ISBN title ids
    (an ISBN-10 record found by its ISBN-13 title id), a record-number title id, the clause
    under and / not / or, and thousands of other titles in the same set."""
    from search.result_sets import ResultSets
    from search.route import Search, make_route

    c = limit_catalog
    by_001 = {r.members[0][1]: r.id for r in c.fetch(c.ids("cql.allRecords=1"))}
    others = {f"isbn:978{n:010d}" for n in range(3000)}
    src = _Source({"iizuka": {"isbn:9784004310013", str(by_001["L3"])} | others,
                   "honami": {"isbn:9784062880015", "isbn:9784101010014"}, "kaita": set()})
    route = make_route(c.catalog, availability=src)

    def hits(cql):
        async def go():
            async with route.request():
                rs = await route.search(Search(c.query(cql), ResultSets()))
                return set(await route.page(rs, 0, rs.result.total))
        return {k for k, v in by_001.items() if v in c.run(go())}

    assert hits("dc.title=libraries and local.available=iizuka") == {"L1", "L3"}
    assert hits("dc.title=libraries and local.available=honami") == {"L2"}
    assert hits("dc.title=libraries not local.available=iizuka") == {"L2"}
    assert hits('local.available any "iizuka honami"') == {"L1", "L2", "L3", "L4"}
    assert hits("dc.title=rivers or local.available=kaita") == {"L4"}
    assert hits("local.available=kaita") == set()
