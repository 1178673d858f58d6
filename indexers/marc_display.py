"""MARC display helpers shared by the front ends (SRU record schemas, Z39.50
record syntaxes, the OPAC): MARCXML text of a record, the linked-880 pairing
that prefers the vernacular, ISBD clean-up, and the Dublin Core values of a
record.  Plain functions of pymarc records; no XML library, no protocol."""
from __future__ import annotations

import functools
import re
from itertools import accumulate
from typing import Iterable, Iterator

import pymarc

MARC_NS = "http://www.loc.gov/MARC21/slim"
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Replace characters XML 1.0 cannot carry by U+FFFD."""
    return _ILLEGAL_XML.sub("\ufffd", text)


def marc_of(record) -> pymarc.Record:
    """The pymarc record of a UnionRecord (or the record itself)."""
    return record.marc if hasattr(record, "marc") else record

# --------------------------------------------------------------------------
# MARCXML (MARC 21 slim): record = leader, controlfield*, datafield*
# --------------------------------------------------------------------------
def _esc_text(s: str) -> str:
    if _ILLEGAL_XML.search(s):
        s = _ILLEGAL_XML.sub("\ufffd", s)
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    if "\r" in s:
        s = s.replace("\r", "&#13;")
    return s


@functools.lru_cache(maxsize=4096)
def _esc_attr(s: str) -> str:
    """Attribute values here are tags, indicators and subfield codes: few distinct
    values, so the escaped forms are cached."""
    s = _esc_text(s)
    if '"' in s:
        s = s.replace('"', "&quot;")
    if "\t" in s or "\n" in s:
        s = s.replace("\t", "&#9;").replace("\n", "&#10;")
    return s


_SEP = "\ue000\ue001"  # joins a record's values so they are escaped in one pass


def marcxml_string(marc: pymarc.Record) -> str:
    """One MARC 21 slim ``record`` element as text.  The slim schema orders
    leader, control fields, data fields; a record stored out of that order is
    reordered.  Built as a string (escaping by hand) because that is several
    times faster than creating an lxml element per subfield; all text values of
    the record are escaped in one pass over their concatenation."""
    attr = _esc_attr
    control = []
    data_fields = []
    values = [str(marc.leader)]
    for f in marc.fields:
        if f.is_control_field():
            control.append(f)
            values.append(f.data or "")
        else:
            data_fields.append(f)
            values.extend(value for _code, value in f.subfields)
    joined = _SEP.join(values)
    escaped = _esc_text(joined).split(_SEP)
    if len(escaped) != len(values):  # the separator occurs in the data itself
        escaped = [_esc_text(v) for v in values]
    it = iter(escaped)
    out = [f'<record xmlns="{MARC_NS}"><leader>{next(it)}</leader>']
    append = out.append
    for f in control:
        append(f'<controlfield tag="{attr(f.tag)}">{next(it)}</controlfield>')
    for f in data_fields:
        ind = f.indicators or ("", "")      # a data field has them (None only on control fields)
        append(f'<datafield tag="{attr(f.tag)}" ind1="{attr(ind[0] or " ")}" '
               f'ind2="{attr(ind[1] or " ")}">')
        for code, _value in f.subfields:
            append(f'<subfield code="{attr(code)}">{next(it)}</subfield>')
        append("</datafield>")
    append("</record>")
    return "".join(out)

# --------------------------------------------------------------------------
# Helpers shared by DC and MODS
# --------------------------------------------------------------------------
_TRAILING = re.compile(r"[\s/:;,=+]+$")
_TRAILING_DOT = re.compile(r"(?<!\b[A-Za-z])\.$")


def clean_isbd(text: str) -> str:
    """Strip ISBD punctuation that ends a MARC subfield ("Title /", "Tōkyō :")."""
    text = _TRAILING.sub("", text.strip())
    text = _TRAILING_DOT.sub("", text)
    return _TRAILING.sub("", text)


def join_subfields(f: pymarc.Field, codes: str, sep: str = " ") -> str:
    return clean_isbd(sep.join(v.strip() for c, v in f.subfields if c in codes and v.strip()))


def script_rank(text: str) -> int:
    """2: contains Han ideographs, 1: other non-Latin script (kana, hangul...),
    0: Latin/other.  Used to order vernacular before romanized forms."""
    rank = 0
    for ch in text:
        o = ord(ch)
        if 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF:
            return 2
        if o >= 0x0370 and not (0x1E00 <= o <= 0x1EFF) and not (0x2000 <= o <= 0x2BFF) \
                and not (0xFF01 <= o <= 0xFF5E):
            rank = 1
    return rank


_SCRIPT_CODES = {"$1": "Hani", "(3": "Arab", "(N": "Cyrl", "(2": "Hebr", "(S": "Grek",
                 "(B": "Latn"}


class LinkedFields:
    """A MARC record with its 880 fields indexed by linkage occurrence."""

    __slots__ = ("marc", "by_occ", "unlinked", "lang")

    def __init__(self, marc: pymarc.Record):
        self.marc = marc
        self.by_occ: dict[tuple[str, str], pymarc.Field] = {}
        self.unlinked: dict[str, list[pymarc.Field]] = {}
        for f in marc.get_fields("880"):
            link = f.get("6") or ""
            tag, _, rest = link.partition("-")
            occ = rest[:2]
            if not tag:
                continue
            if occ and occ != "00":
                self.by_occ[(tag, occ)] = f
            else:
                self.unlinked.setdefault(tag, []).append(f)
        f008 = marc.get_fields("008")
        self.lang = f008[0].data[35:38].strip() if f008 and f008[0].data else ""

    def pairs(self, *tags: str) -> Iterator[tuple[pymarc.Field, pymarc.Field | None]]:
        """(field, linked 880 or None) for each field of the tags, then the
        unlinked 880s of those tags as (880, None)."""
        for f in self.marc.get_fields(*tags):
            link = f.get("6") or ""
            partner = None
            if link.startswith("880-"):
                partner = self.by_occ.get((f.tag, link[4:6]))
            yield f, partner
        for tag in tags:
            for f in self.unlinked.get(tag, ()):
                yield f, None

    def ordered(self, *tags: str) -> Iterator[tuple[pymarc.Field, str | None, str | None]]:
        """Each field and its 880 partner, vernacular first: yields
        (field, group id or None, script code) -- the group id ties the forms of
        one pair together (MODS altRepGroup)."""
        for n, (f, partner) in enumerate(self.pairs(*tags), 1):
            if partner is None:
                yield f, None, (self.script_of(f) if f.tag == "880" else None)
                continue
            group = (partner.get("6") or "")[4:6] or f"{n:02d}"
            forms = [f, partner]
            forms.sort(key=lambda x: -script_rank(join_subfields(x, "abcdefghijklmnopqrstuvwxyz")))
            for g in forms:
                yield g, group, self.script_of(g)

    def script_of(self, f: pymarc.Field) -> str:
        if f.tag == "880":
            link = f.get("6") or ""
            code = link.partition("/")[2][:2]
            script = _SCRIPT_CODES.get(code, "")
            if script == "Hani":
                if self.lang == "jpn":
                    return "Jpan"
                if self.lang == "kor":
                    return "Kore"
            return script
        return "Latn" if script_rank(join_subfields(f, "abcdefghijklmnopqrstuvwxyz")) == 0 else ""


def control_value(marc: pymarc.Record, tag: str) -> str:
    fs = marc.get_fields(tag)
    return fs[0].data if fs and fs[0].data else ""


def isbns(marc: pymarc.Record) -> Iterator[tuple[str, bool]]:
    """(ISBN as recorded without qualifiers, valid?) for 020 $a (valid) and $z."""
    for f in marc.get_fields("020"):
        for code, value in f.subfields:
            if code in "az":
                isbn = value.strip().split(" ")[0].strip()
                if isbn:
                    yield isbn, code == "a"


def lccn_of(marc: pymarc.Record) -> str:
    for f in marc.get_fields("010"):
        v = (f.get("a") or "").strip()
        if v:
            return v.split("/")[0].strip()
    return ""


def languages(lk: LinkedFields) -> list[str]:
    langs = []
    if lk.lang and lk.lang not in ("|||", "   ") and lk.lang.isalpha():
        langs.append(lk.lang)
    for f in lk.marc.get_fields("041"):
        for code, value in f.subfields:
            if code == "a":
                # 041 $a may pack several 3-letter codes in one subfield
                for i in range(0, len(value.strip()), 3):
                    c = value.strip()[i:i + 3]
                    if len(c) == 3 and c.isalpha() and c not in langs:
                        langs.append(c)
    return langs


def publication_fields(lk: LinkedFields):
    """260, or 264 with second indicator 1 (publication), with 880 partners."""
    out = []
    for f, group, script in lk.ordered("260", "264"):
        tag = f.tag if f.tag != "880" else (f.get("6") or "")[:3]
        if tag == "264" and f.indicator2 != "1":
            continue
        out.append((f, group, script))
    return out


YEAR_RE = re.compile(r"\d{4}")

_DC_TYPES = {
    "a": "Text", "t": "Text", "c": "Text", "d": "Text",
    "e": "Image", "f": "Image", "k": "StillImage", "g": "MovingImage",
    "i": "Sound", "j": "Sound", "m": "Software", "o": "Collection",
    "p": "Collection", "r": "PhysicalObject",
}

def unique(values: Iterable[str]) -> list[str]:
    seen = set()
    out = []
    for v in values:
        if v and v not in seen:
            seen.add(v)
            out.append(v)
    return out


def subject_heading(f: pymarc.Field) -> str:
    parts = [v.strip() for c, v in f.subfields
             if c in "abcdqtvxyz" and v.strip()]
    return clean_isbd(" -- ".join(clean_isbd(p) for p in parts))


def dc_values(record) -> list[tuple[str, str]]:
    """The (element, value) pairs of the project's MARC -> DC mapping:

    title       245 $a$b$n$p with its 880 (vernacular first), then 246 $a$b
    creator     100/110/111 (name parts, vernacular first)
    contributor 700/710/711
    subject     600-651 headings joined with " -- ", 653 $a
    publisher   260 $b / 264 (2nd ind. 1) $b
    date        260/264 $c, else 008/07-10
    type        DCMI type vocabulary from leader/06
    identifier  urn:isbn:..., urn:issn:..., info:lccn/...
    language    008/35-37 and 041 $a (ISO 639-2 codes)
    description 500, 504, 505, 520 $a
    format      300 $a$b$c
    """
    marc = marc_of(record)
    lk = LinkedFields(marc)
    out: list[tuple[str, str]] = []
    add = out.append
    for f, _, _ in lk.ordered("245"):
        t = join_subfields(f, "abnp")
        if t:
            add(("title", t))
    for f, _, _ in lk.ordered("246"):
        t = join_subfields(f, "ab")
        if t:
            add(("title", t))
    for f, _, _ in lk.ordered("100", "110", "111"):
        n = join_subfields(f, "abcdq")
        if n:
            add(("creator", n))
    for f, _, _ in lk.ordered("700", "710", "711"):
        n = join_subfields(f, "abcdq")
        if n:
            add(("contributor", n))
    for f, _, _ in lk.ordered("600", "610", "611", "630", "648", "650", "651"):
        h = subject_heading(f)
        if h:
            add(("subject", h))
    for f in marc.get_fields("653"):
        for c, v in f.subfields:
            if c == "a" and v.strip():
                add(("subject", clean_isbd(v)))
    pubs = publication_fields(lk)
    for v in unique(join_subfields(f, "b") for f, _, _ in pubs):
        add(("publisher", v))
    dates = unique(join_subfields(f, "c") for f, _, script in pubs if script in ("Latn", "", None))
    if not dates:
        dates = unique(join_subfields(f, "c") for f, _, _ in pubs)
    if not dates:
        d008 = control_value(marc, "008")[7:11]
        if YEAR_RE.fullmatch(d008):
            dates = [d008]
    for d in dates[:1]:
        add(("date", d))
    ldr = str(marc.leader)
    dtype = _DC_TYPES.get(ldr[6:7]) if len(ldr) > 7 else None
    if dtype:
        add(("type", dtype))
    f300 = marc.get_fields("300")
    if f300:
        ext = join_subfields(f300[0], "abc")
        if ext:
            add(("format", ext))
    for isbn, valid in isbns(marc):
        if valid:
            add(("identifier", f"urn:isbn:{isbn}"))
    for f in marc.get_fields("022"):
        v = (f.get("a") or "").strip()
        if v:
            add(("identifier", f"urn:issn:{v}"))
    lccn = lccn_of(marc)
    if lccn:
        add(("identifier", f"info:lccn/{lccn.replace(' ', '')}"))
    for lang in languages(lk):
        add(("language", lang))
    for f in marc.get_fields("500", "504", "505", "520"):
        d = join_subfields(f, "a")
        if d:
            add(("description", d))
    return out


# ---------------------------------------------------------------------------
# ISO 2709 assembly (UTF-8), shared by the Z39.50 USMARC encoder and the display
# fast path that splices holdings into a stored record without parsing it.

ISO2709_MAX_FIELD = 9999      # 4-digit field length in the directory (terminator included)
ISO2709_MAX_RECORD = 99999    # 5-digit record length in the leader
_ISO_TAG = re.compile(rb"[0-9A-Za-z]{3}\Z")
_SEPARATORS = re.compile("[\x1d\x1e\x1f]")


class Iso2709Overflow(ValueError):
    """The record cannot be written as ISO 2709 (a field or the record is too long)."""


def iso2709_value(s) -> bytes:
    """Field content as UTF-8; the ISO 2709 separators (0x1D, 0x1E, 0x1F) inside
    data would break the record's structure and become U+FFFD."""
    s = "" if s is None else str(s)
    if _SEPARATORS.search(s):
        s = _SEPARATORS.sub("\ufffd", s)
    return s.encode("utf-8", "replace")


def iso2709_assemble(leader: str, fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    """An ISO 2709 record from a leader and (tag, body) pairs (body without its
    field terminator): directory, lengths and base address computed here; leader/09
    'a' (UTF-8), indicator and subfield code counts 2, entry map 4500; other leader
    positions kept (non-printable ones become spaces). Raises Iso2709Overflow."""
    directory = bytearray()
    data = bytearray()
    for tag, body in fields:
        length = len(body) + 1
        if length > ISO2709_MAX_FIELD:
            raise Iso2709Overflow(f"field {tag.decode('ascii', 'replace')} is {length:,} bytes, "
                                  f"more than ISO 2709's {ISO2709_MAX_FIELD:,}")
        if len(data) > ISO2709_MAX_RECORD:
            raise Iso2709Overflow(f"the record is more than {ISO2709_MAX_RECORD:,} bytes")
        directory += tag + b"%04d%05d" % (length, len(data))
        data += body
        data.append(0x1E)
    base = 24 + len(directory) + 1
    total = base + len(data) + 1
    if total > ISO2709_MAX_RECORD:
        raise Iso2709Overflow(f"the record is {total:,} bytes, more than ISO 2709's {ISO2709_MAX_RECORD:,}")
    return _leader(leader, total, base) + bytes(directory) + b"\x1e" + bytes(data) + b"\x1d"


# What decoding and re-encoding fields gives back unchanged: control fields (00X)
# without separators, then data fields with two printable indicators and subfields
# each with a one-byte printable code (no empty code, no text before the first).
_DIRECTORY = re.compile(rb"(?:[0-9A-Za-z]{3}[0-9]{9})*")
# in such a directory: the leading control-field entries (00X), and a control-field
# entry later on (at an entry's start)
_CONTROLS = re.compile(rb"(?:00[0-9][0-9]{9})*")
_CONTROL_LATER = re.compile(rb"(?:[0-9A-Za-z]{3}[0-9]{9})*?00[0-9]")


# In the data fields joined as \x1e + body + \x1e + body ... (\x1e before each body):
# a field start without two printable indicators followed by a subfield, the field's
# end or the data's end; a subfield delimiter without a printable one-byte code.
_BAD_DATA_FIELD = re.compile(rb"\x1e(?![ -~]{2}(?:\x1f|\x1e|$))|\x1f(?![!-~])|\x1d")


def splice_iso2709(raw: bytes, drop: frozenset[bytes] | set[bytes], tag: bytes,
                   bodies: list[bytes]) -> bytes | None:
    """A stored UTF-8 ISO 2709 record with the fields tagged ``drop`` removed and
    fields ``tag`` (bodies without terminators) inserted where pymarc's
    ``add_ordered_field`` puts them (before the first field with a greater numeric
    tag, or a non-numeric one) -- without decoding the record. The result equals
    ``iso2709_assemble`` of the decoded record so changed. None when the record is
    not in that canonical form (control fields first, contiguous directory, fields
    as above) or would not fit ISO 2709: the caller then takes the decoding path.

    A Z39.50 Present runs this for every record, so the checks are whole-buffer
    operations where possible (regular expressions, ``split``, one formatted
    directory compared with the stored one) rather than a Python step per field;
    where nothing is dropped the directory entries and data before the insertion
    point are copied as they are."""
    if len(raw) < 26 or raw[-1] != 0x1D or not raw[:24].isascii():
        return None
    try:
        base = int(raw[12:17])
    except ValueError:
        return None
    if base < 25 or (base - 25) % 12 or len(raw) <= base or raw[base - 1] != 0x1E:
        return None
    directory = raw[24:base - 1]
    if _DIRECTORY.fullmatch(directory) is None:
        return None
    area = raw[base:-1]                                   # the fields, each with its terminator
    if not area.endswith(b"\x1e"):
        return None
    found = area[:-1].split(b"\x1e")
    if len(found) * 12 != len(directory):
        return None
    tags = [directory[i:i + 3] for i in range(0, len(directory), 12)]
    lengths = [len(f) + 1 for f in found]
    # the directory must describe exactly these fields, contiguous and in order: the
    # same as writing it again from the fields (4 and 5 digits read back as written)
    if b"".join([b"%s%04d%05d" % e for e in zip(tags, lengths, accumulate(lengths, initial=0))]) != directory:
        return None
    controls = _CONTROLS.match(directory).end() // 12   # type: ignore[union-attr]
    if controls == len(tags):
        return None                                   # no data field: the decoding path decides
    if _CONTROL_LATER.match(directory, controls * 12) is not None:
        return None                                   # a control field after a data field
    start = base + sum(lengths[:controls])            # first data field, in raw
    if controls and (b"\x1f" in raw[base:start] or b"\x1d" in raw[base:start]):
        return None
    # the data fields as \x1e + body + \x1e + body ...: the \x1e before the first is
    # the directory's terminator or the last control field's
    if _BAD_DATA_FIELD.search(raw, start - 1, len(raw) - 2) is not None:
        return None
    n = len(tags)
    for b in bodies:
        if len(b) + 1 > ISO2709_MAX_FIELD:
            return None
    added = b"".join([b + b"\x1e" for b in bodies])
    if drop.isdisjoint(tags):
        at = n
        if tag.isdigit() and len(tag) == 3:
            m = _after_tag(tag).match(directory)
            if m is not None:
                at = (m.end() - 3) // 12
        elif tag.isdigit():
            at = next((i for i, t in enumerate(tags) if not t.isdigit() or t > tag), n)
        # entries and data before the insertion point stay as they are
        offset = sum(lengths[:at])
        tail = [b"%s%04d%05d" % e for e in
                zip([tag] * len(bodies) + tags[at:], [len(b) + 1 for b in bodies] + lengths[at:],
                    accumulate([len(b) + 1 for b in bodies] + lengths[at:], initial=offset))]
        new_directory = directory[:12 * at] + b"".join(tail)
        data = area[:offset] + added + area[offset:]
    else:
        keep = [t not in drop for t in tags]
        kept_tags = [t for t, k in zip(tags, keep) if k]
        kept = [f for f, k in zip(found, keep) if k]
        at = len(kept_tags)
        if tag.isdigit():
            at = next((i for i, t in enumerate(kept_tags) if not t.isdigit() or t > tag), at)
        new_tags = kept_tags[:at] + [tag] * len(bodies) + kept_tags[at:]
        new_bodies = kept[:at] + list(bodies) + kept[at:]
        new_lengths = [len(b) + 1 for b in new_bodies]
        new_directory = b"".join([b"%s%04d%05d" % e for e in
                                  zip(new_tags, new_lengths, accumulate(new_lengths, initial=0))])
        data = b"".join([b + b"\x1e" for b in new_bodies])
    new_base = 24 + len(new_directory) + 1
    total = new_base + len(data) + 1
    if total > ISO2709_MAX_RECORD:
        return None
    return _leader(raw[:24].decode("ascii"), total, new_base) + new_directory + b"\x1e" + data + b"\x1d"


@functools.lru_cache(maxsize=64)
def _after_tag(tag: bytes) -> re.Pattern[bytes]:
    """In a directory as _DIRECTORY matches: the entries up to and including the tag
    of the first entry whose tag is not numeric or is greater than ``tag`` (a numeric
    tag of three digits), where ``add_ordered_field`` inserts a ``tag`` field."""
    t = tag.decode("ascii")
    greater = [re.escape(t[:k]) + f"[{chr(ord(t[k]) + 1)}-9]" + "[0-9]" * (2 - k)
               for k in range(3) if t[k] < "9"]
    return re.compile(("(?:[0-9A-Za-z]{3}[0-9]{9})*?(?:(?![0-9]{3})[0-9A-Za-z]{3}"
                       + "".join("|" + g for g in greater) + ")").encode("ascii"))


def _leader(leader: str, total: int, base: int) -> bytes:
    if len(leader) == 24 and leader.isascii() and leader.isprintable():
        return ("%05d%sa22%05d%s4500" % (total, leader[5:9], base, leader[17:20])).encode("ascii")
    lead = [c if " " <= c <= "~" else " " for c in leader[:24].ljust(24)]
    lead[0:5] = "%05d" % total
    lead[9] = "a"
    lead[10] = "2"
    lead[11] = "2"
    lead[12:17] = "%05d" % base
    lead[20:24] = "4500"
    return "".join(lead).encode("ascii")


# --------------------------------------------------------------------------
# MARCXML straight from canonical ISO 2709 (SRU's fast path)
# --------------------------------------------------------------------------
# in the data fields (searched from the \x1e before the first): an indicator or a
# subfield code XML would escape (canonical form: ``_BAD_DATA_FIELD``)
_ODD_MARKUP = re.compile(rb'\x1e(?:[&<>"]|[^\x1e\x1f][&<>"])|\x1f[&<>"]')
# what ``xml_safe`` replaces, as UTF-8: C0 controls other than TAB/LF/CR and the
# separators (U+FFFE and U+FFFF: looked for apart; surrogates are not valid UTF-8)
_ILLEGAL_C0 = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1d]")


def marcxml_of_iso2709(iso: bytes, leader: str) -> str | None:
    """``marcxml_string`` of a record given as ``splice_iso2709`` writes it (canonical
    UTF-8 ISO 2709: control fields first, a contiguous directory, data fields of two
    printable indicators and subfields with one-byte printable codes) with ``leader``
    as the record's leader -- the same text, without decoding the record into pymarc
    objects: the fields' bytes are escaped with a few ``replace`` calls over the
    whole record and marked up by splitting it at the separators.
    None when the record is not in that form or has what this shortcut does not
    write the same (characters XML cannot carry, an indicator or code XML escapes,
    bytes that are not UTF-8): the caller then decodes the record and uses
    ``marcxml_string``."""
    if len(iso) < 26 or iso[-1] != 0x1D or len(leader) != 24:
        return None
    try:
        base = int(iso[12:17])
    except ValueError:
        return None
    directory = iso[24:base - 1]
    n = len(directory) // 12
    if n == 0 or len(directory) != 12 * n or iso[base - 1] != 0x1E or iso[-2] != 0x1E \
            or _DIRECTORY.fullmatch(directory) is None:
        return None
    controls = _CONTROLS.match(directory).end() // 12     # type: ignore[union-attr]
    area = iso[base:-2]                  # the fields, joined by their terminators
    first = sum([int(directory[12 * i + 3:12 * i + 7]) for i in range(controls)])
    if area.find(b"\x1f", 0, first) >= 0 or _BAD_DATA_FIELD.search(iso, base + first - 1, len(iso) - 2) \
            or _ILLEGAL_C0.search(area) or b"\xef\xbf\xbe" in area or b"\xef\xbf\xbf" in area:
        return None
    if b"&" in area or b"<" in area or b">" in area or b'"' in area:
        if _ODD_MARKUP.search(iso, base + first - 1, len(iso) - 1) is not None:
            return None
        area = area.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
    if b"\r" in area:
        area = area.replace(b"\r", b"&#13;")
    parts = area.split(b"\x1f")            # each subfield: its code, then its value
    area = b'</subfield><subfield code="'.join([parts[0]] + [p[:1] + b'">' + p[1:] for p in parts[1:]])
    values = area.split(b"\x1e")
    if len(values) != n:
        return None
    tags = [directory[i:i + 3] for i in range(0, 12 * n, 12)]
    body = b"".join(
        [b'<controlfield tag="%b">%b</controlfield>' % tv for tv in zip(tags[:controls], values)]
        # a data field: two indicators, then '</subfield>' (11 bytes) and its subfields, or nothing
        + [b'<datafield tag="%b" ind1="%c" ind2="%c">%b</subfield></datafield>' % (t, v[0], v[1], v[13:])
           if len(v) > 2 else b'<datafield tag="%b" ind1="%c" ind2="%c"></datafield>' % (t, v[0], v[1])
           for t, v in zip(tags[controls:], values[controls:])])
    try:
        return (f'<record xmlns="{MARC_NS}"><leader>{_esc_text(leader)}</leader>'
                + body.decode("utf-8") + "</record>")
    except UnicodeDecodeError:
        return None
