"""Harvesting partners' catalogues (connectors/harvest/, connectors/oai/protocol.py)
against providers others wrote:

* an OAI-PMH provider built with PyPI's pyoai (tools/pyoai_peer.py), MARCXML with
  deleted records and pages of 4 (so resumption tokens are used), its clock the test's;
* Zebra (Debian idzebra-2.0) over SRU and Z39.50, records indexed here (peer tests);
* a provider that dies mid-harvest, a refused (expired) resumption token, a bad
  record in the stream, ``--full`` withdrawing what disappeared.

Retries back off by zero seconds (``Retrying(backoff=0)``): nothing waits on a clock.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
from pathlib import Path

import pymarc
import pytest

from connectors.harvest import state as st
from connectors.harvest.config import ConfigError, Schedule, load_sources, parse_source
from connectors.harvest.report import describe
from connectors.harvest.runner import due, harvest
from connectors.harvest.sources import Retrying
from connectors.oai import protocol as oai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))
from pyoai_peer import PyoaiPeer  # noqa: E402


class PeerClock:
    """The provider's clock: datestamps advance one minute a tick."""

    def __init__(self):
        self.now = dt.datetime(2026, 11, 1, 9, 0, 0)

    def __call__(self):
        return self.now

    def tick(self):
        self.now += dt.timedelta(minutes=1)


def marcxml(i: int, title: str, isbn: str | None = None, with_001: bool = True) -> bytes:
    r = pymarc.Record(force_utf8=True, leader="00000nam a2200000 a 4500")
    if with_001:
        r.add_field(pymarc.Field(tag="001", data=f"kyo{i:05d}"))
    if isbn:
        r.add_field(pymarc.Field(tag="020", indicators=pymarc.Indicators(" ", " "),
                                 subfields=[pymarc.Subfield("a", isbn)]))
    r.add_field(pymarc.Field(tag="245", indicators=pymarc.Indicators("1", "0"),
                             subfields=[pymarc.Subfield("a", title)]))
    r.add_field(pymarc.Field(tag="852", indicators=pymarc.Indicators(" ", " "),
                             subfields=[pymarc.Subfield("b", "中央図書館"), pymarc.Subfield("p", f"K{i:06d}")]))
    return pymarc.record_to_xml(r, namespace=True)


def ident(i: int) -> str:
    return f"oai:kyoto.example:kyo{i:05d}"


@pytest.fixture
def peer():
    clock = PeerClock()
    p = PyoaiPeer(batch_size=4, clock=clock)
    p.tick = clock.tick
    for i in range(1, 11):
        p.put(ident(i), marcxml(i, f"京都の本 第{i}巻"), sets=("books",))
    p.start()
    yield p
    p.stop()


def source(peer, **kw):
    return parse_source("kyoto-u", {"protocol": "oai-pmh", "url": peer.base_url, **kw})


def run(data_dir, src, **kw):
    return harvest(data_dir, src, retrying=Retrying(attempts=3, backoff=0), **kw)


def library_records(data_dir: Path, library: str = "kyoto-u") -> dict[str, bytes]:
    conn = sqlite3.connect(data_dir / "catalog.sqlite")
    try:
        return dict(conn.execute("SELECT local_id, marc FROM source WHERE library=?", (library,)))
    finally:
        conn.close()


def search_titles(data_dir: Path, cql: str) -> list[str]:
    import asyncio

    from indexers.backends.sqlite_index import SqliteCatalog
    from sru.cql import parse_cql

    cat = SqliteCatalog(data_dir / "catalog.sqlite")

    async def go():
        res = await cat.search(parse_cql(cql, cat.config))
        recs = await cat.fetch(await cat.page(res, 0, 100))
        return sorted(r.marc["245"]["a"] for r in recs)

    try:
        return asyncio.run(go())
    finally:
        cat.close()


# --------------------------------------------------------------------------- OAI-PMH (pyoai)

def test_a_full_listing_in_pages_of_four_with_tokens(peer, tmp_path):
    rep = run(tmp_path, source(peer))
    assert rep.outcome == "complete", rep.errors
    assert rep.counts["read"] == 10 and rep.counts["added"] == 10 and rep.counts["quarantined"] == 0
    assert rep.pages == 3 and peer.requests["ListRecords"] == 3       # 4 + 4 + 2: two resumption tokens
    assert sorted(library_records(tmp_path)) == [f"kyo{i:05d}" for i in range(1, 11)]
    assert search_titles(tmp_path, "dc.title=京都 and bath.possessingInstitution==kyoto-u")[0] == "京都の本 第10巻"
    # the report is kept: the last run of each source
    conn = sqlite3.connect(tmp_path / "catalog.sqlite")
    last = st.last_runs(conn)["kyoto-u"]
    conn.close()
    assert last.outcome == "complete" and last.counts["added"] == 10 and last.pages == 3
    assert "harvest kyoto-u (oai-pmh -> kyoto-u)" in describe(last) and "added 10" in describe(last)


def test_incremental_reads_only_what_changed_and_deletions_withdraw(peer, tmp_path):
    peer.tick()                              # the records are a minute older than the first harvest
    assert run(tmp_path, source(peer)).outcome == "complete"
    before = peer.requests["ListRecords"]
    peer.tick()
    peer.put(ident(3), marcxml(3, "京都の本 改訂版"), sets=("books",))
    peer.delete(ident(7))
    peer.put(ident(11), marcxml(11, "新しい本"), sets=("books",))
    peer.tick()
    rep = run(tmp_path, source(peer))
    assert rep.mode == "incremental" and rep.outcome == "complete"
    assert peer.requests["ListRecords"] == before + 1                  # from= the last harvest: one page
    assert (rep.counts["read"], rep.counts["updated"], rep.counts["withdrawn"], rep.counts["added"]) == (3, 1, 1, 1)
    got = library_records(tmp_path)
    assert "kyo00007" not in got and "kyo00011" in got and len(got) == 10
    assert search_titles(tmp_path, "dc.title=改訂版") == ["京都の本 改訂版"]
    assert search_titles(tmp_path, "dc.title=第7巻") == []
    # nothing changed: an empty listing (noRecordsMatch) is a complete run that read nothing
    rep = run(tmp_path, source(peer))
    assert rep.outcome == "complete" and rep.counts["read"] == 0


def test_a_bad_record_in_the_stream_is_quarantined_with_its_identifier(peer, tmp_path):
    peer.put(ident(20), marcxml(20, "番号のない本", with_001=False), sets=("books",))
    peer.put("oai:kyoto.example:dc-only", b'<dc xmlns="http://purl.org/dc/elements/1.1/">not MARC</dc>')
    rep = run(tmp_path, source(peer))
    assert rep.outcome == "complete"
    assert rep.counts["added"] == 10 and rep.counts["quarantined"] == 2
    lines = [json.loads(x) for x in (tmp_path / "quarantine" / f"kyoto-u-run{rep.run_id}.jsonl").read_text()
             .splitlines()]
    reasons = {x["file"]: x["reason"] for x in lines}
    assert "no control number (001)" in reasons[ident(20)]
    assert "not a MARCXML record" in reasons["oai:kyoto.example:dc-only"]
    assert f"quarantine/kyoto-u-run{rep.run_id}.jsonl" in describe(rep)


def test_a_provider_that_dies_mid_harvest_then_the_run_resumes_without_duplicates(peer, tmp_path):
    peer.die_after(1)                      # the first page comes, then nothing listens
    rep = run(tmp_path, source(peer))
    assert rep.outcome.startswith("failed: ListRecords") and "after 3 attempts" in rep.outcome
    assert rep.retries == 2 and len(rep.errors) == 3
    assert rep.counts["added"] == 4 and len(library_records(tmp_path)) == 4     # the committed page stays
    peer.revive()
    rep2 = run(tmp_path, source(peer))
    assert rep2.mode == "resumed" and rep2.outcome == "complete", rep2.errors
    assert rep2.counts["read"] == 6 and rep2.counts["added"] == 6    # from the token it had reached
    assert len(library_records(tmp_path)) == 10
    conn = sqlite3.connect(tmp_path / "catalog.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM union_rec").fetchone()[0] == 10   # never duplicated
    conn.close()


def test_an_expired_token_restarts_from_the_last_datestamp_reached(peer, tmp_path):
    peer.die_after(1)
    run(tmp_path, source(peer))
    conn = sqlite3.connect(tmp_path / "catalog.sqlite")
    saved = st.load_state(conn, "kyoto-u")
    saved.cursor["listing"]["token"] = "expired-token"            # the provider no longer knows it
    conn.execute("BEGIN")
    st.save_state(conn, "kyoto-u", saved)
    conn.execute("COMMIT")
    conn.close()
    peer.revive()
    rep = run(tmp_path, source(peer))
    assert rep.outcome == "complete", rep.errors
    assert any("resumption token was refused" in e for e in rep.errors)
    assert len(library_records(tmp_path)) == 10
    assert rep.counts["added"] == 6 and rep.counts["unchanged"] >= 1   # re-read from the datestamp: unchanged


def test_full_reharvest_withdraws_what_disappeared_also_across_runs(peer, tmp_path):
    assert run(tmp_path, source(peer)).outcome == "complete"
    del peer.records[ident(2)]                       # gone without a trace (no deleted header)
    del peer.records[ident(9)]
    peer.die_after(1)
    rep = run(tmp_path, source(peer), full=True)
    assert rep.mode == "full" and rep.outcome.startswith("failed")
    assert len(library_records(tmp_path)) == 10      # nothing withdrawn before the listing is whole
    peer.revive()
    rep = run(tmp_path, source(peer))               # resumes the full harvest (its mode is kept)
    assert rep.mode == "resumed" and rep.outcome == "complete"
    assert rep.counts["withdrawn"] == 2
    assert sorted(library_records(tmp_path)) == [f"kyo{i:05d}" for i in range(1, 11) if i not in (2, 9)]


def test_a_set_selects_and_the_provider_granularity_is_used(tmp_path):
    clock = PeerClock()
    p = PyoaiPeer(batch_size=50, granularity="YYYY-MM-DD", clock=clock)
    p.put(ident(1), marcxml(1, "本 一"), sets=("books",))
    p.put(ident(2), marcxml(2, "地図 二"), sets=("maps",))
    p.start()
    try:
        rep = run(tmp_path, parse_source("kyoto-u", {"protocol": "oai-pmh", "url": p.base_url, "set": "maps"}))
        assert rep.outcome == "complete" and sorted(library_records(tmp_path)) == ["kyo00002"]
        clock.tick()
        p.put(ident(3), marcxml(3, "地図 三"), sets=("maps",))
        rep = run(tmp_path, parse_source("kyoto-u", {"protocol": "oai-pmh", "url": p.base_url, "set": "maps"}))
        assert rep.counts["added"] == 1
        assert "from=2026-11-01&" in p.queries[-1] + "&"      # a day, as the provider announced in Identify
    finally:
        p.stop()


def test_an_oai_error_fails_the_run_with_the_providers_words(peer, tmp_path):
    rep = run(tmp_path, source(peer, format="mods"))
    assert rep.outcome.startswith("failed: ListRecords: cannotDisseminateFormat")
    assert rep.retries == 0                                       # not transient: no retry


def test_nothing_listens_is_retried_then_said(tmp_path):
    from procmon import free_port

    src = parse_source("kyoto-u", {"protocol": "oai-pmh", "url": f"http://127.0.0.1:{free_port()}/oai"})
    rep = run(tmp_path, src)
    assert rep.outcome.startswith("failed: Identify") and rep.retries == 2 and rep.counts == {}


# --------------------------------------------------------------------------- the protocol core

def _resp(records: str, token: str = "", date: str = "2026-11-01T09:00:00Z") -> bytes:
    return (f'<OAI-PMH xmlns="{oai.OAI_NS}"><responseDate>{date}</responseDate>'
            f'<request verb="ListRecords">http://x/oai</request><ListRecords>{records}{token}</ListRecords>'
            f"</OAI-PMH>").encode()


def _rec(i: str, stamp: str, deleted: bool = False) -> str:
    status = ' status="deleted"' if deleted else ""
    md = "" if deleted else '<metadata><r xmlns="urn:x">x</r></metadata>'
    return f"<record><header{status}><identifier>{i}</identifier><datestamp>{stamp}</datestamp></header>{md}</record>"


def test_listing_cursor_tokens_and_restart_rules():
    li = oai.Listing("marc21", from_="2026-10-01T00:00:00Z", granularity=oai.DAY)
    assert li.request() == {"verb": "ListRecords", "metadataPrefix": "marc21", "from": "2026-10-01"}
    got = li.advance(oai.parse_response(_resp(_rec("a", "2026-11-01T01:00:00Z")
                                              + _rec("b", "2026-11-01T02:00:00Z", deleted=True),
                                              '<resumptionToken completeListSize="9" cursor="0">t1'
                                              "</resumptionToken>")))
    assert [r.header.identifier for r in got] == ["a", "b"] and got[1].header.deleted and got[1].metadata is None
    assert li.request() == {"verb": "ListRecords", "resumptionToken": "t1"}
    bad = (f'<OAI-PMH xmlns="{oai.OAI_NS}"><responseDate>x</responseDate><request/>'
           '<error code="badResumptionToken">gone</error></OAI-PMH>').encode()
    assert li.advance(oai.parse_response(bad)) == [] and not li.done
    assert li.request()["from"] == "2026-11-01"            # the last datestamp reached, at day granularity
    li2 = oai.Listing("marc21", from_="2026-10-01T00:00:00Z")
    li2.token = "t"
    li2.advance(oai.parse_response(_resp(_rec("a", "2026-11-02T00:00:00Z") + _rec("b", "2026-11-01T00:00:00Z"),
                                         "<resumptionToken>t2</resumptionToken>")))
    li2.advance(oai.parse_response(bad))
    assert li2.request()["from"] == "2026-10-01T00:00:00Z"   # out of order: from the window's start
    li2.advance(oai.parse_response(_resp(_rec("c", "2026-11-03T00:00:00Z"), "<resumptionToken/>")))
    assert li2.done and li2.token is None
    with pytest.raises(oai.OAIProtocolError):
        oai.parse_response(b"<html>502</html>")
    with pytest.raises(oai.OAIListError, match="badArgument"):
        oai.Listing("x").advance(oai.parse_response(bad.replace(b"badResumptionToken", b"badArgument")))


def test_config_errors_are_one_line_and_schedules_are_data(tmp_path):
    cfg = tmp_path / "unioncat.toml"
    cfg.write_text('[harvest.kyoto-u]\nprotocol = "ftp"\nurl = "http://x"\n')
    with pytest.raises(ConfigError, match=r"\[harvest.kyoto-u\]: protocol must be one of"):
        load_sources(cfg)
    for table, msg in (({"protocol": "z3950", "address": "nohost"}, "host:port/Database"),
                       ({"protocol": "sru", "url": "x"}, "http:// or https://"),
                       ({"protocol": "sru", "url": "http://x", "set": "a"}, "OAI-PMH setting"),
                       ({"protocol": "oai-pmh", "url": "http://x", "schedule": "sometimes"}, "every 6h"),
                       ({"protocol": "oai-pmh", "url": "http://x", "page_size": 0}, "page_size"),
                       ({"protocol": "oai-pmh", "url": "http://x", "colour": 1}, "unknown setting")):
        with pytest.raises(ConfigError, match=msg):
            parse_source("x", table)
    s = parse_source("nagoya", {"protocol": "z3950", "address": "tcp:127.0.0.1:210/Books", "schedule": "every 6h"})
    assert (s.host, s.port, s.database, s.schedule) == ("127.0.0.1", 210, "Books", Schedule(every=21600.0))
    assert due(s, None, 1000.0)
    last = st.RunReport("nagoya", "nagoya", "z3950", "full", 0.0, finished=100.0, outcome="complete")
    assert not due(s, last, 100.0 + 21599) and due(s, last, 100.0 + 21600)
    last.outcome = "failed: x"
    assert due(s, last, 100.0 + 3600)                         # a failed run is tried again within the hour


def test_unioncat_harvest_and_stats(peer, tmp_path, capsys):
    from gateway.cli import main

    data = tmp_path / "d"
    data.mkdir()
    (data / "unioncat.toml").write_text(f'[harvest.kyoto-u]\nprotocol = "oai-pmh"\nurl = "{peer.base_url}"\n'
                                        f'schedule = "daily 02:30"\n')
    assert main(["harvest", "--data-dir", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["outcome"] == "complete" and out["counts"]["added"] == 10
    assert main(["harvest", "--data-dir", str(data), "nosuch"]) == 2
    assert "no source 'nosuch'" in capsys.readouterr().err
    assert main(["stats", "--data-dir", str(data)]) == 0
    text = capsys.readouterr().out
    assert "kyoto-u: 10 records" in text and "harvest kyoto-u (oai-pmh -> kyoto-u): last run" in text


# --------------------------------------------------------------------------- Zebra: SRU and Z39.50

# a real zebrasrv serving the BOOKS records, the fixture of the Z39.50 client's tests
from test_z3950_client import zebra  # noqa: E402, F401 - the fixture, used by name


@pytest.mark.peer
def test_sru_harvest_from_zebra_in_pages(zebra, tmp_path):
    src = parse_source("zebra-lib", {"protocol": "sru", "url": zebra.base_url, "query": "dc.title=library or "
                                     "dc.title=introduction or dc.title=図書館 or dc.title=art or dc.title=京都 or "
                                     "dc.title=検索 or dc.title=libraries", "page_size": 3})
    rep = run(tmp_path, src)
    assert rep.outcome == "complete", rep.errors
    assert rep.counts["added"] == 10 and rep.pages == 4
    assert search_titles(tmp_path, "dc.title=図書館 and bath.possessingInstitution==zebra-lib") == \
        ["図書館の歴史", "図書館情報学入門", "日本の図書館"]


@pytest.mark.peer
def test_z3950_harvest_from_zebra_in_chunks(zebra, tmp_path):
    src = parse_source("zebra-lib", {"protocol": "z3950", "address": f"127.0.0.1:{zebra.port}/Default",
                                     "page_size": 4})
    rep = run(tmp_path, src)
    assert rep.outcome == "complete", rep.errors
    assert rep.counts["added"] == 10 and rep.pages == 3
    assert sorted(library_records(tmp_path, "zebra-lib")) == [f"zc{i:04d}" for i in range(1, 11)]
    again = run(tmp_path, src, full=True)                 # everything again: unchanged, nothing withdrawn
    assert again.counts["unchanged"] == 10 and again.counts["withdrawn"] == 0


# --------------------------------------------------------------------------- the scheduler (serve)

def test_a_daily_schedule_is_the_configured_zones_time_never_the_hosts(tmp_path):
    s = parse_source("k", {"protocol": "oai-pmh", "url": "http://x/oai", "schedule": "daily 02:30",
                           "timezone": "Asia/Tokyo"})
    at = dt.datetime(2026, 11, 2, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=9))).timestamp()
    last = st.RunReport("k", "k", "oai-pmh", "full", at - 36000, finished=at - 35000, outcome="complete")
    assert not due(s, last, at - 1) and due(s, last, at)        # 02:30 in Tokyo is 17:30 UTC the day before
    utc = parse_source("k", {"protocol": "oai-pmh", "url": "http://x/oai", "schedule": "daily 02:30"})
    assert not due(utc, last, at) and utc.schedule.zone == "UTC"
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        parse_source("k", {"protocol": "oai-pmh", "url": "http://x/oai", "schedule": "daily 02:30",
                           "timezone": "Japan Standard"})
    # without its own timezone a daily time is in the zone serve passes: the network's
    cfg = tmp_path / "unioncat.toml"
    cfg.write_text('[harvest.k]\nprotocol = "oai-pmh"\nurl = "http://x/oai"\nschedule = "daily 02:30"\n')
    assert load_sources(cfg, default_zone="Asia/Tokyo")["k"].schedule.zone == "Asia/Tokyo"
    assert due(load_sources(cfg, default_zone="Asia/Tokyo")["k"], last, at)


def test_the_scheduler_runs_what_is_due_and_the_last_run_is_visible(peer, tmp_path):
    import asyncio

    from connectors.harvest.runner import Scheduler

    now = [1_800_000_000.0]
    src = source(peer, schedule="every 1h")
    sch = Scheduler(tmp_path, {"kyoto-u": src}, clock=lambda: now[0])
    first = asyncio.run(sch.tick())
    assert [r.outcome for r in first] == ["complete"] and first[0].counts["added"] == 10
    assert asyncio.run(sch.tick()) == []                          # not due again within the hour
    now[0] += 3600
    again = asyncio.run(sch.tick())
    assert len(again) == 1 and again[0].mode == "incremental"
    assert sch.last_runs()["kyoto-u"].run_id == again[0].run_id and sch.running is None


def test_serve_hands_its_elasticsearch_settings_to_the_harvest_scheduler(tmp_path):
    """On an Elasticsearch deployment the scheduled harvests index there (not refused
    as a backend mismatch); nothing here connects to Elasticsearch."""
    from gateway.app import make_app
    from gateway.oai import HARVEST_SCHEDULER
    from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
    from indexers.backends.elasticsearch_index import EsConfig

    cfg = EsConfig(urls=["http://127.0.0.1:9"], index="harvest-wiring")
    src = {"kyoto-u": parse_source("kyoto-u", {"protocol": "oai-pmh", "url": "http://x/oai"})}
    app = make_app(tmp_path, catalog=ElasticsearchCatalog(cfg), harvest_sources=src)
    assert app[HARVEST_SCHEDULER].es is cfg and list(app[HARVEST_SCHEDULER].sources) == ["kyoto-u"]
    assert make_app(tmp_path, harvest_sources=src)[HARVEST_SCHEDULER].es is None     # SQLite: none


def test_serve_runs_the_scheduled_source_and_shows_it_at_slash_harvest(peer, tmp_path):
    """The scheduler of a served application harvests a due source (never run: due at
    once), its records are searchable there, and GET /harvest shows the run."""
    import time
    import urllib.request

    from gateway.demo import write_demo_files
    from indexers.ingest import ingest
    from live_server import Server

    files = write_demo_files(tmp_path / "in")
    assert ingest(tmp_path, "komae", [files["komae"]], full=True, quiet=True, workers=0).error is None
    srv = Server(tmp_path, harvest_sources={"kyoto-u": source(peer, schedule="every 6h")})
    try:
        status = None
        for _ in range(600):                     # until the run is reported (bounded; no duration asserted)
            with urllib.request.urlopen(srv.base + "/harvest", timeout=20) as r:
                status = json.loads(r.read())
            if status["sources"]["kyoto-u"]["last_run"] and status["sources"]["kyoto-u"]["last_run"]["finished"]:
                break
            time.sleep(0.1)
        src = status["sources"]["kyoto-u"]
        assert src["schedule"] == "every 21600 s" and src["protocol"] == "oai-pmh" and src["library"] == "kyoto-u"
        last = src["last_run"]
        assert last["outcome"] == "complete" and last["counts"]["added"] == 10 and last["pages"] == 3
        code, body, _ = srv.get("/sru", version="1.2", operation="searchRetrieve",
                                query="bath.possessingInstitution==kyoto-u", maximumRecords=0)
        assert b"<numberOfRecords>10</numberOfRecords>" in body.replace(b"srw:", b"").replace(b"zs:", b"")
    finally:
        srv.stop()


def test_a_provider_refusing_every_token_it_gives_ends_the_listing_not_a_loop():
    page = _resp(_rec("a", "2026-11-01T01:00:00Z") + _rec("b", "2026-11-01T01:00:00Z"),
                 "<resumptionToken>t</resumptionToken>")
    bad = (f'<OAI-PMH xmlns="{oai.OAI_NS}"><responseDate>x</responseDate><request/>'
           '<error code="badResumptionToken">expired</error></OAI-PMH>').encode()
    li = oai.Listing("marc21")
    li.advance(oai.parse_response(page))
    li.advance(oai.parse_response(bad))                    # first refusal: start again from the datestamp
    assert li.request()["from"] == "2026-11-01T01:00:00Z" and li.stalled == 0
    for _ in range(oai.MAX_STALLED - 1):                  # the same page again, refused again: no progress
        li.advance(oai.parse_response(page))
        li.advance(oai.parse_response(bad))
    li.advance(oai.parse_response(page))
    with pytest.raises(oai.OAIListError, match="refused its own resumption tokens 4 times"):
        li.advance(oai.parse_response(bad))
    # progress between refusals is not a stall
    li2 = oai.Listing("marc21")
    for minute in range(10):
        li2.advance(oai.parse_response(_resp(_rec(f"r{minute}", f"2026-11-01T01:{minute:02d}:00Z"),
                                             "<resumptionToken>t</resumptionToken>")))
        li2.advance(oai.parse_response(bad))
    assert li2.restarts == 10 and li2.stalled == 0
