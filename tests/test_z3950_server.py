"""The Z39.50 target (gateway/z3950_server.py) on the demo catalog.

* Scripted sessions of the real clients, yaz-client and zoomsh (Debian yaz),
  on both backends, asserting on what they print.
* The same target driven APDU by APDU through the project's own sans-I/O
  session (z3950/session.py) for what the clients cannot script: piggy-backed
  records, message-size cuts, limits, malformed and oversized BER, timeouts.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gateway.z3950_server import Z3950Settings
from live_server import Server
from test_z3950_ber import mutate
from z3950 import charneg, rpn
from z3950 import pdu as P
from z3950 import records as R
from z3950.ber import UNIVERSAL, BERError, decode_all, enc_explicit, enc_oid, enc_seq
from z3950.session import ORIGIN, NeedData, Session

needs_yaz = pytest.mark.skipif(shutil.which("yaz-client") is None or shutil.which("zoomsh") is None,
                               reason="yaz-client/zoomsh not installed (apt-get install yaz)")


# --------------------------------------------------------------------------- real clients

def yaz(server, tmp_path, lines: list[str], charset: bool = True) -> str:
    cmds = tmp_path / "session.cmds"
    head = ["charset UTF-8"] if charset else []
    cmds.write_text("\n".join([*head, f"open {server.z3950}", *lines, "quit"]) + "\n", encoding="utf-8")
    out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, timeout=60, text=True,
                         stdin=subprocess.DEVNULL)
    return out.stdout + out.stderr


def hits(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"Number of hits: (\d+)", output)]


@needs_yaz
@pytest.mark.peer
def test_yaz_client_find_in_pqf(any_demo_server, tmp_path):
    out = yaz(any_demo_server, tmp_path, [
        "find @attr 1=4 図書館",                                   # kanji title, substring semantics
        "find @attr 1=4 としょかん",                               # hiragana finds the katakana readings
        "find @attr 1=1003 夏目",                                 # author
        "find @attr 1=21 図書館",                                 # subject
        "find @attr 1=7 978-4-00-431001-3",                       # ISBN, hyphenated
        "find @attr 1=4 @attr 5=1 introduc",                      # right truncation
        'find @attr 1=4 @attr 4=1 "information retrieval"',       # phrase
        "find @and @attr 1=4 introduction @attr 1=1003 manning",
        "find @or @attr 1=4 algorithms @attr 1=4 indexing",
        "find @not @attr 1=4 introduction @attr 1=4 algorithms",
        "find @attr 1=31 @attr 2=5 2005",                         # date > 2005
        "find @attr 1=4 @attr 3=1 @attr 4=1 @attr 6=3 \"library science basics\"",   # Bath exact title
    ])
    assert "Accepted character set : UTF-8" in out, out
    assert "Name   : unioncat union-catalog gateway" in out
    # the same counts as the equivalent CQL over SRU (dc.title=図書館, ... dc.date>2005, dc.title==...)
    assert hits(out) == [3, 3, 1, 3, 1, 2, 1, 1, 2, 1, 8, 1], out


@needs_yaz
@pytest.mark.peer
def test_yaz_client_unsupported_attribute_gives_its_bib1_diagnostic(demo_server, tmp_path):
    out = yaz(demo_server, tmp_path, [
        "find @attr 1=9999 x", "find @attr 2=100 @attr 1=4 x", "find @attrset exp1 @attr 1=1 x",
        "find @attr 5=102 @attr 1=4 x", "find @attr 1=4 図書館",
    ])
    assert "[114] Unsupported Use attribute -- v3 addinfo '9999'" in out, out
    assert re.search(r"\[117\] .*addinfo '100'", out), out
    assert re.search(r"\[121\] .*addinfo '1.2.840.10003.3.2'", out), out
    assert re.search(r"\[120\] .*addinfo '102'", out), out
    assert hits(out)[-1] == 3                                   # the session goes on


@needs_yaz
@pytest.mark.peer
def test_yaz_client_show_usmarc_xml_opac_sutrs(any_demo_server, tmp_path):
    out = yaz(any_demo_server, tmp_path, [
        "find @attr 1=4 図書館の歴史",
        "format usmarc", "show 1",
        "format xml", "show 1",
        "format opac", "show 1",
        "format sutrs", "show 1",
        "format usmarc", "elements B", "show 1",
        "elements Q", "show 1",
    ])
    blocks = out.split("Sent presentRequest")
    assert len(blocks) == 7, out
    usmarc, xml, opac, sutrs, brief, bad = blocks[1:]
    assert "Record type: USmarc" in usmarc and "245 10 $6 880-02 $a 図書館の歴史" in usmarc, usmarc
    assert "880 10 $6 245-02/$1 $a トショカン ノ レキシ" in usmarc
    assert "852    $a iizuka $b 中央図書館 $c 一般 $h 000.0 $p ii00000" in usmarc
    assert 'Record type: XML' in xml and '<subfield code="a">図書館の歴史</subfield>' in xml
    assert "Record type: OPAC" in opac and "nucCode: hiroshima-u" in opac and "callNumber: 000/0" in opac
    assert "localLocation: 中央図書館" in opac and "copyNumber: ii00000" in opac
    assert "Record type: SUTRS" in sutrs and "ISBN: 9784004310013" in sutrs
    assert "Holding: hiroshima-u" in sutrs
    assert "245 10 $6 880-02" in brief and "650" not in brief and "852    $a iizuka" in brief
    assert "[25] Specified element set name not valid" in bad and "addinfo 'Q'" in bad


@needs_yaz
@pytest.mark.peer
def test_yaz_client_scan_sort_delete_close(any_demo_server, tmp_path):
    out = yaz(any_demo_server, tmp_path, [
        "scan @attr 1=1003 yamada",
        "find @attr 1=4 introduction",
        "sort 1=4 >", "show 1+2",
        "sort 1=4 <", "show 1+2",
        "delete 1", "show 1",
        "close",
    ])
    scan = out[out.index("Received ScanResponse"):]
    assert re.search(r"^\* Yamada, Tarō \(1\)$", scan, re.M), scan
    sorted_desc, sorted_asc = out.split("Received SortResponse: status=success")[1:3]
    titles = lambda text: re.findall(r"245 10 \$a (.+)", text)   # noqa: E731
    assert titles(sorted_desc) == ["Introduction to information retrieval", "Introduction to algorithms"], out
    assert titles(sorted_asc) == ["Introduction to algorithms", "Introduction to information retrieval"], out
    assert "Got deleteResultSetResponse status=0" in out and "1 status=0" in out
    assert "[30] Specified result set does not exist -- v3 addinfo '1'" in out
    assert "Target has closed the association." in out and "Reason: finished" in out


@needs_yaz
@pytest.mark.peer
def test_yaz_client_databases_and_cql(demo_server, tmp_path):
    out = yaz(demo_server, tmp_path, [
        "find @attr 1=4 図書館",
        "base komae", "find @attr 1=4 図書館",
        "base nowhere", "find @attr 1=4 図書館",
        "base Default", "querytype cql", "find dc.title=図書館 and dc.date<2010",
        "find dc.title=toshokan sortby dc.date/sort.descending", "format usmarc", "show 1",
    ], charset=False)
    assert hits(out)[:2] == [3, 1], out
    assert "[235] Database does not exist -- v3 addinfo 'nowhere'" in out
    # as the same CQL over SRU; toshokan also finds iizuka's record read トショカン (issue 16)
    assert hits(out)[-2:] == [2, 3], out
    shown = out[out.index("Sent presentRequest"):]
    assert "245 10 $6 880-02 $a 図書館情報学入門" in shown and "$c 2015" in shown   # newest first


@needs_yaz
@pytest.mark.peer
def test_zoomsh_session(any_demo_server):
    out = subprocess.run(
        ["zoomsh", f"connect {any_demo_server.z3950}", "search @attr 1=4 図書館", "show 0 1",
         "set preferredRecordSyntax opac", "show 0 1", "scan @attr 1=1003 yamada",
         "search @attr 1=9999 x", "quit"],
        capture_output=True, timeout=60, text=True, stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    assert f"{any_demo_server.z3950}: 3 hits" in text, text
    assert "syntax=USmarc" in text and "syntax=OPAC" in text
    assert "<nucCode>" in text or "nucCode" in text
    assert re.search(r"yamada, taro|Yamada, Tarō", text, re.I), text
    assert "Unsupported Use attribute" in text and "(114)" in text or "114" in text


# --------------------------------------------------------------------------- raw APDUs

class RawClient:
    """A blocking origin over the project's own session; for checks the real
    clients cannot script."""

    def __init__(self, address: str, timeout: float = 10.0):
        host, port = address.split(":")[1:]
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.session = Session(ORIGIN, max_apdu=64 * 1024 * 1024)

    def send(self, pdu) -> None:
        self.sock.sendall(self.session.send(pdu))

    def receive(self):
        while True:
            event = self.session.next_event()
            if not isinstance(event, NeedData):
                return event
            self.session.receive_data(self.sock.recv(65536))

    def call(self, pdu):
        self.send(pdu)
        return self.receive()

    def init(self, **kw) -> P.InitializeResponse:
        return self.call(P.InitializeRequest(**kw))

    def read_close(self) -> P.Close | None:
        """What the target sends before dropping the connection (raw, no table)."""
        data = b""
        self.sock.settimeout(10)
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return P.decode_pdu(data) if data else None

    def close(self):
        self.sock.close()


def search(text: str, **kw) -> P.SearchRequest:
    return P.SearchRequest(rpn.parse_pqf(text), **kw)


@pytest.fixture
def raw(demo_server):
    c = RawClient(demo_server.z3950)
    assert c.init().result
    yield c
    c.close()


def test_piggybacked_small_and_medium_sets(raw):
    r = raw.call(search("@attr 1=4 図書館", small_set_upper_bound=5, small_set_element_set_names="B",
                        preferred_record_syntax=R.XML))
    assert (r.result_count, r.number_of_records_returned, r.next_result_set_position) == (3, 3, 4)
    texts = [R.decode_external(n.record).text for n in r.records]
    assert all("図書館" in t and "<record" in t for t in texts)
    r = raw.call(search("@attr 1=4 図書館", small_set_upper_bound=1, large_set_lower_bound=10,
                        medium_set_present_number=2))
    assert (r.result_count, r.number_of_records_returned) == (3, 2)
    assert R.decode_external(r.records[0].record).marc is not None
    r = raw.call(search("@attr 1=4 図書館", large_set_lower_bound=2))
    assert r.records is None and r.result_count == 3


def test_present_ranges_and_errors(raw):
    assert raw.call(search("@attr 1=31 @attr 2=4 1900")).result_count == 13     # = dc.date>=1900
    r = raw.call(P.PresentRequest("default", 3, 4, preferred_record_syntax=R.SUTRS))
    assert (r.number_of_records_returned, r.next_result_set_position, r.present_status) == (4, 7, 0)
    assert all(R.decode_external(n.record).text.startswith("Title:") for n in r.records)
    r = raw.call(P.PresentRequest("default", 999, 1))
    assert r.present_status == 5 and r.diagnostics[0].condition == 13
    r = raw.call(P.PresentRequest("nope", 1, 1))
    assert r.diagnostics[0].condition == 30 and r.diagnostics[0].addinfo == "nope"
    r = raw.call(P.PresentRequest("default", 1, 1, preferred_record_syntax="1.2.840.10003.5.1000"))
    assert r.diagnostics[0].condition == 239


def test_records_are_cut_at_the_message_size(demo_server):
    c = RawClient(demo_server.z3950)
    resp = c.init(preferred_message_size=1500, exceptional_record_size=100_000)
    assert resp.preferred_message_size == 4096      # the target's floor
    c.call(search("@attr 1=31 @attr 2=4 1900"))
    r = c.call(P.PresentRequest("default", 1, 20, preferred_record_syntax=R.XML))
    assert r.present_status == 2 and 1 <= r.number_of_records_returned < 20
    assert sum(len(n.record) if isinstance(n.record, bytes) else 0 for n in r.records) <= 4096 or \
        r.number_of_records_returned == 1
    c.close()


def test_named_result_sets_replace_and_references(raw):
    assert raw.call(search("@attr 1=4 introduction", result_set_name="a")).result_count == 2
    r = raw.call(search("@attr 1=4 x", result_set_name="a", replace_indicator=False))
    assert not r.search_status and r.diagnostics[0].condition == 21
    r = raw.call(search("@and @set a @attr 1=1003 manning", result_set_name="b"))
    assert r.result_count == 1
    r = raw.call(P.DeleteResultSetRequest(1))
    assert r.delete_operation_status == 0
    assert raw.call(P.PresentRequest("b", 1, 1)).diagnostics[0].condition == 30


def test_unknown_database_and_query_type(raw):
    r = raw.call(search("@attr 1=4 x", database_names=("Nowhere",)))
    assert r.diagnostics[0] == P.Diagnostic(235, "Nowhere")
    from z3950.ber import decode_all, enc_explicit, enc_octets
    other = P.OtherQuery(2, decode_all(enc_explicit(2, enc_octets(4, b"x", 0))))
    r = raw.call(P.SearchRequest(other))
    assert r.diagnostics[0].condition == 107


def test_scan_positions_and_diagnostics(raw):
    apt = rpn.parse_pqf_scan("@attr 1=4 toshokan")[1]
    r = raw.call(P.ScanRequest(apt, number_of_terms_requested=5, preferred_position=3))
    assert r.scan_status == 0 and r.number_of_entries_returned == 5
    assert r.position_of_term == 3
    assert r.entries[2].term.startswith("toshokan")
    assert all(e.occurrences >= 1 for e in r.entries)
    r = raw.call(P.ScanRequest(rpn.parse_pqf_scan("@attr 1=9999 x")[1]))
    assert r.scan_status == 6 and r.diagnostics[0].condition == 114


def test_sort_errors(raw):
    raw.call(search("@attr 1=4 introduction"))
    r = raw.call(P.SortRequest(("nope",), "x", (P.SortKeySpec(sort_field="title"),)))
    assert r.sort_status == 2 and r.diagnostics[0].condition == 30
    r = raw.call(P.SortRequest(("default",), "x", (P.SortKeySpec(sort_field="nonsense"),)))
    assert r.sort_status == 2 and r.diagnostics[0].condition == 207
    r = raw.call(P.SortRequest(("default",), "x", (P.SortKeySpec(sort_field="dc.date", relation=1),)))
    assert r.sort_status == 0 and r.result_count == 2


def test_malformed_ber_closes_only_that_session(demo_server):
    good = RawClient(demo_server.z3950)
    assert good.init().result
    bad = RawClient(demo_server.z3950)
    assert bad.init().result
    bad.sock.sendall(b"\xb6\x05\x02\x01")                       # a searchRequest cut short, then garbage
    bad.sock.sendall(b"\xff\xff\xff\xff")
    close = bad.read_close()
    assert isinstance(close, P.Close) and close.close_reason == 6
    assert good.call(search("@attr 1=4 図書館")).result_count == 3
    good.close()


def test_oversized_apdu_is_refused_at_its_length(demo_server):
    c = RawClient(demo_server.z3950)
    c.sock.sendall(b"\xb4\x84\x10\x00\x00\x00")                 # Init of 256 MB announced
    close = c.read_close()
    assert isinstance(close, P.Close) and close.close_reason == 4


def test_not_z3950_at_all(demo_server):
    c = RawClient(demo_server.z3950)
    c.sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    close = c.read_close()
    assert isinstance(close, P.Close) and close.close_reason == 6


@pytest.fixture(scope="module")
def strict_server(demo_server):
    s = Server(demo_server.data_dir, z3950_settings=Z3950Settings(
        idle_timeout=1.0, init_timeout=1.0, max_sessions=2, max_result_sets=2, evict_result_sets=False,
        credentials={"staff": "s3cret"}))
    yield s
    s.stop()


def test_authentication(strict_server):
    c = RawClient(strict_server.z3950)
    assert not c.init(id_authentication=P.IdPass(None, "staff", "wrong")).result
    c.close()
    c = RawClient(strict_server.z3950)
    assert c.init(id_authentication=P.IdPass(None, "staff", "s3cret")).result
    c.close()
    c = RawClient(strict_server.z3950)
    assert c.init(id_authentication=P.IdOpen("staff/s3cret")).result
    c.close()


def test_idle_and_init_timeouts(strict_server):
    c = RawClient(strict_server.z3950)
    t0 = time.monotonic()
    close = c.read_close()                                      # never sends Init
    assert isinstance(close, P.Close) and close.close_reason == 7 and time.monotonic() - t0 < 30
    c = RawClient(strict_server.z3950)
    assert c.init(id_authentication=P.IdOpen("staff/s3cret")).result
    c.sock.sendall(P.encode_pdu(search("@attr 1=4 x"))[:3])     # starts a request, never finishes it
    t0 = time.monotonic()
    close = c.read_close()
    assert isinstance(close, P.Close) and close.close_reason == 7 and time.monotonic() - t0 < 30


def test_session_and_result_set_limits(strict_server):
    a, b = RawClient(strict_server.z3950), RawClient(strict_server.z3950)
    for c in (a, b):
        assert c.init(id_authentication=P.IdOpen("staff/s3cret")).result
    third = RawClient(strict_server.z3950)
    close = third.read_close()
    assert isinstance(close, P.Close) and close.close_reason == 4
    for name in ("1", "2"):
        assert a.call(search("@attr 1=4 図書館", result_set_name=name)).search_status
    r = a.call(search("@attr 1=4 図書館", result_set_name="3"))
    assert r.diagnostics[0].condition == 112
    assert a.call(search("@attr 1=4 x", result_set_name="2")).search_status     # replacing is fine
    a.close()
    b.close()


def test_a_failing_handler_answers_with_a_diagnostic(demo_server, monkeypatch):
    """A bug in one operation costs that request a diagnostic (100), not the association."""
    from gateway import z3950_server

    def broken(*a, **k):
        raise RuntimeError("simulated bug")
    monkeypatch.setattr(z3950_server.R, "encode_record", broken)
    monkeypatch.setattr(z3950_server.R, "usmarc_external", broken)     # the stored-ISO 2709 fast path
    c = RawClient(demo_server.z3950)
    assert c.init().result
    c.call(search("@attr 1=4 図書館"))
    r = c.call(P.PresentRequest("default", 1, 1))
    assert r.present_status == 5 and r.diagnostics[0].condition == 100
    monkeypatch.undo()
    assert c.call(P.PresentRequest("default", 1, 1)).number_of_records_returned == 1
    c.close()


def test_live_fuzz_keeps_the_target_serving(demo_server, clean_log):
    """Mutated APDUs of every kind sent to the running target, one association
    each: the target answers or closes, and a well-behaved client is served
    throughout."""
    import random

    from test_z3950_session import _apdu_corpus

    rng = random.Random(7)
    corpus = _apdu_corpus()[1:-1]                   # requests after a proper Init
    good = RawClient(demo_server.z3950)
    assert good.init().result
    for i in range(300):
        c = RawClient(demo_server.z3950, timeout=10)
        assert c.init().result
        c.sock.sendall(mutate(rng, rng.choice(corpus), corpus))
        c.sock.shutdown(socket.SHUT_WR)             # no more input: the target must not wait for more
        c.sock.settimeout(10)
        while c.sock.recv(65536):                   # answered and/or closed, never hangs
            pass
        c.close()
        if i % 50 == 0:
            assert good.call(search("@attr 1=4 図書館")).result_count == 3
    assert good.call(search("@attr 1=4 図書館")).result_count == 3
    good.close()


async def test_many_concurrent_associations_with_our_client(demo_server):
    """60 associations at once (the project's own client against its own target):
    each gets its own result sets and the right records."""
    import asyncio

    from connectors.z3950_client import Z3950Client

    host, port = demo_server.z3950.split(":")[1:]
    queries = [("@attr 1=4 図書館", 3), ("@attr 1=1003 manning", 1), ("@attr 1=4 @attr 5=1 introduc", 2)]

    async def one(i: int):
        query, expected = queries[i % len(queries)]
        async with Z3950Client.connect(host, int(port), timeout=30) as z:
            assert z.charset == "UTF-8"
            assert await z.search(query, result_set=f"s{i}") == expected
            records = await z.present(1, expected, result_set=f"s{i}", syntax="opac")
            assert len(records) == expected and all(r.opac and r.opac.holdings for r in records)
            return i

    done = await asyncio.gather(*(one(i) for i in range(60)))
    assert sorted(done) == list(range(60))


def test_present_beyond_the_per_request_limit_is_partial(raw, monkeypatch):
    from gateway import z3950_server
    monkeypatch.setattr(z3950_server, "MAX_PRESENT", 3)
    raw.call(search("@attr 1=31 @attr 2=4 1900"))
    r = raw.call(P.PresentRequest("default", 1, 5))
    assert (r.number_of_records_returned, r.present_status, r.next_result_set_position) == (3, 4, 4)
    r = raw.call(P.PresentRequest("default", 4, 3))
    assert (r.number_of_records_returned, r.present_status) == (3, 0)


def _procmon():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import procmon
    return procmon


@pytest.mark.parametrize("loop,workers", [("uvloop", 2), ("asyncio", 1)])
def test_unioncat_serve_process_answers_z3950(demo_server, loop, workers):
    """`unioncat serve` as its own process, on uvloop (the default when installed)
    and on asyncio's loop, with worker processes sharing the Z39.50 port: it says
    which loop it runs; a search + USMARC present (the stored-ISO 2709 fast path)
    give the same records as the in-process server; with 2 processes both answer
    associations, and the worker ends with its parent."""
    pytest.importorskip("uvloop")
    import signal
    import sys

    from live_server import free_port

    http, z = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(demo_server.data_dir),
                             "--port", str(http), "--z3950-port", str(z), "--event-loop", loop,
                             "--z3950-workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procmon = _procmon()
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            kids = procmon.children(proc.pid)
            try:
                if len(kids) == workers - 1:
                    c = RawClient(f"tcp:127.0.0.1:{z}")
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        while procmon.listening_sockets(z) < workers:     # every process listens (a loaded machine is slow)
            assert proc.poll() is None and time.monotonic() < deadline + 60, "a worker did not start listening"
            time.sleep(0.1)
        assert c.init().result
        hits = c.call(search("@attr 1=4 図書館")).result_count
        ours = c.call(P.PresentRequest("default", 1, hits, preferred_record_syntax=R.USMARC))
        c.close()
        ref = RawClient(demo_server.z3950)
        ref.init()
        assert ref.call(search("@attr 1=4 図書館")).result_count == hits > 1
        theirs = ref.call(P.PresentRequest("default", 1, hits, preferred_record_syntax=R.USMARC))
        ref.close()
        assert [r.record for r in ours.records] == [r.record for r in theirs.records]
        added = '@attr 1=local.added @attr 2=4 "iizuka 2000-01-01"'     # new arrivals: the record store
        ref = RawClient(demo_server.z3950)
        ref.init()
        arrivals = ref.call(search(added)).result_count
        ref.close()
        assert arrivals > 0
        if workers > 1:
            def own_cpu():      # the parent's tree includes its worker
                kid = procmon.tree_cpu_s(kids[0])
                return {proc.pid: procmon.tree_cpu_s(proc.pid) - kid, kids[0]: kid}
            before = own_cpu()
            for _ in range(40):
                c = RawClient(f"tcp:127.0.0.1:{z}")
                assert c.init().result
                assert c.call(search("@attr 1=4 図書館")).result_count == hits
                assert c.call(search(added)).result_count == arrivals    # whichever process answers
                c.call(P.PresentRequest("default", 1, hits, preferred_record_syntax=R.USMARC))
                c.close()
            after = own_cpu()
            busy = [pid for pid, t in before.items() if after[pid] > t]
            assert len(busy) == 2, (before, busy)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert f"event loop: {loop}" in out
    deadline = time.monotonic() + 5
    while kids and any(os.path.exists(f"/proc/{k}") and open(f"/proc/{k}/stat").read().split()[2] != "Z"
                       for k in kids):
        assert time.monotonic() < deadline, "a worker outlived its parent"
        time.sleep(0.1)


# --------------------------------------------------------------------------- what real clients found (issue 15)

@pytest.fixture
def clean_log(caplog):
    """Fails the test if the target logged an error or a traceback meanwhile."""
    caplog.set_level(logging.INFO)
    yield caplog
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in bad)


def _other_info(negotiation: bytes):
    ext = enc_seq(4, [enc_oid(6, charneg.CHARNEG_OID, UNIVERSAL), enc_explicit(0, negotiation)])
    data = enc_seq(201, [enc_seq(16, [ext], UNIVERSAL)])
    return decode_all(data, max_length=len(data))


MALFORMED_PROPOSALS = [
    enc_seq(1, [enc_seq(1, [enc_seq(2, [])])]),                       # iso10646 without encodingLevel
    enc_seq(1, [enc_seq(2, [b"\x1b\x02\xff\xfe"])]),                   # a language that is not UTF-8
    enc_seq(1, [b"\x83\x02\x01\x01"]),                                # recordsInSelectedCharSets of 2 octets
    enc_seq(1, [enc_seq(1, [b"\x82\x00"])]),                          # iso10646 primitive
]


@pytest.mark.parametrize("negotiation", MALFORMED_PROPOSALS)
def test_a_malformed_character_set_proposal_is_ignored_not_a_dropped_connection(demo_server, clean_log,
                                                                                negotiation):
    with pytest.raises(BERError):                                   # what used to escape as a traceback
        charneg.parse_proposal(_other_info(negotiation))
    c = RawClient(demo_server.z3950)
    r = c.init(options=frozenset({"search", "present", "negotiationModel"}), other_info=_other_info(negotiation))
    assert isinstance(r, P.InitializeResponse) and r.result
    assert charneg.parse_selection(r.other_info) is None              # nothing selected: no valid proposal
    assert c.call(search("@attr 1=4 図書館")).result_count == 3
    c.close()


def _valid_negotiation() -> bytes:
    return enc_seq(1, [enc_seq(1, [enc_seq(2, [enc_oid(2, "1.0.10646.1.0.8")]),
                                   enc_explicit(3, enc_seq(2, [enc_oid(6, charneg.YAZ_CHARSET_NAME_OID, UNIVERSAL),
                                                               b"\x81\x05UTF-8"]))]),
                       enc_seq(2, [b"\x1b\x03jpn"]), b"\x83\x01\xff"])


@hsettings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_parse_proposal_raises_only_ber_errors(rnd):
    """Mutated proposals: a Proposal, None, or BERError -- which the target
    answers by ignoring the proposal -- never another exception."""
    data = mutate(rnd, _valid_negotiation(), [_valid_negotiation()])
    try:
        info = _other_info(data)
    except BERError:
        return
    try:
        proposal = charneg.parse_proposal(info)
    except BERError:
        return
    assert proposal is None or isinstance(proposal, charneg.Proposal)


def test_re_init_on_an_open_association_starts_afresh(demo_server, clean_log):
    """A second Init (yaz-client's `init`) is accepted, as by Zebra and yaz-ztest;
    like Zebra, the association's result sets do not survive it."""
    c = RawClient(demo_server.z3950)
    assert c.init().result
    assert c.call(search("@attr 1=4 図書館", result_set_name="a")).result_count == 3
    r = c.init(preferred_message_size=8192)
    assert r.result and r.preferred_message_size == 8192
    assert c.call(P.PresentRequest("a", 1, 1)).diagnostics[0].condition == 30
    assert c.call(search("@attr 1=4 図書館", result_set_name="a")).result_count == 3
    c.close()


def test_a_rejected_re_init_ends_the_association(strict_server):
    c = RawClient(strict_server.z3950)
    assert c.init(id_authentication=P.IdOpen("staff/s3cret")).result
    assert not c.init(id_authentication=P.IdOpen("staff/wrong")).result
    assert c.sock.recv(100) == b""                                   # closed after the rejection
    c.close()


@needs_yaz
@pytest.mark.peer
def test_yaz_client_re_init(demo_server, tmp_path):
    out = yaz(demo_server, tmp_path, ["find @attr 1=4 図書館", "init", "find @attr 1=4 図書館", "show 1"])
    assert hits(out) == [3, 3] and "Record type: USmarc" in out, out
    assert "protocolError" not in out


@needs_yaz
@pytest.mark.peer
def test_yaz_client_can_search_more_than_fifty_times(demo_server, tmp_path, clean_log):
    """yaz-client names its result sets 1, 2, 3 ...: beyond the 50 an association
    keeps, the least recently used is dropped (Bib-1 27 when it is asked for),
    not every further search refused with 112."""
    out = yaz(demo_server, tmp_path, ["find @attr 1=4 図書館"] * 60 + ["show 1"])
    assert hits(out) == [3] * 60, out[-2000:]
    assert "Record type: USmarc" in out and "[112]" not in out


def test_evicted_sets_answer_27_and_the_limit_can_refuse_instead(demo_server, strict_server):
    c = RawClient(demo_server.z3950)
    assert c.init().result
    for i in range(52):
        assert c.call(search("@attr 1=4 図書館", result_set_name=f"s{i}")).search_status
    r = c.call(P.PresentRequest("s0", 1, 1))
    assert (r.diagnostics[0].condition, r.diagnostics[0].addinfo) == (27, "s0")
    assert c.call(P.PresentRequest("s51", 1, 1)).number_of_records_returned == 1
    assert c.call(P.PresentRequest("nope", 1, 1)).diagnostics[0].condition == 30
    r = c.call(P.SortRequest(("s1",), "x", (P.SortKeySpec(sort_field="title"),)))
    assert r.diagnostics[0].condition == 27
    c.close()


@needs_yaz
@pytest.mark.peer
def test_yaz_client_element_set_names_choose_the_xml_schema(any_demo_server, tmp_path):
    """`format xml` with `elements marcxml|dc|mods`, as YAZ and Zebra clients ask
    for an XML schema; a schema name with a non-XML syntax stays 25, as in Zebra."""
    out = yaz(any_demo_server, tmp_path, [
        "find @attr 1=4 図書館の歴史", "format xml",
        "elements marcxml", "show 1", "elements dc", "show 1", "elements mods", "show 1",
        "elements info:srw/schema/1/dc-v1.1", "show 1",
        "format usmarc", "elements dc", "show 1",
    ])
    blocks = out.split("Sent presentRequest")[1:]
    assert len(blocks) == 5, out
    marcxml, dc, mods, dc_uri, usmarc_dc = blocks
    assert '<record xmlns="http://www.loc.gov/MARC21/slim"' in marcxml and "図書館の歴史" in marcxml
    assert "http://purl.org/dc/elements/1.1/" in dc and "<dc:title>図書館の歴史" in dc, dc
    assert "http://www.loc.gov/mods/v3" in mods and "図書館の歴史" in mods, mods
    assert "<dc:title>図書館の歴史" in dc_uri
    assert "[25]" in usmarc_dc and "addinfo 'dc'" in usmarc_dc


def test_element_set_names_over_raw_apdus(raw):
    raw.call(search("@attr 1=4 図書館の歴史"))
    for esn, marker in [("dc", b"http://purl.org/dc/elements/1.1/"), ("mods", b"http://www.loc.gov/mods/v3"),
                        ("MARCXML", b"http://www.loc.gov/MARC21/slim")]:
        r = raw.call(P.PresentRequest("default", 1, 1, preferred_record_syntax=R.XML, element_set_names=esn))
        assert r.number_of_records_returned == 1 and marker in R.decode_external(r.records[0].record).text.encode()
    r = raw.call(P.PresentRequest("default", 1, 1, preferred_record_syntax=R.SUTRS, element_set_names="mods"))
    assert r.diagnostics[0].condition == 25
    r = raw.call(P.PresentRequest("default", 1, 1, preferred_record_syntax=R.XML, element_set_names="json"))
    assert r.diagnostics[0].condition == 25                           # not an XML schema


def test_repeated_attribute_types_on_the_wire_get_bib1_123(raw):
    """Two use attributes in one list (a client that sends them; yaz-client and
    zoomsh keep only the last one written, see docs/z3950.md): Bib-1 123 naming
    both, rather than a guess which one was meant."""
    A = rpn.AttributeElement
    query = rpn.RPNQuery(rpn.BIB1, rpn.APT((A(1, 4), A(1, 1003)), "introduction"))
    r = raw.call(P.SearchRequest(query))
    assert (r.diagnostics[0].condition, r.diagnostics[0].addinfo) == (123, "type 1 given twice (4 and 1003)")


@needs_yaz
@pytest.mark.peer
def test_yaz_client_repeated_attribute_types_keep_the_last_one_written(demo_server, tmp_path):
    """yaz-client resolves `@attr 1=4 @attr 1=1003 x` itself (the last one written
    wins, YAZ's PQF rule; Zebra sees the same): the target gets one use attribute."""
    out = yaz(demo_server, tmp_path, [
        "find @attr 1=4 @attr 1=1003 manning", "find @attr 1=1003 manning", "find @attr 1=4 manning",
        "find @attr 1=1003 @attr 1=4 introduction", "find @attr 1=4 introduction"])
    assert hits(out) == [1, 1, 0, 2, 2], out


@needs_yaz
@pytest.mark.peer
def test_a_query_of_a_hundred_terms(any_demo_server, tmp_path, clean_log):
    """93 or more terms used to overflow the index's query parser (Bib-1 100)."""
    out = yaz(any_demo_server, tmp_path, ["find " + "@and " * 95 + "@attr 1=4 図書館 " * 96,
                                          "find " + "@or " * 95 + "@attr 1=4 図書館 " * 96,
                                          "querytype cql", "find " + " and ".join(["dc.title=図書館"] * 200)])
    assert hits(out) == [3, 3, 3], out


@needs_yaz
@pytest.mark.peer
def test_yaz_client_scans_titles_by_reading(any_demo_server, tmp_path):
    out = yaz(any_demo_server, tmp_path, ["scan @attr 1=4 と"])
    scan = out[out.index("Received ScanResponse"):]
    # a kana term walks the title headings by reading, in 五十音 order (issue 16): としょかんじょうほう…,
    # としょかんのれきし, にほんのとしょかん, ひろしまのれきし…, わがはいは…; the kanji heading is shown
    got = re.findall(r"^[* ] (.+) \((\d+)\)$", scan, re.M)
    assert [t for t, _ in got] == ["図書館情報学入門", "図書館の歴史", "日本の図書館", "広島の歴史と文化",
                                   "吾輩は猫である"], scan


def test_default_number_of_z3950_processes():
    """4 per CPU, at most 16 (more with --z3950-workers)."""
    from gateway.z3950_workers import default_workers
    assert [default_workers(n) for n in (1, 2, 3, 16, 64)] == [4, 8, 12, 16, 16]
    assert 1 <= default_workers() <= 16
