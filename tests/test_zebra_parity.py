"""The same records in a real zebrasrv (Debian idzebra-2.0) and in unioncat, asked
the same things by the same clients: where issue 15 said "as YAZ and Zebra do",
this is what Zebra does, checked.

* Repeated attribute types: yaz-client keeps the last one written before it
  sends the query, for both servers alike; over SRU x-pquery both servers
  apply YAZ's PQF rule alike.  Two values of one type really on the wire:
  Zebra silently uses the first, unioncat answers Bib-1 123 (a documented
  choice, docs/z3950.md).
* Re-Init on an open association: both accept it.
* ``format xml`` + ``elements marcxml``: both send MARCXML.
* A query of 96 terms: both answer it.
"""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from z3950 import pdu as P
from z3950 import rpn
from z3950.session import ORIGIN, NeedData, Session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("zebrasrv") is None or shutil.which("zebraidx") is None
                       or shutil.which("yaz-client") is None,
                       reason="zebrasrv/zebraidx/yaz-client not installed (apt-get install idzebra-2.0 yaz)"),
]


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    from test_z3950_client import write_marc
    return write_marc(tmp_path_factory.mktemp("books") / "books.mrc")


@pytest.fixture(scope="module")
def zebra(tmp_path_factory, books):
    import zebra as zebra_bench
    z = zebra_bench.ZebraSetup(tmp_path_factory.mktemp("zebra") / "run", variant="icu")
    try:
        z.index([books], timeout=120)
        z.start(wait=30)
        yield z
    finally:
        z.stop()


@pytest.fixture(scope="module")
def ours(tmp_path_factory, books):
    from indexers.ingest import ingest
    from live_server import Server
    d = tmp_path_factory.mktemp("ours")
    ingest(d, "iizuka", [books], quiet=True)
    s = Server(d)
    yield s
    s.stop()


def z3950_address(server) -> str:
    return f"tcp:127.0.0.1:{server.port}" if hasattr(server, "variant") else server.z3950


def yaz(address: str, tmp_path, lines: list[str]) -> str:
    cmds = tmp_path / "session.cmds"
    cmds.write_text("\n".join([f"open {address}", *lines, "quit"]) + "\n", encoding="utf-8")
    out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, timeout=60, text=True,
                         stdin=subprocess.DEVNULL)
    return out.stdout + out.stderr


def hits(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"Number of hits: (\d+)", output)]


def raw_search(address: str, query: rpn.RPNQuery) -> P.SearchResponse:
    host, port = address.split(":")[1:]
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        session = Session(ORIGIN)

        def call(pdu):
            sock.sendall(session.send(pdu))
            while True:
                event = session.next_event()
                if not isinstance(event, NeedData):
                    return event
                session.receive_data(sock.recv(65536))
        assert call(P.InitializeRequest()).result
        return call(P.SearchRequest(query, database_names=("Default",)))


def sru_count(base: str, **params) -> int:
    with urllib.request.urlopen(base + "?" + urllib.parse.urlencode(params), timeout=30) as r:
        body = r.read().decode()
    m = re.search(r"numberOfRecords>(\d+)<", body)
    assert m, body[:500]
    return int(m.group(1))


@pytest.fixture(params=["zebra", "ours"])
def target(request, zebra, ours):
    return z3950_address(zebra if request.param == "zebra" else ours)


def test_yaz_client_resolves_repeated_attribute_types_before_either_server_sees_them(target, tmp_path):
    out = yaz(target, tmp_path, ["find @attr 1=4 @attr 1=1003 introduction",      # author wins: 0
                                 "find @attr 1=1003 @attr 1=4 introduction",      # title wins: 2
                                 "find @attr 1=4 introduction"])
    assert hits(out) == [0, 2, 2], out


def test_repeated_use_attributes_on_the_wire(zebra, ours):
    A = rpn.AttributeElement
    both = rpn.RPNQuery(rpn.BIB1, rpn.APT((A(1, 4), A(1, 1003)), "introduction"))
    assert raw_search(z3950_address(zebra), both).result_count == 2          # Zebra: the first one, silently
    r = raw_search(z3950_address(ours), both)
    assert (r.search_status, r.diagnostics[0].condition) == (False, 123)    # unioncat: says so


def test_x_pquery_with_repeated_attribute_types_as_zebra_answers_it(zebra, ours):
    for pqf in ("@attr 1=4 @attr 1=1003 introduction", "@attr 1=1003 @attr 1=4 introduction"):
        params = {"version": "1.2", "operation": "searchRetrieve", "x-pquery": pqf, "maximumRecords": "0"}
        assert sru_count(zebra.base_url, **params) == sru_count(ours.base + "/sru", **params)


def test_re_init_is_accepted_by_both(target, tmp_path):
    out = yaz(target, tmp_path, ["find @attr 1=4 introduction", "init", "find @attr 1=4 introduction"])
    assert hits(out) == [2, 2] and "protocolError" not in out, out


def test_element_set_marcxml_with_format_xml(target, tmp_path):
    out = yaz(target, tmp_path, ["find @attr 1=4 introduction", "format xml", "elements marcxml", "show 1"])
    assert "Record type: XML" in out and 'xmlns="http://www.loc.gov/MARC21/slim"' in out, out


def test_a_query_of_ninety_six_terms(target, tmp_path):
    out = yaz(target, tmp_path, ["find " + "@and " * 95 + "@attr 1=4 introduction " * 96,
                                 "find " + "@or " * 95 + "@attr 1=4 introduction " * 96])
    assert hits(out) == [2, 2], out
