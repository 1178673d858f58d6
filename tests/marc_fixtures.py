"""Generators of small MARC test files, all built in code (no downloaded data).

Records:
    make_record(**kw) -> pymarc.Record      a bibliographic record with holdings (852)
    iso_record_bytes(record) -> bytes        ISO 2709 (UTF-8) bytes of a record
    build_iso(fields, ...) -> bytes          low-level ISO 2709 builder from raw field bytes
    marc8_record_bytes() -> bytes            a MARC-8 record (ANSEL macron + EACC kanji/kana)

Files (each returns the path it wrote):
    write_iso2709(path, records)             write_iso2709_gz(path, records)
    write_marcxml(path, records)             write_marcxml_gz(path, records)
    bad_file(path) -> (path, expected)       good records mixed with every kind of damage
    bad_marcxml_file(path) -> (path, expected)
    write_many_iso2709(path, n) / write_many_marcxml(path, n)   large files, fast

``expected`` is a list of (position, "good" | "bad") with 1-based positions;
BAD_FILE_NOTES / BAD_MARCXML_NOTES give, per position, a fragment of the
expected reason (bad) or of the expected encoding/warning (good).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pymarc
from pymarc import marc8_mapping

MARCXML_NS = "http://www.loc.gov/MARC21/slim"

# Default vernacular content (a plausible Japanese book).
ROMANIZED_TITLE = "Tōkyō no rekishi"
KANJI_TITLE = "東京の歴史"
KANA_READING = "トウキョウ ノ レキシ"
ROMANIZED_AUTHOR = "Yamada, Tarō"
KANJI_AUTHOR = "山田, 太郎"
KANA_AUTHOR = "ヤマダ, タロウ"
HALFWIDTH_TITLE = "ﾄｳｷｮｳ ﾉ ﾚｷｼ"  # half-width katakana (U+FF84 ...)

DEFAULT_HOLDING = {
    "library": "iizuka",
    "branch": "main",
    "call_number": "210.1/Y",
    "location": "stacks",
    "barcode": "1000000001",
}


def _sf(*pairs: str) -> list[pymarc.Subfield]:
    it = iter(pairs)
    return [pymarc.Subfield(code, value) for code, value in zip(it, it)]


def _df(tag: str, ind: str, *pairs: str) -> pymarc.Field:
    return pymarc.Field(tag=tag, indicators=pymarc.Indicators(ind[0], ind[1]), subfields=_sf(*pairs))


def make_record(
    *,
    control_number: str = "rec00001",
    title: str | None = None,
    subtitle: str | None = None,
    author: str | None = None,
    isbn: str | None = "9784000000001",
    year: str = "2016",
    entered: str = "160315",
    language: str = "jpn",
    country: str = "ja ",
    place: str = "Tōkyō",
    publisher: str = "Iwanami Shoten",
    use_264: bool = False,
    subjects: list[str] | tuple[str, ...] = ("Tokyo (Japan)--History",),
    holdings: list[dict] | None = None,
    vernacular_in_880: bool = False,
    vernacular_in_245: bool = False,
    vernacular_title: str = KANJI_TITLE,
    reading: str = KANA_READING,
    vernacular_author: str = KANJI_AUTHOR,
    author_reading: str = KANA_AUTHOR,
    leader: str = "00000nam a2200000 i 4500",
    extra_fields: list[pymarc.Field] | None = None,
) -> pymarc.Record:
    """A bibliographic record: 001, 008, 020, 100, 245, 260 or 264, 650, 852s.

    vernacular_in_880 -- LoC convention: romanized 245/100 with the kanji in
        linked 880s ($6 880-01 / $6 245-01/$1).
    vernacular_in_245 -- NDL convention: kanji 245/100 with the katakana
        reading in linked 880s.
    holdings -- list of dicts with library, branch, call_number, location,
        barcode (one 852 each); default one holding, [] for none.
    """
    if vernacular_in_880 and vernacular_in_245:
        raise ValueError("choose one of vernacular_in_880 and vernacular_in_245")
    rec = pymarc.Record(force_utf8=True, leader=leader)
    rec.leader = pymarc.Leader(leader[:9] + "a" + leader[10:])
    rec.add_field(pymarc.Field(tag="001", data=control_number))
    f008 = f"{entered}s{year}    {country:<3}" + " " * 17 + f"{language:<3}" + " d"
    assert len(f008) == 40, f008
    rec.add_field(pymarc.Field(tag="008", data=f008))
    if isbn:
        rec.add_field(_df("020", "  ", "a", isbn))

    if vernacular_in_245:
        main_title = title if title is not None else vernacular_title
        main_author = author if author is not None else vernacular_author
    else:
        main_title = title if title is not None else ROMANIZED_TITLE
        main_author = author if author is not None else ROMANIZED_AUTHOR
    linked = vernacular_in_880 or vernacular_in_245

    if main_author:
        pairs = (["6", "880-02"] if linked else []) + ["a", main_author + ","]
        rec.add_field(_df("100", "1 ", *pairs))
    pairs = (["6", "880-01"] if linked else []) + ["a", main_title + (" :" if subtitle else " /")]
    if subtitle:
        pairs += ["b", subtitle + " /"]
    if main_author:
        pairs += ["c", main_author + "."]
    rec.add_field(_df("245", "10", *pairs))
    if use_264:
        rec.add_field(_df("264", " 1", "a", place + " :", "b", publisher + ",", "c", year + "."))
    else:
        rec.add_field(_df("260", "  ", "a", place + " :", "b", publisher + ",", "c", year + "."))
    for subject in subjects:
        rec.add_field(_df("650", " 0", "a", subject + "."))

    if vernacular_in_880:  # LoC: vernacular script in the 880s
        rec.add_field(_df("880", "10", "6", "245-01/$1", "a", vernacular_title + " /", "c", vernacular_author + "."))
        if main_author:
            rec.add_field(_df("880", "1 ", "6", "100-02/$1", "a", vernacular_author + ","))
    elif vernacular_in_245:  # NDL: readings in the 880s
        rec.add_field(_df("880", "10", "6", "245-01/$1", "a", reading + " /"))
        if main_author:
            rec.add_field(_df("880", "1 ", "6", "100-02/$1", "a", author_reading + ","))

    for f in extra_fields or ():
        rec.add_field(f)
    for h in [DEFAULT_HOLDING] if holdings is None else holdings:
        pairs = ["a", h.get("library", "")]
        if h.get("branch"):
            pairs += ["b", h["branch"]]
        if h.get("location"):
            pairs += ["c", h["location"]]
        if h.get("call_number"):
            pairs += ["h", h["call_number"]]
        if h.get("barcode"):
            pairs += ["p", h["barcode"]]
        rec.add_field(_df("852", "  ", *pairs))
    return rec


# ---------------------------------------------------------------------------
# ISO 2709


def build_iso(
    fields: list[tuple[str, bytes]],
    *,
    leader: str = "00000nam a2200000 i 4500",
    leader9: str | None = None,
    declared_length: str | None = None,
) -> bytes:
    """ISO 2709 bytes from (tag, raw field bytes without terminator) pairs.

    Data fields must include their indicators and 0x1F delimiters.  leader9
    overrides leader/09; declared_length (5 characters) overrides the record
    length written in leader/00-04 (default: the true length).
    """
    directory = bytearray()
    data = bytearray()
    for tag, value in fields:
        value = bytes(value) + b"\x1e"
        if len(value) > 9999 or len(data) > 99999:
            raise ValueError(f"field {tag} cannot be addressed by a MARC directory")
        directory += tag.encode("ascii") + b"%04d%05d" % (len(value), len(data))
        data += value
    base = 24 + len(directory) + 1
    total = base + len(data) + 1
    lead = bytearray(leader.encode("ascii"))
    if leader9 is not None:
        lead[9:10] = leader9.encode("ascii")
    if declared_length is not None:
        length = declared_length
    else:  # a length over 99,999 cannot be written: "00000", as some systems do
        length = "%05d" % total if total <= 99999 else "00000"
    if len(length) != 5:
        raise ValueError("declared_length must be 5 characters")
    lead[0:5] = length.encode("latin-1")
    lead[12:17] = b"%05d" % base
    return bytes(lead) + bytes(directory) + b"\x1e" + bytes(data) + b"\x1d"


def field_bytes(field: pymarc.Field, encoding: str = "utf-8") -> bytes:
    if field.control_field:
        return field.data.encode(encoding)
    out = (field.indicators[0] + field.indicators[1]).encode("ascii")
    for sf in field.subfields:
        out += b"\x1f" + sf.code.encode("ascii") + sf.value.encode(encoding)
    return out


def iso_record_bytes(record: pymarc.Record, **kw) -> bytes:
    """ISO 2709 UTF-8 bytes of a pymarc record (see build_iso for keywords)."""
    kw.setdefault("leader", str(record.leader))
    kw.setdefault("leader9", "a")
    return build_iso([(f.tag, field_bytes(f)) for f in record.fields], **kw)


def _open_out(path, gz: bool):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        return path, gzip.open(path, "wb")
    return path, open(path, "wb")


def write_iso2709(path, records, *, gz: bool = False) -> Path:
    """Write records (pymarc.Record or ready ISO 2709 bytes) to path."""
    path, out = _open_out(path, gz)
    with out:
        for rec in records:
            out.write(rec if isinstance(rec, (bytes, bytearray)) else iso_record_bytes(rec))
    return path


def write_iso2709_gz(path, records) -> Path:
    return write_iso2709(path, records, gz=True)


# ---------------------------------------------------------------------------
# MARCXML


def marcxml_record(record: pymarc.Record, *, prefix: str = "") -> str:
    """One <record> element as text (prefix: namespace prefix with colon, or '')."""
    p = prefix
    parts = [f"<{p}record>", f"<{p}leader>{escape(str(record.leader))}</{p}leader>"]
    for f in record.fields:
        if f.control_field:
            parts.append(f"<{p}controlfield tag={quoteattr(f.tag)}>{escape(f.data)}</{p}controlfield>")
        else:
            parts.append(
                f"<{p}datafield tag={quoteattr(f.tag)} ind1={quoteattr(f.indicators[0])} "
                f"ind2={quoteattr(f.indicators[1])}>"
            )
            for sf in f.subfields:
                parts.append(f"<{p}subfield code={quoteattr(sf.code)}>{escape(sf.value)}</{p}subfield>")
            parts.append(f"</{p}datafield>")
    parts.append(f"</{p}record>")
    return "".join(parts)


def write_marcxml(path, records, *, gz: bool = False, namespace: bool = True, prefix: str = "") -> Path:
    """Write a MARCXML collection.  Items may be pymarc records or ready XML
    text of one <record> element.  namespace=False writes no namespace."""
    path, out = _open_out(path, gz)
    p = f"{prefix}:" if prefix else ""
    if namespace:
        decl = f' xmlns{":" + prefix if prefix else ""}="{MARCXML_NS}"'
    else:
        decl = ""
        p = ""
    with out:
        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write(f"<{p}collection{decl}>\n".encode())
        for rec in records:
            text = rec if isinstance(rec, str) else marcxml_record(rec, prefix=p)
            out.write(text.encode("utf-8") + b"\n")
        out.write(f"</{p}collection>\n".encode())
    return path


def write_marcxml_gz(path, records, **kw) -> Path:
    return write_marcxml(path, records, gz=True, **kw)


# ---------------------------------------------------------------------------
# MARC-8


def _eacc_bytes(text: str) -> bytes:
    """EACC (MARC-8 CJK) bytes of text, using pymarc's MARC-8 tables in reverse."""
    table = marc8_mapping.CODESETS[0x31]
    reverse: dict[str, int] = {}
    for code, (uni, combining) in table.items():
        if not combining:
            reverse.setdefault(chr(uni), code)
    out = bytearray()
    for ch in text:
        code = reverse[ch]
        out += code.to_bytes(3, "big")
    return bytes(out)


MARC8_TITLE_UNICODE = "Tōkyō no rekishi"  # what the MARC-8 title decodes to (NFC)
MARC8_TITLE = b"T\xe5oky\xe5o no rekishi"  # ANSEL: combining macron 0xE5 precedes the letter
MARC8_VERNACULAR_UNICODE = "東京の歴史"
MARC8_VERNACULAR = b"\x1b$1" + _eacc_bytes(MARC8_VERNACULAR_UNICODE) + b"\x1b(B"


def marc8_fields(control_number: str = "m8-0001") -> list[tuple[str, bytes]]:
    return [
        ("001", control_number.encode("ascii")),
        ("008", b"160315s2016    ja                 jpn d"),
        ("100", b"1 \x1f6880-02\x1faYamada, Tar\xe5o,"),
        ("245", b"10\x1f6880-01\x1fa" + MARC8_TITLE + b" /\x1fcYamada Tar\xe5o."),
        ("260", b"  \x1faT\xe5oky\xe5o :\x1fbIwanami Shoten,\x1fc2016."),
        ("880", b"10\x1f6245-01/$1\x1fa" + MARC8_VERNACULAR + b" /"),
        ("852", b"  \x1faiizuka\x1fbmain\x1fh210.1/Y\x1fp1000000002"),
    ]


def marc8_record_bytes(control_number: str = "m8-0001", *, leader9: str = " ") -> bytes:
    """A MARC-8 record (leader/09 blank unless overridden): a Latin title with
    ANSEL combining macrons and an 880 with EACC kanji/kana (ESC $ 1 ... ESC ( B).

    Checked on creation by decoding it back with pymarc.
    """
    raw = build_iso(marc8_fields(control_number), leader9=leader9)
    check = raw if leader9 == " " else raw[:9] + b" " + raw[10:]
    rec = pymarc.Record(data=check, to_unicode=True, force_utf8=False, hide_utf8_warnings=True)
    assert rec["245"]["a"] == MARC8_TITLE_UNICODE + " /", rec["245"]["a"]
    assert rec["880"]["a"] == MARC8_VERNACULAR_UNICODE + " /", rec["880"]["a"]
    return raw


# ---------------------------------------------------------------------------
# a file with every kind of damage


def _replace_dir_entry(raw: bytes, tag: bytes, new_length: int | None = None, new_offset: int | None = None) -> bytes:
    base = int(raw[12:17])
    for i in range(24, base - 1, 12):
        if raw[i : i + 3] == tag:
            ln = int(raw[i + 3 : i + 7]) if new_length is None else new_length
            off = int(raw[i + 7 : i + 12]) if new_offset is None else new_offset
            return raw[:i] + tag + b"%04d%05d" % (ln, off) + raw[i + 12 :]
    raise KeyError(tag)


def big_record_fields(control_number: str, target: int = 105_000) -> list[tuple[str, bytes]]:
    """Fields of a record longer than 99,999 bytes (every field still addressable)."""
    fields = [("001", control_number.encode()), ("245", b"10\x1faA very long record /\x1fcTest.")]
    size = 200
    i = 0
    while size < target:
        chunk = min(9000, target - size)
        text = (b"Contents note %04d. " % i) * (chunk // 20 + 1)
        fields.append(("505", b"0 \x1fa" + text[:chunk]))
        size += chunk + 17
        i += 1
    return fields


BAD_FILE_NOTES: dict[int, str] = {}


def bad_file(path) -> tuple[Path, list[tuple[int, str]]]:
    """Write an ISO 2709 file mixing good records with damaged ones.

    Returns (path, expected): expected is [(position, "good" | "bad"), ...].
    BAD_FILE_NOTES[position] holds a fragment of the expected reason (bad)
    or of the expected encoding / warning (good).
    """
    items: list[tuple[bytes, str, str]] = []

    def good(n: int, **kw) -> bytes:
        kw.setdefault("control_number", f"good{n:03d}")
        return iso_record_bytes(make_record(**kw))

    items.append((good(1, vernacular_in_880=True), "good", "utf-8"))
    # bad directory: the 245 entry points past the end of the record
    raw = good(2)
    items.append((_replace_dir_entry(raw, b"245", new_offset=90000), "bad",
                  "bad directory: entry 5 (field 245) points past end of record"))
    items.append((good(3, vernacular_in_245=True), "good", "utf-8"))
    # invalid UTF-8 (0xFF is not MARC-8 either)
    raw = build_iso([("001", b"badutf8"), ("245", b"10\x1faBroken \xff title")])
    items.append((raw, "bad", "invalid UTF-8 in field 245 at byte 11"))
    # 0x1F inside control field 001 (as in a few LoC records)
    raw = build_iso([("001", b"ocm12345\x1f6"), ("245", b"10\x1faTitle")])
    items.append((raw, "bad", "stray control character U+001F in field 001 at byte 8"))
    items.append((good(6), "good", "utf-8"))
    # record length not numeric
    raw = good(7)
    items.append((b"ab123" + raw[5:], "bad", "leader length is not numeric: 'ab123'"))
    items.append((good(8, use_264=True), "good", "utf-8"))
    # leader says UTF-8, data is MARC-8
    items.append((marc8_record_bytes("lie-utf8", leader9="a"), "good", "marc-8 (leader says utf-8)"))
    # leader says MARC-8, data is UTF-8
    items.append((iso_record_bytes(make_record(control_number="lie-marc8", vernacular_in_880=True), leader9=" "),
                  "good", "utf-8 (leader says marc-8)"))
    # a genuine MARC-8 record
    items.append((marc8_record_bytes("marc8-ok"), "good", "marc-8"))
    # records over 99,999 bytes: length written as 00000, and a wrong length
    items.append((build_iso(big_record_fields("big00000"), declared_length="00000"), "good", "record length wrong"))
    big = build_iso(big_record_fields("bigwrong", 104_321), declared_length="00000")
    items.append((b"%05d" % (len(big) % 100000) + big[5:], "good", "record length wrong"))
    # half-width katakana title
    items.append((good(14, title=HALFWIDTH_TITLE), "good", "utf-8"))
    # a C1 control character (U+0085) in a title
    raw = build_iso([("001", b"c1ctl"), ("245", "10\x1faNext\u0085line".encode())])
    items.append((raw, "bad", "stray control character U+0085 in field 245 at byte 8"))
    # a record cut short in the middle of the file, followed by a good one
    raw = good(16)
    items.append((raw[: len(raw) // 2], "bad", "record truncated"))
    items.append((good(17), "good", "utf-8"))
    # a stray field terminator inside a field
    raw = build_iso([("001", b"strayft"), ("245", b"10\x1faTitle\x1ewith terminator"), ("500", b"  \x1faNote")])
    items.append((raw, "bad", "stray control character U+001E in field 245 at byte 9"))
    items.append((good(19), "good", "utf-8"))
    # the last record is truncated at end of file
    raw = good(20)
    items.append((raw[:300], "bad", f"record truncated at end of file (declared {len(raw)} bytes, 300 present)"))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for raw, _status, _note in items:
            out.write(raw)
    BAD_FILE_NOTES.clear()
    expected = []
    for i, (_raw, status, note) in enumerate(items, 1):
        expected.append((i, status))
        BAD_FILE_NOTES[i] = note
    return path, expected


BAD_MARCXML_NOTES: dict[int, str] = {}


def bad_marcxml_file(path) -> tuple[Path, list[tuple[int, str]]]:
    """A well-formed MARCXML file whose records are partly malformed."""
    good1 = marcxml_record(make_record(control_number="x1", vernacular_in_880=True))
    good2 = marcxml_record(make_record(control_number="x2"))
    no_leader = ('<record><controlfield tag="001">x3</controlfield>'
                 '<datafield tag="245" ind1="1" ind2="0"><subfield code="a">No leader</subfield></datafield></record>')
    bad_tag = good2.replace('tag="245"', 'tag="24"')
    bad_ind = good2.replace('ind1="1" ind2="0"', 'ind1="10" ind2="0"', 1)
    c1 = good2.replace("Iwanami Shoten", "Iwanami\u0085Shoten")
    items = [
        (good1, "good", ""),
        (no_leader, "bad", "record has no leader"),
        (bad_tag, "bad", "malformed tag '24'"),
        (good2, "good", ""),
        (bad_ind, "bad", "malformed indicators"),
        (c1, "bad", "stray control character U+0085 in field 260 subfield $b"),
        (good2.replace("x2", "x7"), "good", ""),
    ]
    write_marcxml(path, [text for text, _s, _n in items])
    BAD_MARCXML_NOTES.clear()
    expected = []
    for i, (_t, status, note) in enumerate(items, 1):
        expected.append((i, status))
        BAD_MARCXML_NOTES[i] = note
    return Path(path), expected


def many_records(n: int, *, start: int = 1):
    """n varied records (generator), for streaming / speed tests."""
    langs = ("jpn", "eng", "chi", "kor")
    for i in range(start, start + n):
        yield make_record(
            control_number=f"r{i:07d}",
            title=f"Record number {i} {'x' * (i % 50)}",
            language=langs[i % 4],
            year=str(1950 + i % 70),
            vernacular_in_880=(i % 3 == 0),
            holdings=[dict(DEFAULT_HOLDING, barcode=f"{i:010d}")],
        )


def _templates(k: int = 100) -> list[pymarc.Record]:
    return list(many_records(k))


def write_many_iso2709(path, n: int, *, gz: bool = False) -> Path:
    """n records (001 = r0000001 ...) built fast from 100 templates."""
    templates = [[(f.tag, field_bytes(f)) for f in rec.fields] for rec in _templates()]

    def gen():
        for i in range(1, n + 1):
            fields = templates[i % len(templates)]
            yield build_iso([("001", b"r%07d" % i)] + fields[1:])

    return write_iso2709(path, gen(), gz=gz)


def write_many_marcxml(path, n: int, *, gz: bool = False) -> Path:
    """n MARCXML records (001 = r0000001 ...) built fast from 100 templates."""
    templates = []
    for rec in _templates():
        text = marcxml_record(rec)
        cn = rec["001"].data
        templates.append(text.split(f">{cn}<"))

    def gen():
        for i in range(1, n + 1):
            head, tail = templates[i % len(templates)]
            yield f"{head}>r{i:07d}<{tail}"

    return write_marcxml(path, gen(), gz=gz)


def file_size(path) -> int:
    return os.path.getsize(path)
