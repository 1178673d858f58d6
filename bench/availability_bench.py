"""Availability at scale: the circulation read of a page of titles, and the search limit
local.available on a large catalog (docs/search.md, "Availability").

1. A circulation database (SQLite, or ``--db URL`` e.g. PostgreSQL) bulk-inserted with
   ``--titles`` titles (default 250,000), two copies each over the branches of Iizuka
   and Komae, 8 % of copies on loan, 1 % on the hold shelf, 1 % in transit, 0.5 % lost,
   and queued reservations on 5 % of the titles. Measured: ``title_status`` of pages of
   20 random titles (SELECT statements per page, p50/p99 ms), and ``available_title_ids``
   of one branch.
2. A catalog (the embedded SQLite index) of ``--records`` synthetic MARC records (default:
   as many as titles) whose ISBNs are those titles, searched through the search route
   with and without ``and local.available=<branch>`` (p50/p99 ms).

    .venv/bin/python bench/availability_bench.py                       # 250,000 titles and records
    .venv/bin/python bench/availability_bench.py --titles 20000 --records 20000
    .venv/bin/python bench/availability_bench.py --db postgresql+asyncpg://u@127.0.0.1:5432/bench

Prints JSON (also written to ``--out``). Timings are what this machine gave at the time
of the run; nothing here is a test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymarc
from sqlalchemy import event, insert

from circulation import schema as s
from circulation.availability_view import (
    CirculationAvailability,
    available_title_ids,
    title_status,
)
from circulation.service import Circulation
from circulation.store import Clock, Database, install_network
from lifecycle.profiles import load_all

NOW = datetime(2026, 11, 20, 10, 0)
BRANCHES = {"iizuka": ["iizuka", "honami", "chikuho", "shonai", "kaita"], "komae": ["komae-central", "nishikawara"]}
WORDS = ["図書館", "歴史", "情報", "日本", "科学", "文化", "library", "history", "science", "society"]


def isbn13(n: int) -> str:
    first12 = f"9784{n:08d}"
    total = sum((3 if i % 2 else 1) * int(d) for i, d in enumerate(first12))
    return first12 + str((10 - total % 10) % 10)


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 3)


async def build_circulation(url: str, titles: int, rnd: random.Random) -> Circulation:
    circ = Circulation(Database(url), load_all(), Clock(NOW))
    await circ.db.create_all()
    async with circ.db.transaction() as conn:
        await install_network(conn, circ.profiles)
        await conn.execute(insert(s.patrons), [dict(card_number=f"P{i:07d}", library="iizuka",
                                                    home_municipality="飯塚市", created_at=NOW) for i in range(1000)])
    all_branches = [(lib, b) for lib, bs in BRANCHES.items() for b in bs]
    items, loans, transits, requests = [], [], [], []
    item_id = 0
    for t in range(titles):
        tid = f"isbn:{isbn13(t)}"
        for _ in range(2):
            item_id += 1
            lib, br = rnd.choice(all_branches)
            r = rnd.random()
            status = ("on_loan" if r < 0.08 else "on_hold_shelf" if r < 0.09 else "in_transit" if r < 0.10
                      else "lost" if r < 0.105 else "available")
            items.append(dict(id=item_id, barcode=f"B{item_id:09d}", title_id=tid, library=lib, owning_branch=br,
                              current_branch=br, location="一般書架", call_number="010", status=status,
                              updated_at=NOW))
            if status == "on_loan":
                loans.append(dict(item_id=item_id, patron_id=rnd.randint(1, 1000), branch=br,
                                  lent_at=NOW - timedelta(days=3), due=(NOW + timedelta(days=11)).date()))
            elif status == "in_transit":
                transits.append(dict(item_id=item_id, from_branch=br, to_branch=rnd.choice(all_branches)[1],
                                     reason="hold", sent_at=NOW))
        if rnd.random() < 0.05:
            for _ in range(rnd.randint(1, 3)):
                requests.append(dict(patron_id=rnd.randint(1, 1000), library="iizuka", title_id=tid,
                                     pickup_branch="iizuka", channel="web", state="QUEUED", placed_at=NOW,
                                     updated_at=NOW))
    async with circ.db.transaction() as conn:
        for table, rows in ((s.items, items), (s.loans, loans), (s.transits, transits), (s.requests, requests)):
            for i in range(0, len(rows), 5000):
                await conn.execute(insert(table), rows[i:i + 5000])
    return circ


async def bench_circulation(circ: Circulation, titles: int, rnd: random.Random, pages: int) -> dict:
    selects = []

    def count(_c, _cur, statement, *_a):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(1)

    engine = circ.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    times, per_page = [], set()
    await title_status(circ, [f"isbn:{isbn13(0)}"])            # warm the pool
    for _ in range(pages):
        page = [f"isbn:{isbn13(rnd.randrange(titles))}" for _ in range(20)]
        selects.clear()
        t0 = time.perf_counter()
        await title_status(circ, page)
        times.append(time.perf_counter() - t0)
        per_page.add(len(selects))
    event.remove(engine, "before_cursor_execute", count)
    avail = []
    for _ in range(5):
        t0 = time.perf_counter()
        ids = await available_title_ids(circ, ["iizuka"])
        avail.append(time.perf_counter() - t0)
    return {"title_status_page_of_20": {"pages": pages, "p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99),
                                        "select_statements_per_page": sorted(per_page)},
            "available_title_ids_branch_iizuka": {"titles": len(ids), "p50_ms": pct(avail, 0.5),
                                                  "max_ms": round(max(avail) * 1000, 3)}}


def write_records(path: Path, n: int, rnd: random.Random) -> None:
    with open(path, "wb") as fh:
        for i in range(n):
            r = pymarc.Record(force_utf8=True)
            r.leader = "     nam a22     2a 4500"
            r.add_field(pymarc.Field(tag="001", data=f"bench-{i}"))
            r.add_field(pymarc.Field(tag="008", data="200101s2001    ja            000 0 jpn d"))
            r.add_field(pymarc.Field(tag="020", indicators=pymarc.Indicators(" ", " "),
                                     subfields=[pymarc.Subfield("a", isbn13(i))]))
            title = " ".join(rnd.sample(WORDS, 3)) + f" {i}"
            r.add_field(pymarc.Field(tag="245", indicators=pymarc.Indicators("1", "0"),
                                     subfields=[pymarc.Subfield("a", title)]))
            fh.write(r.as_marc())


async def bench_limit(data_dir: Path, circ: Circulation, rounds: int) -> dict:
    from indexers.backends.sqlite_index import SqliteCatalog
    from search.result_sets import ResultSets
    from search.route import Search, make_route
    from sru.cql import parse_cql

    cat = SqliteCatalog(data_dir / "catalog.sqlite")
    route = make_route(cat, availability=CirculationAvailability(circ), timeout=600)
    out = {}
    for name, cql in (("title", "dc.title=図書館 and dc.title=歴史"),
                      ("title_and_available_at_iizuka", "dc.title=図書館 and dc.title=歴史 and local.available=iizuka"),
                      ("available_at_honami_only", "local.available=honami")):
        times, total = [], 0
        for _ in range(rounds):
            t0 = time.perf_counter()
            async with route.request():
                rs = await route.search(Search(parse_cql(cql, cat.config), ResultSets()))
                await route.page(rs, 0, 20)
            times.append(time.perf_counter() - t0)
            total = rs.result.total
        out[name] = {"query": cql, "hits": total, "p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}
    cat.close()
    return out


async def main_async(args) -> dict:
    rnd = random.Random(13)
    reuse = args.work is not None and (args.work / "catalog.sqlite").exists()
    work = args.work or Path(tempfile.mkdtemp(prefix="unioncat-avail-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    url = args.db or f"sqlite+aiosqlite:///{work}/circulation.db"
    t0 = time.perf_counter()
    if reuse:       # the databases of an earlier run (--work DIR): measured again, not rebuilt
        circ = Circulation(Database(url), load_all(), Clock(NOW))
    else:
        circ = await build_circulation(url, args.titles, rnd)
    result = {"titles": args.titles, "copies": 2 * args.titles, "database": url.split(":", 1)[0],
              "work": str(work), "circulation_build_s": round(time.perf_counter() - t0, 1)}
    result.update(await bench_circulation(circ, args.titles, rnd, args.pages))
    if args.records:
        result["catalog"] = {"records": args.records}
        if not reuse:
            from indexers.ingest import ingest

            mrc = work / "records.mrc"
            write_records(mrc, args.records, rnd)
            t0 = time.perf_counter()
            ingest(work, "iizuka", [mrc], quiet=True)
            result["catalog"]["ingest_s"] = round(time.perf_counter() - t0, 1)
        result["catalog"].update(await bench_limit(work, circ, args.rounds))
    await circ.db.dispose()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--titles", type=int, default=250_000)
    ap.add_argument("--records", type=int, default=None, help="catalog records (default: --titles; 0: none)")
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--db", help="circulation database URL (default: a SQLite file in a temporary directory)")
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    ap.add_argument("--work", type=Path, help="keep the databases in DIR; a DIR of an earlier run with the same "
                    "--titles/--records is measured again without rebuilding")
    args = ap.parse_args(argv)
    if args.records is None:
        args.records = args.titles
    result = asyncio.run(main_async(args))
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
