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
    assert hits(out)[:5] == [3, 1, 1, 1, 9], out
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
