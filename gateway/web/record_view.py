"""A union record as the OPAC shows it: the readable description (title with its reading
and romanized form, responsibility, edition, publisher, year, series, notes, subjects,
ISBN/ISSN, language, kind of material) and its holdings with their live status, summed up
per branch for a result card. Pure functions of the record and the holdings' statuses
(search/availability.py); the pages' templates only lay them out.

Which form of a title is which: of a field and its linked 880, the form with kanji is the
title, a form in kana only is its reading (ヨミ), a Latin form its romanization
(indexers.marc_display.script_rank); a record without kanji shows its kana or Latin title
as it is.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from circulation.labels import AVAILABILITY_LABELS, RESERVATIONS_LABEL, UNKNOWN_AVAILABILITY_LABEL
from indexers.holdings import load_libraries
from indexers.mapping import TRANSFORMS
from indexers.marc_display import (
    LinkedFields,
    clean_isbd,
    control_value,
    isbns,
    join_subfields,
    languages,
    publication_fields,
    script_rank,
    subject_heading,
    unique,
)
from search.availability import HoldingStatus
from search.titles import primary_title_id, title_ids

# the order a branch's summary prefers (the first status any of its copies has)
_STATUS_ORDER = ("available", "on_loan", "on_hold_shelf", "in_transit", "not_for_loan", "lost")


@dataclass(frozen=True)
class TitleForms:
    main: str
    reading: str = ""               # kana
    romanized: str = ""             # Latin form of a vernacular title


@dataclass
class RecordView:
    id: int
    title: TitleForms
    title_id: str                                  # the circulation title id to reserve it by
    title_ids: list[str]
    responsibility: str = ""
    authors: list[str] = field(default_factory=list)
    edition: str = ""
    publisher: str = ""
    place: str = ""
    year: str = ""
    extent: str = ""
    series: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    isbns: list[str] = field(default_factory=list)
    issns: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    material: str = ""

    @property
    def display_title(self) -> str:
        return self.title.main or self.title.romanized or self.title.reading


def _forms(lk: LinkedFields, tag: str, codes: str) -> list[TitleForms]:
    out: list[TitleForms] = []
    for f, partner in lk.pairs(tag):
        texts = [join_subfields(x, codes) for x in (f, partner) if x is not None]
        texts = [t for t in texts if t]
        if not texts:
            continue
        han = [t for t in texts if script_rank(t) == 2]
        kana = [t for t in texts if script_rank(t) == 1]
        latin = [t for t in texts if script_rank(t) == 0]
        if han:
            out.append(TitleForms(han[0], kana[0] if kana else "", latin[0] if latin else ""))
        elif kana:
            out.append(TitleForms(kana[0], "", latin[0] if latin else ""))
        else:
            out.append(TitleForms(latin[0]))
    return out


def _vernacular_first(lk: LinkedFields, tags: tuple[str, ...], codes: str) -> list[str]:
    """One value per field (its 880 partner's when that one has the richer script)."""
    out = []
    for f, partner in lk.pairs(*tags):
        forms = [join_subfields(x, codes) for x in (f, partner) if x is not None]
        forms = [t for t in forms if t]
        if forms:
            out.append(max(forms, key=script_rank))
    return unique(out)


def view(record) -> RecordView:
    """The readable description of a union record (or a bare pymarc record with ``id``)."""
    marc = getattr(record, "marc", record)
    lk = LinkedFields(marc)
    titles = _forms(lk, "245", "abnp")
    title = titles[0] if titles else TitleForms("")
    resp = _vernacular_first(lk, ("245",), "c")
    pubs = publication_fields(lk)
    publisher = next((join_subfields(f, "b") for f, _, _ in pubs if join_subfields(f, "b")), "")
    place = next((join_subfields(f, "a") for f, _, _ in pubs if join_subfields(f, "a")), "")
    years = [y for f, _, _ in pubs for y in TRANSFORMS["year"](join_subfields(f, "c"))]
    if not years:
        years = TRANSFORMS["year"](control_value(marc, "008")[7:11])
    ldr = str(marc.leader)
    material = TRANSFORMS["material"](ldr[6:8]) if len(ldr) > 8 else []
    notes = [join_subfields(f, "agrt") for f in marc.get_fields("500", "504", "505", "520")]
    subjects = []
    for f, partner in lk.pairs("600", "610", "611", "630", "648", "650", "651"):
        forms = [h for h in (subject_heading(x) for x in (f, partner) if x is not None) if h]
        if forms:
            subjects.append(max(forms, key=script_rank))
    subjects += [clean_isbd(v) for f in marc.get_fields("653") for c, v in f.subfields if c == "a" and v.strip()]
    issns = unique((f.get("a") or "").strip() for f in marc.get_fields("022"))
    rid = getattr(record, "id", 0) or 0
    return RecordView(
        id=rid, title=title, title_id=primary_title_id(record), title_ids=title_ids(record),
        responsibility=resp[0] if resp else "",
        authors=_vernacular_first(lk, ("100", "110", "111", "700", "710", "711"), "abcdq"),
        edition=next(iter(_vernacular_first(lk, ("250",), "ab")), ""),
        publisher=publisher, place=place, year=years[0] if years else "",
        extent=next((join_subfields(f, "abc") for f in marc.get_fields("300")), ""),
        series=_vernacular_first(lk, ("490", "830", "440"), "anpv"),
        notes=[n for n in notes if n], subjects=unique(subjects),
        isbns=unique(i for i, valid in isbns(marc) if valid), issns=[i for i in issns if i],
        languages=languages(lk), material=material[0] if material else "")


# --------------------------------------------------------------------------- holdings

@dataclass(frozen=True)
class HoldingLine:
    """One holding of the title page's table."""

    library: str
    library_name: str
    branch: str
    location: str
    call_number: str
    barcode: str
    status: str                 # a key of AVAILABILITY_LABELS, or "" (unknown)
    text: str                   # the status in the page's language (due date, where it goes)


@dataclass(frozen=True)
class BranchSummary:
    """A result card's line: one branch, its best status, how many copies are in."""

    place: str
    status: str
    available: int
    copies: int
    text: str


def library_name(code: str) -> str:
    try:
        lib = load_libraries().get(code)
    except Exception:  # noqa: BLE001 - a code the configuration does not know shows as it is
        return code
    return getattr(lib, "name", "") or code


def _status_text(hs: HoldingStatus, lang: str) -> str:
    if hs.copy is None:
        return UNKNOWN_AVAILABILITY_LABEL[0 if lang == "ja" else 1]
    return hs.copy.text(lang)


def holding_lines(statuses: Sequence[HoldingStatus], lang: str) -> list[HoldingLine]:
    """Every holding, by library then branch, with its status."""
    out = []
    for hs in statuses:
        h = hs.holding
        out.append(HoldingLine(h.library, library_name(h.library), h.branch, h.location, h.call_number, h.barcode,
                               hs.copy.status if hs.copy is not None else "", _status_text(hs, lang)))
    out.sort(key=lambda x: (x.library_name, x.branch, x.call_number, x.barcode))
    return out


def reservations(statuses: Sequence[HoldingStatus]) -> int:
    return max((hs.reservations for hs in statuses), default=0)


def reservations_text(statuses: Sequence[HoldingStatus], lang: str) -> str:
    n = reservations(statuses)
    return RESERVATIONS_LABEL[0 if lang == "ja" else 1].format(n=n) if n else ""


def branch_summary(statuses: Sequence[HoldingStatus], lang: str, limit: int = 4) -> tuple[list[BranchSummary], int]:
    """A result card's availability: the branches whose copies the circulation database
    knows, copies in first, then the rest by status (at most ``limit``), and how many
    holdings have no known status."""
    i = 0 if lang == "ja" else 1
    groups: dict[tuple[str, str], list] = {}
    unknown = 0
    for hs in statuses:
        if hs.copy is None:
            unknown += 1
            continue
        place = hs.copy.branch_name or hs.holding.branch or library_name(hs.holding.library)
        groups.setdefault((hs.copy.library, place), []).append(hs.copy)
    names = [place for _, place in groups]
    out = []
    for (library, place), copies in groups.items():
        if names.count(place) > 1:          # 中央図書館 of two systems: say whose
            place = f"{place}（{library_name(library)}）"
        n_in = sum(1 for c in copies if c.status == "available")
        best = min((c.status for c in copies), key=_STATUS_ORDER.index)
        if best == "on_loan":
            dues = sorted(c.due for c in copies if c.due is not None)
            text = copies[0].text(lang) if not dues else next(c.text(lang) for c in copies if c.due == dues[0])
        else:
            text = AVAILABILITY_LABELS[best][i]
        out.append(BranchSummary(place, best, n_in, len(copies), text))
    out.sort(key=lambda b: (_STATUS_ORDER.index(b.status), b.place))
    return out[:limit], unknown
