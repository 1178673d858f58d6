"""The asyncio Z39.50 client (connectors/z3950_client.py) against real targets --
Zebra (Debian idzebra-2.0, ICU indexing, records indexed here) and yaz-ztest
(Debian yaz, canned records, delays injected through its database-name options)
-- and against tiny misbehaving fake targets written here.

Tests that need a real server are marked ``peer`` and skip when the binary is
missing; the fake-target and connection-refused tests need nothing and always run.
Every server is started on a free 127.0.0.1 port and stopped by PID.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pymarc
import pytest
from lxml import etree
from pymarc import Field, Indicators, Subfield

from connectors.z3950_client import (
    RetrievedRecord,
    ScanResult,
    Z3950Client,
    Z3950Closed,
    Z3950ConnectionError,
    Z3950Diagnostic,
    Z3950InitRejected,
    Z3950ProtocolError,
    Z3950Timeout,
    sort_key,
)
from z3950 import pdu as P
from z3950 import records as R
from z3950 import rpn
from z3950.session import TARGET, ConnectionClosed, NeedData, Session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tools"))
import procmon  # noqa: E402
import ztest_peer  # noqa: E402
from server_process import free_port as _free_port  # noqa: E402

HOST = "127.0.0.1"
HAVE_ZEBRA = shutil.which("zebrasrv") is not None and shutil.which("zebraidx") is not None
HAVE_ZTEST = shutil.which("yaz-ztest") is not None
requires_zebra = pytest.mark.skipif(not HAVE_ZEBRA, reason="zebrasrv/zebraidx not installed "
                                    "(apt-get install idzebra-2.0)")
requires_ztest = pytest.mark.skipif(not HAVE_ZTEST, reason="yaz-ztest not installed (apt-get install yaz)")


# --------------------------------------------------------------------------- test records

# (isbn, title 245 $a, author 100 $a, publisher, year, language, subjects)
BOOKS = [
    ("9780262033848", "Introduction to algorithms", "Cormen, Thomas H.", "MIT Press", "2009", "eng",
     ["Computer algorithms"]),
    ("9780521865715", "Introduction to information retrieval", "Manning, Christopher D.",
     "Cambridge University Press", "2008", "eng", ["Information retrieval"]),
    ("9780838910016", "A history of libraries in the western world", "Harris, Michael H.", "Scarecrow Press",
     "1995", "eng", ["Libraries"]),
    ("9781856046589", "Library science basics", "Jones, Mary", "Facet Publishing", "2010", "eng",
     ["Library science"]),
    ("9780415000017", "The art of indexing", "Mulvany, Nancy C.", "Routledge", "2005", "eng", ["Indexing"]),
    ("9784004310013", "図書館の歴史", "山田, 太郎", "岩波書店", "2001", "jpn", ["図書館"]),
    ("9784062880015", "日本の図書館", "鈴木, 花子", "講談社", "1998", "jpn", ["図書館"]),
    ("9784130033018", "図書館情報学入門", "佐藤, 一郎", "東京大学出版会", "2015", "jpn", ["図書館情報学"]),
    ("9784876982011", "京都の寺院と庭園", "高橋, 健", "京都大学学術出版会", "2020", "jpn", ["寺院"]),
    ("9784480020017", "検索エンジンの仕組み", "田中, 直樹", "筑摩書房", "2012", "jpn", ["情報検索"]),
]


def write_marc(path: Path) -> Path:
    with open(path, "wb") as f:
        for i, (isbn, title, author, publisher, year, lang, subjects) in enumerate(BOOKS, 1):
            rec = pymarc.Record(force_utf8=True, leader="00000nam a2200000 a 4500")
            rec.add_field(Field(tag="001", data=f"zc{i:04d}"))
            rec.add_field(Field(tag="008", data=f"200101s{year}    xx            000 0 {lang} d"))
            rec.add_field(Field(tag="020", indicators=Indicators(" ", " "), subfields=[Subfield("a", isbn)]))
            rec.add_field(Field(tag="100", indicators=Indicators("1", " "), subfields=[Subfield("a", author)]))
            rec.add_field(Field(tag="245", indicators=Indicators("1", "0"), subfields=[Subfield("a", title)]))
            rec.add_field(Field(tag="264", indicators=Indicators(" ", "1"),
                                subfields=[Subfield("b", publisher), Subfield("c", year)]))
            for s in subjects:
                rec.add_field(Field(tag="650", indicators=Indicators(" ", "0"), subfields=[Subfield("a", s)]))
            f.write(rec.as_marc())
    return path


def titles(records) -> list[str]:
    return [r.marc["245"]["a"] for r in records]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def zebra(tmp_path_factory):
    """A real zebrasrv (ICU variant) on a free loopback port serving BOOKS."""
    if not HAVE_ZEBRA:
        pytest.skip("zebrasrv not installed")
    import zebra as zebra_bench
    root = tmp_path_factory.mktemp("zebra")
    z = zebra_bench.ZebraSetup(root / "run", variant="icu")
    try:
        z.index([write_marc(root / "books.mrc")], timeout=120)
        z.start(wait=30)
        yield z
    finally:
        z.stop()


@pytest.fixture(scope="module")
def ztest(tmp_path_factory):
    """A real yaz-ztest on a free loopback port (cwd holds dummy-words)."""
    if not HAVE_ZTEST:
        pytest.skip("yaz-ztest not installed")
    peer = ztest_peer.ZtestPeer(tmp_path_factory.mktemp("ztest"))
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def own_ztest(tmp_path):
    """A yaz-ztest of this test alone (to be stopped, restarted or frozen)."""
    if not HAVE_ZTEST:
        pytest.skip("yaz-ztest not installed")
    peer = ztest_peer.ZtestPeer(tmp_path / "ztest")
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()


def free_port() -> int:
    return _free_port()


# =========================================================================== Zebra

@pytest.mark.peer
@requires_zebra
async def test_init_reports_zebra_and_negotiates_utf8(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert z.init_response.result is True
        assert "Zebra" in z.implementation_name or "GFS" in z.implementation_name
        assert z.implementation_version
        assert {"search", "present", "scan", "sort", "delSet", "namedResultSets"} <= z.options
        assert "negotiationModel" in z.options
        assert z.charset == "UTF-8" and z.encoding == "utf-8"
    assert z.close_response is not None and z.close_response.close_reason == 0


@pytest.mark.peer
@requires_zebra
@pytest.mark.parametrize("query, hits", [
    ("@attr 1=4 introduction", 2),
    ("@attr 1=4 library", 1),
    ("@attr 1=4 @attr 5=1 librar", 2),                  # right truncation: library, libraries
    ("@attr 1=1003 cormen", 1),                         # author
    ("@attr 1=7 9784004310013", 1),                     # ISBN
    ("@attr 1=4 図書館", 3),                             # Japanese, ICU: adjacent characters
    ("@attr 1=4 京都", 1),
    ("@attr 1=4 @attr 5=1 図書", 3),
    ("@or @attr 1=4 introduction @attr 1=4 history", 3),
    ("@and @attr 1=4 introduction @attr 1=4 retrieval", 1),
    ("@not @attr 1=4 introduction @attr 1=4 algorithms", 1),
    ("@and @attr 1=4 図書館 @attr 1=1003 山田", 1),
    ("@attr 1=4 nosuchword", 0),
])
async def test_search_hit_counts(zebra, query, hits):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert await z.search(query) == hits
        assert z.hits("default") == hits


@pytest.mark.peer
@requires_zebra
async def test_search_cql_and_rpn_objects(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert await z.search("title=introduction", querytype="cql") == 2          # type-104, Zebra's cql2rpn
        assert await z.search(P.CQLQuery("title=図書館")) == 3
        assert await z.search(rpn.parse_pqf("@attr 1=1003 manning")) == 1


@pytest.mark.peer
@requires_zebra
async def test_present_usmarc(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert await z.search("@attr 1=7 9784004310013") == 1
        [rec] = await z.present(1, 1, syntax="usmarc")
        assert isinstance(rec, RetrievedRecord) and rec.syntax == R.USMARC and rec.error is None
        assert isinstance(rec.marc, pymarc.Record)
        assert rec.marc["245"]["a"] == "図書館の歴史"
        assert rec.marc["100"]["a"] == "山田, 太郎"
        assert rec.marc["020"]["a"] == "9784004310013"


@pytest.mark.peer
@requires_zebra
async def test_present_marcxml(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert await z.search("@attr 1=4 京都") == 1
        [rec] = await z.present(1, 1, syntax="xml", element_set="marcxml")
        assert rec.syntax == R.XML and rec.error is None
        doc = etree.fromstring(rec.data)
        ns = {"m": "http://www.loc.gov/MARC21/slim"}
        assert doc.xpath("string(//m:datafield[@tag='245']/m:subfield[@code='a'])", namespaces=ns) \
            == "京都の寺院と庭園"


@pytest.mark.peer
@requires_zebra
async def test_present_element_set_b_and_ranges(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert await z.search("@attr 1=4 図書館") == 3
        brief = await z.present(1, 3, element_set="B")
        assert sorted(titles(brief)) == sorted(["図書館の歴史", "日本の図書館", "図書館情報学入門"])
        # beyond the end: only what exists, no request for the impossible part
        assert len(await z.present(3, 10)) == 1
        assert await z.present(4, 10) == []


@pytest.mark.peer
@requires_zebra
async def test_present_continues_when_the_message_size_cuts_it_short(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5, preferred_message_size=1000) as z:
        assert z.init_response.preferred_message_size == 1000
        assert await z.search("@or @or @attr 1=4 introduction @attr 1=4 library @attr 1=4 art") == 4
        records = await z.present(1, 4)
        assert len(records) == 4 and all(isinstance(r, RetrievedRecord) for r in records)
        assert len(set(titles(records))) == 4
        assert z.requests["PresentRequest"] > 1            # the target returned fewer than asked


@pytest.mark.peer
@requires_zebra
async def test_scan_with_preferred_position(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        result = await z.scan("@attr 1=4 introduction", count=5, preferred_position=2)
        assert isinstance(result, ScanResult) and result.status == 0
        assert result.position == 2 and len(result.entries) == 5
        entry = result.entries[1]
        assert entry.term.lower() == "introduction" and entry.occurrences == 2
        assert result.entries[0].term.lower() < "introduction" < result.entries[2].term.lower()
        first = await z.scan("@attr 1=4 introduction", count=3)
        assert first.position == 1 and first.entries[0].term.lower() == "introduction"


@pytest.mark.peer
@requires_zebra
async def test_sort_changes_the_order(zebra):
    query = "@or @or @attr 1=4 introduction @attr 1=4 library @attr 1=4 art"
    ascending = ["Introduction to algorithms", "Introduction to information retrieval", "Library science basics",
                 "The art of indexing"]
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert await z.search(query) == 4
        response = await z.sort(("1=4", ">"))
        assert response.sort_status == 0
        assert titles(await z.present(1, 4)) == ascending[::-1]
        await z.sort("1=4 <", input="default", output="by-title")
        assert titles(await z.present(1, 4, result_set="by-title")) == ascending
        await z.sort([rpn_sort_spec(descending=True)], input="by-title", output="by-title-desc")
        assert titles(await z.present(1, 4, result_set="by-title-desc")) == ascending[::-1]


def rpn_sort_spec(descending: bool) -> P.SortKeySpec:
    return P.SortKeySpec(attributes=(rpn.AttributeElement(1, 4),), attribute_set=rpn.BIB1,
                         relation=1 if descending else 0)


@pytest.mark.peer
@requires_zebra
async def test_named_result_sets_and_delete(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        assert await z.search("@attr 1=4 図書館", result_set="ja") == 3
        assert await z.search("@attr 1=4 introduction", result_set="en") == 2
        assert len(await z.present(1, 5, result_set="ja")) == 3
        response = await z.delete_result_sets("ja")
        assert response.delete_operation_status == 0
        assert response.delete_list_statuses == (("ja", 0),)
        with pytest.raises(Z3950Diagnostic) as err:
            await z.present(1, 1, result_set="ja")
        assert err.value.code == 30 and err.value.diagnostic_set == P.BIB1_DIAGNOSTICS   # result set does not exist
        assert len(await z.present(1, 2, result_set="en")) == 2    # the other set is still there
        assert z.usable


@pytest.mark.peer
@requires_zebra
async def test_unsupported_use_attribute_is_a_bib1_diagnostic(zebra):
    async with Z3950Client.connect(HOST, zebra.port, timeout=5) as z:
        with pytest.raises(Z3950Diagnostic) as err:
            await z.search("@attr 1=9999 foo")
        assert err.value.code == 114 and err.value.addinfo == "9999"
        assert err.value.diagnostic_set == P.BIB1_DIAGNOSTICS
        assert z.usable and await z.search("@attr 1=4 library") == 1    # a diagnostic leaves the association open


@pytest.mark.peer
@requires_zebra
async def test_close_and_afterwards(zebra):
    z = await Z3950Client.connect(HOST, zebra.port, timeout=5)
    assert await z.search("@attr 1=4 library") == 1
    await z.close()
    assert z.close_response.close_reason == 0 and not z.usable
    with pytest.raises(Z3950ConnectionError):
        await z.search("@attr 1=4 library")
    await z.close()                                      # idempotent
    await z.reconnect()
    assert await z.search("@attr 1=4 library") == 1
    await z.close()


# =========================================================================== yaz-ztest

@pytest.mark.peer
@requires_ztest
async def test_ztest_opac_records_with_holdings(ztest):
    async with Z3950Client.connect(HOST, ztest.port, timeout=5) as z:
        assert "GFS" in z.implementation_name
        assert await z.search("@attr 1=4 7") == 7          # yaz-ztest: a term with leading digits = hit count
        records = await z.present(1, 3, syntax="opac")
        assert len(records) == 3
        for rec in records:
            assert rec.syntax == R.OPAC and rec.error is None
            assert rec.opac.bib.marc["245"]["a"]
            [holding] = rec.opac.holdings
            assert holding.nuc_code and holding.call_number and holding.local_location
            [circ] = holding.circulation
            assert circ.available_now is True and circ.item_id
        assert records[0].opac.bib.marc["245"]["a"] == "How to program a computer"
        usmarc = await z.present(1, 7)
        assert len(usmarc) == 7 and all(r.marc is not None for r in usmarc)


@pytest.mark.peer
@requires_ztest
async def test_ztest_scan_reads_dummy_words(ztest):
    async with Z3950Client.connect(HOST, ztest.port, timeout=5) as z:
        result = await z.scan("@attr 1=4 comp", count=3)
        assert [e.term for e in result.entries] == ["COMPUTER", "COMPUTERS", "DATA"]
        assert result.entries[0].occurrences == 41


@pytest.mark.peer
@requires_ztest
async def test_ztest_charset_selection(ztest):
    """yaz-ztest answers any proposal with ISO-8859-1 (as yaz-client shows:
    'Accepted character set : ISO-8859-1')."""
    async with Z3950Client.connect(HOST, ztest.port, timeout=5) as z:
        assert "negotiationModel" in z.options
        assert z.init_response.other_info is not None
        assert z.charset == "ISO-8859-1" and z.encoding == "iso8859-1"


@pytest.mark.peer
@requires_ztest
async def test_ztest_unknown_database_is_a_diagnostic(ztest):
    async with Z3950Client.connect(HOST, ztest.port, timeout=5, database="nosuchdb") as z:
        with pytest.raises(Z3950Diagnostic) as err:
            await z.search("@attr 1=4 3")
        assert err.value.code == 109 and err.value.addinfo == "nosuchdb"


@pytest.mark.peer
@requires_ztest
async def test_search_slower_than_the_deadline_times_out(ztest):
    """yaz-ztest sleeps for search-delay seconds when the database name carries it."""
    z = await Z3950Client.connect(HOST, ztest.port, database="Default?search-delay=3", timeout=1.0)
    try:
        t0 = time.monotonic()
        with pytest.raises(Z3950Timeout):
            await z.search("@attr 1=4 5")
        elapsed = time.monotonic() - t0
        # not before the 1 s deadline; that it did not wait for the 3 s search is what
        # Z3950Timeout says (a completed search would have returned its count)
        assert elapsed >= 1.0
        assert not z.usable
        with pytest.raises(Z3950ConnectionError):         # abandoned: unknown state
            await z.search("@attr 1=4 5")
        await z.reconnect()
        assert await z.search("@attr 1=4 5", databases=["Default"]) == 5
    finally:
        await z.close()


@pytest.mark.peer
@requires_ztest
async def test_search_slower_but_within_the_deadline_succeeds(ztest):
    async with Z3950Client.connect(HOST, ztest.port, database="Default?search-delay=0.6", timeout=3.0) as z:
        t0 = time.monotonic()
        assert await z.search("@attr 1=4 4") == 4
        assert time.monotonic() - t0 >= 0.6                    # it really waited for the slow search
        assert len(await z.present(1, 4)) == 4


@pytest.mark.peer
@requires_ztest
async def test_present_slower_than_the_deadline_times_out(ztest):
    async with Z3950Client.connect(HOST, ztest.port, database="Default?present-delay=2.5", timeout=0.8) as z:
        assert await z.search("@attr 1=4 3") == 3            # no delay for the search
        t0 = time.monotonic()
        with pytest.raises(Z3950Timeout):                   # not the 2.5 s present: it gave up
            await z.present(1, 3)
        assert time.monotonic() - t0 >= 0.8                  # not before its deadline


@pytest.mark.peer
@requires_ztest
async def test_search_and_present_gives_up_after_repeated_timeouts(ztest):
    seen = []
    async with Z3950Client.connect(HOST, ztest.port, database="Default?search-delay=3", timeout=0.5,
                                   retry_backoff=0.1) as z:
        t0 = time.monotonic()
        with pytest.raises(Z3950Timeout):
            await z.search_and_present("@attr 1=4 3", 3, attempts=2,
                                       on_retry=lambda n, exc: seen.append((n, type(exc))))
        elapsed = time.monotonic() - t0
    assert seen == [(1, Z3950Timeout)]
    assert 1.0 <= elapsed < 2.5
    assert z.requests["SearchRequest"] == 2 and z.requests["InitializeRequest"] == 2


@pytest.mark.peer
@requires_ztest
async def test_search_and_present_does_not_retry_diagnostics(ztest):
    async with Z3950Client.connect(HOST, ztest.port, database="nosuchdb", timeout=2) as z:
        with pytest.raises(Z3950Diagnostic):
            await z.search_and_present("@attr 1=4 3", 3, attempts=3)
        assert z.requests["SearchRequest"] == 1 and z.usable


def _session_children(peer: ztest_peer.ZtestPeer) -> list[int]:
    return procmon.children(peer.pid)


@pytest.mark.peer
@requires_ztest
async def test_search_and_present_recovers_when_the_target_hangs_once(own_ztest):
    """The first association's session process is frozen (SIGSTOP): the search
    times out; the retry opens a new association (a new, healthy process)."""
    z = await Z3950Client.connect(HOST, own_ztest.port, timeout=1.0, retry_backoff=0.1)
    frozen = []
    try:
        # our session's process; the one that served start()'s port probe exits by itself
        deadline = time.monotonic() + 5
        while len(frozen := _session_children(own_ztest)) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(frozen) == 1
        os.kill(frozen[0], signal.SIGSTOP)
        seen = []
        t0 = time.monotonic()
        result = await z.search_and_present("@attr 1=4 6", 6, syntax="usmarc",
                                            on_retry=lambda n, exc: seen.append(type(exc)))
        elapsed = time.monotonic() - t0
        assert result.hits == 6 and len(result.records) == 6 and result.attempts == 2
        assert seen == [Z3950Timeout]
        assert 1.0 <= elapsed < 3.0
        assert z.usable
    finally:
        await z.close()
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.peer
@requires_ztest
async def test_search_and_present_survives_a_target_restart(own_ztest):
    """The server goes away; the retry reconnects (connect retries while the port
    is closed) and succeeds once the server is back about a second later."""
    z = await Z3950Client.connect(HOST, own_ztest.port, timeout=2.0, connect_retries=6, retry_backoff=0.1,
                                  retry_backoff_max=0.4)
    try:
        assert await z.search("@attr 1=4 2") == 2
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, own_ztest.stop)   # listener and session process, by PID

        def restart():
            time.sleep(1.0)
            own_ztest.start()

        restarted = loop.run_in_executor(None, restart)
        t0 = time.monotonic()
        result = await z.search_and_present("@attr 1=4 3", 3, attempts=3)
        elapsed = time.monotonic() - t0
        await restarted
        assert result.hits == 3 and len(result.records) == 3 and result.attempts == 2
        assert z.connect_attempts > 1                      # refused while the port was closed
        assert 1.0 <= elapsed < 4.0
    finally:
        await z.close()


@pytest.mark.peer
@requires_ztest
async def test_connect_retries_until_the_server_comes_up(tmp_path):
    port = free_port()
    peer = ztest_peer.ZtestPeer(tmp_path / "late", port)
    loop = asyncio.get_running_loop()

    def start_late():
        time.sleep(1.0)
        peer.start()

    try:
        starting = loop.run_in_executor(None, start_late)
        t0 = time.monotonic()
        z = await Z3950Client.connect(HOST, port, timeout=2.0, connect_retries=6, retry_backoff=0.1,
                                      retry_backoff_max=0.4)
        elapsed = time.monotonic() - t0
        await starting
        assert z.usable and z.connect_attempts > 1 and elapsed >= 0.9
        assert await z.search("@attr 1=4 1") == 1
        await z.close()
    finally:
        peer.stop()


# =========================================================================== no server / fake servers

async def test_connection_refused_after_the_configured_retries():
    port = free_port()                                   # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(Z3950ConnectionError) as err:
        await Z3950Client.connect(HOST, port, timeout=2, connect_retries=2, retry_backoff=0.1)
    elapsed = time.monotonic() - t0
    assert err.value.attempts == 3
    assert elapsed >= 0.3                                # it backed off 0.1 + 0.2 between attempts
    assert "refused" in str(err.value).lower()


async def test_no_retries_means_one_attempt():
    t0 = time.monotonic()
    with pytest.raises(Z3950ConnectionError) as err:
        await Z3950Client.connect(HOST, free_port(), connect_retries=0)
    assert err.value.attempts == 1
    assert time.monotonic() - t0 < 30                    # a bound on waiting: no backoff at all


class FakeTarget:
    """A tiny asyncio Z39.50 'target' whose behaviour is a coroutine
    ``behave(conn)``; it records the APDUs the client sent."""

    def __init__(self, behave):
        self.behave = behave
        self.connections = 0
        self.received: list = []
        self.raw = bytearray()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader, writer):
        self.connections += 1
        conn = FakeConnection(self, reader, writer)
        try:
            await self.behave(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class FakeConnection:
    def __init__(self, target, reader, writer):
        self.target, self.reader, self.writer = target, reader, writer
        self.session = Session(TARGET)

    async def recv(self):
        while True:
            event = self.session.next_event()
            if isinstance(event, NeedData):
                data = await self.reader.read(65536)
                self.target.raw += data
                self.session.receive_data(data)
                continue
            if not isinstance(event, ConnectionClosed):
                self.target.received.append(event)
            return event

    async def send(self, pdu) -> None:
        self.writer.write(self.session.send(pdu))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def accept_init(self) -> None:
        request = await self.recv()
        assert isinstance(request, P.InitializeRequest)
        await self.send(P.InitializeResponse(result=True, options=frozenset({"search", "present"}),
                                             reference_id=request.reference_id, implementation_name="fake"))

    async def drain_until_eof(self, limit: float = 3.0) -> None:
        try:
            async with asyncio.timeout(limit):
                while data := await self.reader.read(65536):
                    self.target.raw += data
        except TimeoutError:
            pass


def apdus_in(raw: bytes) -> list:
    return [P.decode_pdu(frame) for frame in P.apdu_framer().feed(bytes(raw))]


async def test_garbage_from_the_target_is_a_protocol_error():
    async def behave(conn):
        conn.target.raw += await conn.reader.read(65536)   # the Init request
        await conn.send_raw(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await conn.drain_until_eof()

    async with FakeTarget(behave) as fake:
        t0 = time.monotonic()
        with pytest.raises(Z3950ProtocolError):
            await Z3950Client.connect(HOST, fake.port, timeout=60, connect_retries=3)
        assert time.monotonic() - t0 < 30                  # answered at once, not after the 60 s timeout
        await asyncio.sleep(0.1)
    assert fake.connections == 1                           # protocol errors are not retried
    sent = apdus_in(fake.raw)
    assert isinstance(sent[0], P.InitializeRequest)
    assert isinstance(sent[-1], P.Close) and sent[-1].close_reason == 6     # protocolError


async def test_an_apdu_of_the_wrong_kind_is_a_protocol_error():
    async def behave(conn):
        await conn.accept_init()
        request = await conn.recv()
        assert isinstance(request, P.SearchRequest)
        # a valid APDU, but not the answer to a Search
        await conn.send_raw(P.encode_pdu(P.PresentResponse(number_of_records_returned=0,
                                                           reference_id=request.reference_id)))
        await conn.drain_until_eof()

    async with FakeTarget(behave) as fake:
        z = await Z3950Client.connect(HOST, fake.port, timeout=60)
        assert z.implementation_name == "fake" and z.charset is None
        t0 = time.monotonic()
        with pytest.raises(Z3950ProtocolError, match="does not answer"):
            await z.search("@attr 1=4 x")
        assert time.monotonic() - t0 < 30                  # at once, not after the 60 s timeout
        assert not z.usable
        with pytest.raises(Z3950ConnectionError):
            await z.search("@attr 1=4 x")
        await z.close()
        await asyncio.sleep(0.1)
    last = apdus_in(fake.raw)[-1]
    assert isinstance(last, P.Close) and last.close_reason == 6       # protocolError


async def test_an_unsolicited_init_response_is_a_protocol_error():
    async def behave(conn):
        await conn.accept_init()
        await conn.recv()
        await conn.send_raw(P.encode_pdu(P.InitializeResponse(result=True)))
        await conn.drain_until_eof()

    async with FakeTarget(behave) as fake:
        async with Z3950Client.connect(HOST, fake.port, timeout=5) as z:
            with pytest.raises(Z3950ProtocolError):
                await z.search("@attr 1=4 x")


async def test_a_close_from_the_target_is_reported_and_answered():
    async def behave(conn):
        await conn.accept_init()
        await conn.recv()
        await conn.send(P.Close(close_reason=1, diagnostic_information="going down for maintenance"))
        await conn.recv()                                  # the client's Close in reply

    async with FakeTarget(behave) as fake:
        z = await Z3950Client.connect(HOST, fake.port, timeout=5)
        with pytest.raises(Z3950Closed) as err:
            await z.search("@attr 1=4 x")
        assert err.value.reason == 1 and err.value.reason_name == "shutdown"
        assert err.value.message == "going down for maintenance"
        assert not z.usable
        await z.close()
        await asyncio.sleep(0.1)
    assert isinstance(fake.received[-1], P.Close)


async def test_a_target_that_drops_the_connection():
    async def behave(conn):
        await conn.accept_init()
        await conn.recv()                                  # then hang up without a word

    async with FakeTarget(behave) as fake:
        async with Z3950Client.connect(HOST, fake.port, timeout=5) as z:
            with pytest.raises(Z3950ConnectionError, match="closed the connection"):
                await z.search("@attr 1=4 x")


async def test_a_silent_target_times_out_the_init_and_is_retried():
    async def behave(conn):
        await conn.drain_until_eof(10)

    async with FakeTarget(behave) as fake:
        t0 = time.monotonic()
        with pytest.raises(Z3950Timeout) as err:
            await Z3950Client.connect(HOST, fake.port, timeout=0.4, connect_retries=1, retry_backoff=0.1)
        elapsed = time.monotonic() - t0
    assert err.value.attempts == 2 and fake.connections == 2
    assert 0.9 <= elapsed < 1.9


async def test_a_rejected_init_is_not_retried():
    async def behave(conn):
        request = await conn.recv()
        assert request.id_authentication == P.IdPass(None, "alice", "wrong")
        await conn.send(P.InitializeResponse(result=False, implementation_name="fake"))
        await conn.drain_until_eof(1)

    async with FakeTarget(behave) as fake:
        with pytest.raises(Z3950InitRejected):
            await Z3950Client.connect(HOST, fake.port, user="alice", password="wrong", connect_retries=3)
    assert fake.connections == 1


async def test_surrogate_diagnostics_stay_in_place_and_present_continues():
    usmarc = R.encode_record(pymarc_record("one"), R.USMARC)

    async def behave(conn):
        await conn.accept_init()
        search = await conn.recv()
        await conn.send(P.SearchResponse(result_count=3, reference_id=search.reference_id))
        first = await conn.recv()
        assert (first.start_point, first.number_of_records) == (1, 3)
        await conn.send(P.PresentResponse(
            number_of_records_returned=2, next_result_set_position=3, present_status=1,
            records=(P.NamePlusRecord("Default", record=usmarc),
                     P.NamePlusRecord("Default", diagnostic=P.Diagnostic(14, "gone"))),
            reference_id=first.reference_id))
        second = await conn.recv()
        assert (second.start_point, second.number_of_records) == (3, 1)
        await conn.send(P.PresentResponse(number_of_records_returned=1, next_result_set_position=0,
                                          records=(P.NamePlusRecord("Default", record=usmarc),),
                                          reference_id=second.reference_id))
        await conn.recv()
        await conn.send(P.Close(0))

    async with FakeTarget(behave) as fake:
        async with Z3950Client.connect(HOST, fake.port, timeout=5) as z:
            assert await z.search("@attr 1=4 x") == 3
            records = await z.present(1, 3)
    assert [type(r) for r in records] == [RetrievedRecord, P.Diagnostic, RetrievedRecord]
    assert records[1].condition == 14 and records[0].marc["245"]["a"] == "one"
    assert fake.connections == 1


def pymarc_record(title: str) -> pymarc.Record:
    rec = pymarc.Record(force_utf8=True, leader="00000nam a2200000 a 4500")
    rec.add_field(Field(tag="001", data="x1"))
    rec.add_field(Field(tag="245", indicators=Indicators("0", "0"), subfields=[Subfield("a", title)]))
    return rec


def test_sort_key_forms():
    assert sort_key("1=4 <") == P.SortKeySpec(attributes=(rpn.AttributeElement(1, 4),), attribute_set=rpn.BIB1,
                                             relation=0, case_sensitivity=1)
    assert sort_key(("1=31", ">")).relation == 1
    spec = sort_key(("1=4 4=1", "ds"))
    assert spec.attributes == (rpn.AttributeElement(1, 4), rpn.AttributeElement(4, 1))
    assert (spec.relation, spec.case_sensitivity) == (1, 0)
    assert sort_key(("title", ">")) == P.SortKeySpec(sort_field="title", relation=1, case_sensitivity=1)
    with pytest.raises(ValueError):
        sort_key(("1=4", "x"))
    with pytest.raises(ValueError):
        sort_key("")

