"""A large MARC file for the scaling run: the LoC records, then copies of them.

Writes ``N`` records (default 1,000,000): first the source file's records as they
are, then copy 2 of every record, copy 3, ... until ``N`` records are written.
A copy differs from its original so that it is a record of its own and never
joins the original's union record:

* its 001 control number gets the suffix ``-cK`` (K = 2, 3, ...; trailing blanks
  of the original are dropped first), so the (library, 001) identity is new --
  a record without 001 gets ``001 = bench-<position>-cK``;
* the match keys of the union-record rules are removed: 010 (LCCN), 015/016
  (national bibliography numbers) and 020 (ISBN), so no LCCN, NBN or
  ISBN+title match can put it with the original (unioncat never merges two
  records of one library anyway; this keeps it so under any library code).

Everything else (titles, names, subjects, 880 fields, 008) is unchanged, so a
query's hit count grows about K-fold -- except identifier queries (ISBN, LCCN),
which keep hitting the originals only.

The rewrite works on the ISO 2709 bytes (leader + directory rebuilt), not
through a MARC library: 1,000,000 records take under a minute (45 s on 2 busy cores).  The
output is a benchmark input, not something to commit.

usage::

    python bench/make_million.py OUT.mrc                 # 1,000,000 records from the LoC file
    python bench/make_million.py OUT.mrc -n 500000 --source other.mrc
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DROP_TAGS = frozenset({b"010", b"015", b"016", b"020"})
FT = b"\x1e"  # field terminator
RT = b"\x1d"  # record terminator


class BadRecord(ValueError):
    pass


def _fields(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(leader, [(tag, data incl. its field terminator), ...]) of one raw record
    (without the record terminator)."""
    if len(raw) < 25:
        raise BadRecord("short record")
    leader = raw[:24]
    try:
        base = int(raw[12:17])
    except ValueError:
        raise BadRecord("leader base address is not a number") from None
    if base < 25 or base > len(raw) or raw[base - 1:base] != FT:
        raise BadRecord("directory does not end at the base address")
    out = []
    for i in range(24, base - 1, 12):
        e = raw[i:i + 12]
        if len(e) < 12:
            raise BadRecord("truncated directory")
        try:
            ln, off = int(e[3:7]), int(e[7:12])
        except ValueError:
            raise BadRecord("directory entry is not numeric") from None
        data = raw[base + off:base + off + ln]
        if len(data) != ln:
            raise BadRecord("field outside the record")
        out.append((e[:3], data))
    return leader, out


def _build(leader: bytes, fields: list[tuple[bytes, bytes]]) -> bytes:
    directory = bytearray()
    body = bytearray()
    for tag, data in fields:
        if len(data) > 9999 or len(body) > 99999:
            raise BadRecord("field too long for a directory entry")
        directory += tag + b"%04d%05d" % (len(data), len(body))
        body += data
    base = 24 + len(directory) + 1
    total = base + len(body) + 1
    if total > 99999:
        raise BadRecord("record too long")
    leader = b"%05d" % total + leader[5:12] + b"%05d" % base + leader[17:24]
    return bytes(leader + directory + FT + body + RT)


def copy_record(raw: bytes, k: int, position: int) -> bytes:
    """Copy ``k`` (>= 2) of one raw record (no record terminator) as ISO 2709 bytes
    with the terminator: new 001, no 010/015/016/020."""
    leader, fields = _fields(raw)
    suffix = b"-c%d" % k
    out = []
    seen_001 = False
    for tag, data in fields:
        if tag in DROP_TAGS:
            continue
        if tag == b"001" and not seen_001:
            seen_001 = True
            value = data[:-1] if data.endswith(FT) else data
            data = value.rstrip() + suffix + FT
        out.append((tag, data))
    if not seen_001:
        out.insert(0, (b"001", b"bench-%d" % position + suffix + FT))
    return _build(leader, out)


def make(source: Path, out: Path, n: int, progress=None) -> dict:
    """Write ``n`` records to ``out``; returns counts."""
    from workload import split_records

    recs = split_records(source)
    if not recs:
        raise ValueError(f"{source}: no records")
    stats = {"source_records": len(recs), "written": 0, "originals": 0, "copies": 0,
             "copies_without_001": 0, "copied_unchanged": 0, "copies_max_k": 1}
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        k = 1
        while stats["written"] < n:
            for pos, raw in enumerate(recs):
                if stats["written"] >= n:
                    break
                if k == 1:
                    f.write(raw + RT)
                    stats["originals"] += 1
                else:
                    try:
                        if _control_missing(raw):
                            stats["copies_without_001"] += 1
                        f.write(copy_record(raw, k, pos))
                    except BadRecord:
                        # unparseable: written as is (the ingest quarantines it again)
                        f.write(raw + RT)
                        stats["copied_unchanged"] += 1
                    stats["copies"] += 1
                stats["written"] += 1
                if progress and stats["written"] % 100_000 == 0:
                    progress(stats["written"])
            stats["copies_max_k"] = k
            k += 1
    tmp.replace(out)
    return stats


def _control_missing(raw: bytes) -> bool:
    try:
        base = int(raw[12:17])
    except ValueError:
        return False
    return not any(raw[i:i + 3] == b"001" for i in range(24, base - 12, 12))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="write N LoC records (originals + distinct copies)",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("-n", "--records", type=int, default=1_000_000)
    ap.add_argument("--source", type=Path, default=None,
                    help="MARC file to copy (default: the LoC file from bench/loc_data.py)")
    a = ap.parse_args(argv)
    src = a.source
    if src is None:
        from loc_data import loc_records_path
        src = loc_records_path()
    t0 = time.perf_counter()
    stats = make(src, a.out, a.records,
                 progress=lambda w: print(f"  {w:,} records", file=sys.stderr, flush=True))
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    stats["bytes"] = a.out.stat().st_size
    print(stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
