"""A fixed, deterministic 50-query CQL workload derived from the MARC file itself.

Queries are sampled from the records with a seeded ``random.Random``, so the same
file, record limit and seed always give the same 50 queries.  Every query uses
only index names both servers map the same way (see ``bench/zebra.py`` for the
Zebra side): ``dc.title``, ``dc.creator``, ``dc.subject``, ``dc.identifier``,
``dc.date`` and ``cql.serverChoice``; relations ``=``, ``adj``, ``<=``/``>=``;
booleans ``and``/``or``/``not``; right truncation ``*``.

Mix (50): 8 title words, 4 title phrases, 5 creators, 5 subjects, 4 ISBNs,
2 years, 2 year ranges, 3 ``and``, 2 ``or``, 2 ``not``, 3 right truncations and
10 Japanese (kanji/kana from the 880 fields of records with 008/35-37 = jpn:
whole titles, kanji runs, a katakana run, creator names, serverChoice, and).

Japanese terms are where the servers are expected to differ: unioncat matches
CJK as substrings (with kana and kanji-variant folding); Zebra's default
``string.chr`` only matches whole white-space-delimited "words" (an unspaced
Japanese title is one word); Zebra with ICU matches dictionary words.

usage::

    python bench/workload.py FILE.mrc [--records N] [--seed S] [--json]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

import pymarc

DEFAULT_SEED = 20261121
N_QUERIES = 50

QUOTAS = [  # (kind, count) in the order they appear in the workload
    ("title_word", 8),
    ("title_phrase", 4),
    ("creator", 5),
    ("subject", 5),
    ("isbn", 4),
    ("year", 2),
    ("year_range", 2),
    ("and", 3),
    ("or", 2),
    ("not", 2),
    ("truncation", 3),
    ("ja_title_whole", 3),
    ("ja_title_kanji", 2),
    ("ja_title_kana", 1),
    ("ja_creator", 2),
    ("ja_anywhere", 1),
    ("ja_and", 1),
]
assert sum(n for _, n in QUOTAS) == N_QUERIES

STOP = frozenset("""a an and are as at be but by for from in into is it its of on or the their
this to was were with without what when where which who how new its his her our your les la le
des de du et el los las der die das und von zur zum""".split())

ASCII_WORD = re.compile(r"^[a-z]+$")
ISBN_RE = re.compile(r"^(\d{9}[\dXx]|\d{13})$")
YEAR_RE = re.compile(r"^(1[5-9]|20)\d\d$")
STRIP = " \t.,:;/=[]()\"'!?"


@dataclass(frozen=True)
class Query:
    n: int          # 1..50
    kind: str
    cql: str
    source: str     # 001 of the record the terms came from (and a note)


# ---------------------------------------------------------------- raw ISO 2709

def split_records(path: Path, limit: int | None = None) -> list[bytes]:
    """The raw records of an ISO 2709 file (record terminator 0x1D kept off)."""
    data = Path(path).read_bytes()
    recs = data.split(b"\x1d")
    if recs and not recs[-1].strip():
        recs.pop()
    return recs[:limit] if limit else recs


def write_subset(src: Path, dst: Path, n: int) -> int:
    """Write the first ``n`` records of ``src`` to ``dst``; returns how many."""
    recs = split_records(src, n)
    with open(dst, "wb") as f:
        for r in recs:
            f.write(r + b"\x1d")
    return len(recs)


def _control(raw: bytes, tag: bytes) -> bytes | None:
    """A control field straight from the directory (no full parse)."""
    try:
        base = int(raw[12:17])
    except ValueError:
        return None
    i = 24
    while i + 12 <= base - 1:
        if raw[i:i + 3] == tag:
            ln, off = int(raw[i + 3:i + 7]), int(raw[i + 7:i + 12])
            return raw[base + off:base + off + ln - 1]
        i += 12
    return None


def _has_tag(raw: bytes, tag: bytes) -> bool:
    try:
        base = int(raw[12:17])
    except ValueError:
        return False
    return any(raw[i:i + 3] == tag for i in range(24, base - 12, 12))


def _parse(raw: bytes) -> pymarc.Record | None:
    try:
        return pymarc.Record(data=raw + b"\x1d", to_unicode=True, force_utf8=True,
                             utf8_handling="replace")
    except Exception:  # noqa: BLE001 -- a bad record is simply not sampled
        return None


# ---------------------------------------------------------------- term pickers

def _words(s: str) -> list[str]:
    out = []
    for tok in s.split():
        tok = tok.strip(STRIP).lower()
        out.append(tok)
    return out


def _content_words(s: str, minlen: int = 4) -> list[str]:
    return [w for w in _words(s) if ASCII_WORD.match(w) and len(w) >= minlen and w not in STOP]


def _sub(rec: pymarc.Record, tag: str, code: str) -> str | None:
    for f in rec.get_fields(tag):
        vals = f.get_subfields(code)
        if vals and vals[0]:
            return vals[0]
    return None


def _id(rec: pymarc.Record) -> str:
    f = rec.get("001")
    return f.data.strip() if f is not None else "?"


def _is_cjk(ch: str) -> bool:
    return "CJK" in unicodedata.name(ch, "") or ch in "々〆"


def _is_kana(ch: str) -> bool:
    n = unicodedata.name(ch, "")
    return n.startswith("HIRAGANA") or n.startswith("KATAKANA")


def _linked_880(rec: pymarc.Record, tag: str) -> list[pymarc.Field]:
    out = []
    for f in rec.get_fields("880"):
        six = f.get_subfields("6")
        if six and six[0][:3] == tag:
            out.append(f)
    return out


def _runs(s: str, pred, minlen: int, maxlen: int) -> list[str]:
    """Maximal runs of characters satisfying ``pred``, of length minlen..maxlen."""
    runs, cur = [], ""
    for ch in s:
        if pred(ch):
            cur += ch
        else:
            if minlen <= len(cur) <= maxlen:
                runs.append(cur)
            cur = ""
    if minlen <= len(cur) <= maxlen:
        runs.append(cur)
    return runs


def _q(term: str) -> str:
    """A CQL term, quoted if it needs to be."""
    if re.fullmatch(r"[^\s()=<>\"/]+", term):
        return term
    return '"' + term.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------- builders

def _english(kind: str, rec: pymarc.Record, rng: random.Random) -> str | None:
    title = _sub(rec, "245", "a") or ""
    twords = _content_words(title)
    if kind == "title_word":
        return f"dc.title={rng.choice(twords)}" if twords else None
    if kind == "title_phrase":
        words = _words(title)
        spans = []
        for i in range(len(words) - 1):
            for ln in (2, 3):
                span = words[i:i + ln]
                if len(span) == ln and all(ASCII_WORD.match(w) for w in span) \
                        and any(w not in STOP and len(w) >= 4 for w in span):
                    spans.append(" ".join(span))
        if not spans:
            return None
        phrase = rng.choice(spans)
        rel = "adj" if rng.random() < 0.5 else "="
        return f'dc.title {rel} "{phrase}"' if rel == "adj" else f'dc.title="{phrase}"'
    if kind == "creator":
        a = _sub(rec, "100", "a")
        if not a or "," not in a:
            return None
        surname, rest = a.split(",", 1)
        surname = surname.strip().lower()
        fore = _words(rest)
        if not ASCII_WORD.match(surname) or len(surname) < 4:
            return None
        if fore and ASCII_WORD.match(fore[0]) and len(fore[0]) >= 3 and rng.random() < 0.4:
            return f'dc.creator="{surname} {fore[0]}"'
        return f"dc.creator={surname}"
    if kind == "subject":
        s = _sub(rec, "650", "a")
        if not s:
            return None
        words = _words(s)
        if 2 <= len(words) <= 4 and all(ASCII_WORD.match(w) for w in words) and rng.random() < 0.4:
            return f'dc.subject="{" ".join(words)}"'
        cw = _content_words(s, 5)
        return f"dc.subject={rng.choice(cw)}" if cw else None
    if kind == "isbn":
        for f in rec.get_fields("020"):
            for a in f.get_subfields("a"):
                tok = a.split()[0] if a.split() else ""
                if ISBN_RE.match(tok):
                    return f"dc.identifier={tok}"
        return None
    if kind in ("year", "year_range"):
        f = rec.get("008")
        y = f.data[7:11] if f is not None else ""
        if not YEAR_RE.match(y):
            return None
        if kind == "year":
            return f"dc.date={y}"
        return f"dc.date>={y} and dc.date<={int(y) + 2}"
    if kind == "and":
        s = _content_words(_sub(rec, "650", "a") or "", 5)
        if not twords or not s:
            return None
        return f"dc.title={rng.choice(twords)} and dc.subject={rng.choice(s)}"
    if kind == "or":
        if len(set(twords)) < 2:
            return None
        a, b = rng.sample(sorted(set(twords)), 2)
        return f"dc.title={a} or dc.title={b}"
    if kind == "not":
        s = _content_words(_sub(rec, "650", "a") or "", 5)
        if not twords or not s:
            return None
        return f"dc.title={rng.choice(twords)} not dc.subject={rng.choice(s)}"
    if kind == "truncation":
        long = [w for w in twords if len(w) >= 7]
        if not long:
            return None
        return f"dc.title={rng.choice(long)[:5]}*"
    raise ValueError(kind)


def _clean_ja(v: str) -> str:
    return v.strip(STRIP + "　・")


def _japanese(kind: str, rec: pymarc.Record, rng: random.Random) -> str | None:
    t880 = _linked_880(rec, "245")
    title = _clean_ja(t880[0].get_subfields("a")[0]) if t880 and t880[0].get_subfields("a") else ""
    if kind == "ja_title_whole":
        # an unspaced all-Japanese title: one "word" even for Zebra's string.chr
        if 3 <= len(title) <= 12 and all(_is_cjk(c) or _is_kana(c) or c == "ー" for c in title):
            return f"dc.title={_q(title)}"
        return None
    if kind in ("ja_title_kanji", "ja_anywhere"):
        runs = _runs(title, _is_cjk, 2, 4)
        if not runs or title in runs:
            return None  # want a part of a longer title
        idx = "dc.title" if kind == "ja_title_kanji" else "cql.serverChoice"
        return f"{idx}={rng.choice(runs)}"
    if kind == "ja_title_kana":
        runs = _runs(title, lambda c: unicodedata.name(c, "").startswith("KATAKANA") or c == "ー", 3, 8)
        runs = [r for r in runs if r != title and not set(r) <= {"ー"}]
        return f"dc.title={rng.choice(runs)}" if runs else None
    if kind == "ja_creator":
        c880 = _linked_880(rec, "100")
        if not c880 or not c880[0].get_subfields("a"):
            return None
        name = _clean_ja(c880[0].get_subfields("a")[0].split(",")[0])
        if 2 <= len(name) <= 8 and all(_is_cjk(c) or _is_kana(c) for c in name):
            return f"dc.creator={_q(name)}"
        return None
    if kind == "ja_and":
        runs = sorted(set(_runs(title, _is_cjk, 2, 4)))
        if len(runs) < 2:
            return None
        a, b = rng.sample(runs, 2)
        return f"dc.title={a} and dc.title={b}"
    raise ValueError(kind)


def build_workload(path: Path, *, seed: int = DEFAULT_SEED, limit: int | None = None,
                   ja_source: Path | None = None, raw: list[bytes] | None = None) -> list[Query]:
    """The 50 queries for the first ``limit`` records of ``path``.

    Japanese queries come from the same records when they hold at least 50 jpn
    records with 880 fields; otherwise from ``ja_source`` (e.g. the full file,
    when ``limit`` cut the Japanese records off) and are marked as such.
    """
    rng = random.Random(seed)
    recs = raw if raw is not None else split_records(path, limit)
    english = [k for k, _ in QUOTAS if not k.startswith("ja_")]
    japan = [k for k, _ in QUOTAS if k.startswith("ja_")]
    quota = dict(QUOTAS)
    found: dict[str, list[tuple[str, str]]] = {k: [] for k, _ in QUOTAS}
    seen: set[str] = set()

    def fill(kinds, pool_recs, order, note=""):
        for i in order:
            todo = [k for k in kinds if len(found[k]) < quota[k]]
            if not todo:
                return
            rec = _parse(pool_recs[i])
            if rec is None:
                continue
            for k in todo:
                cql = (_japanese if k.startswith("ja_") else _english)(k, rec, rng)
                if cql and cql not in seen:
                    seen.add(cql)
                    found[k].append((cql, _id(rec) + note))
                    break  # one query per record

    order = list(range(len(recs)))
    rng.shuffle(order)
    fill(english, recs, order[:200_000])

    def jp_indices(rs):
        out = []
        for i, r in enumerate(rs):
            f = _control(r, b"008")
            if f is not None and f[35:38] == b"jpn" and _has_tag(r, b"880"):
                out.append(i)
        return out

    jrecs, note = recs, ""
    jidx = jp_indices(recs)
    if len(jidx) < 50 and ja_source is not None and Path(ja_source) != Path(path):
        jrecs = split_records(ja_source)
        jidx = jp_indices(jrecs)
        note = " (outside the indexed subset)"
    rng.shuffle(jidx)
    fill(japan, jrecs, jidx, note)

    out: list[Query] = []
    for kind, _ in QUOTAS:
        for cql, src in found[kind]:
            out.append(Query(len(out) + 1, kind, cql, src))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="print the benchmark's CQL workload")
    ap.add_argument("file", type=Path)
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    wl = build_workload(a.file, seed=a.seed, limit=a.records)
    if a.json:
        print(json.dumps([asdict(q) for q in wl], ensure_ascii=False, indent=1))
    else:
        for q in wl:
            print(f"{q.n:2d} {q.kind:15s} {q.cql:60s} {q.source}")
    if len(wl) < N_QUERIES:
        print(f"warning: only {len(wl)} queries could be built", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
