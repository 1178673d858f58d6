"""Drive the server with the real yaz-client (Debian package yaz) over SRU 1.1,
1.2 and 2.0, GET and POST, and assert on what it prints."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("yaz-client") is None, reason="yaz-client not installed (apt-get install yaz)"),
]


@pytest.fixture
def server(demo_server):
    return demo_server


def yaz(server, tmp_path, lines: list[str]) -> str:
    cmds = tmp_path / "session.cmds"
    cmds.write_text("\n".join([f"open {server.base}/sru", *lines, "quit"]) + "\n", encoding="utf-8")
    out = subprocess.run(["yaz-client", "-f", str(cmds)], capture_output=True, timeout=60, text=True,
                         stdin=subprocess.DEVNULL)
    return out.stdout + out.stderr


def hits(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"Number of hits: (\d+)", output)]


@pytest.mark.parametrize("mode", ["get 1.1", "get 1.2", "get 2.0", "post 1.1", "post 1.2", "post 2.0"])
def test_find_and_show_in_each_version(server, tmp_path, mode):
    out = yaz(server, tmp_path, [
        f"sru {mode}", "querytype cql",
        "find dc.title=図書館",
        "find dc.title=toshokan and dc.date<2010",
        'find dc.title="information retrieval"',
        "find dc.creator=夏目",
        "find bath.possessingInstitution=komae",
        "format xml", "schema marcxml", "show 1",
    ])
    # toshokan: the record romanized Toshokan and, across scripts (issue 16), the one
    # catalogued with the katakana reading トショカン
    assert hits(out)[:5] == [3, 2, 1, 1, 9], out
    assert 'tag="852"' in out and "<subfield code=\"a\">" in out


def test_scan(server, tmp_path):
    out = yaz(server, tmp_path, ["sru get 1.2", "scan dc.title=toshokan"])
    assert "Received SRW Scan Response" in out
    assert re.search(r"Toshokan no rekishi: 1 toshokan no rekishi", out), out


def test_diagnostic_is_reported_not_a_crash(server, tmp_path):
    out = yaz(server, tmp_path, ["sru get 1.2", "querytype cql", "find dc.nonsense=x", "find dc.title=図書館"])
    assert "Unsupported index" in out or "diagnostic" in out.lower()
    assert hits(out)[-1] == 3


def test_dc_schema_show(server, tmp_path):
    out = yaz(server, tmp_path, ["sru get 2.0", "querytype cql", "find dc.title=吾輩", "schema dc", "format xml",
                                 "show 1"])
    assert hits(out)[0] == 1 and "吾輩は猫である" in out and "夏目" in out


@pytest.mark.parametrize("mode", ["get 1.1", "get 1.2", "get 2.0", "post 1.1", "post 1.2", "post 2.0"])
def test_pqf_as_yaz_client_sends_it(server, tmp_path, mode):
    """yaz-client's `querytype prefix` over SRU: x-pquery in 1.x, queryType=pqf in
    2.0 (as Zebra answers them); the same hits as the same query over Z39.50."""
    out = yaz(server, tmp_path, [
        f"sru {mode}", "querytype prefix",
        "find @attr 1=4 図書館",
        "find @and @attr 1=4 introduction @attr 1=1003 manning",
        "find @attr 1=9999 x",
        "find @attr 1=4 @attr 5=1 introduc",
    ])
    assert hits(out) == [3, 1, 0, 2], out
    assert "info:srw/diagnostic/1/16" in out


def test_curl_as_the_readme_shows_it(server):
    """The README's first example, run as written (raw UTF-8 in the URL)."""
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    out = subprocess.run(["curl", "-s", f"{server.base}/sru?query=dc.title%3D図書館&maximumRecords=3"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and b"<sru:numberOfRecords>3</sru:numberOfRecords>" in out.stdout, out.stdout[:500]
