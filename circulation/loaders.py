"""CSV loaders for the circulation database: patrons, items, staff, calendar entries.

Files are UTF-8 (a byte-order mark, as Excel writes it, is accepted) with a header
row. Column names are checked: a missing required column or an unknown column makes
the whole file unloadable (:class:`LoadError`), since every row would be wrong. Cells
are trimmed; an empty optional cell means "no value" (the column's default).

Rows are upserted by their natural key (patrons: ``card_number``; items:
``barcode``; staff: ``username``; calendar: ``branch`` + ``day`` + ``kind``, and
``title`` too for events, of which a day may have several). On update only the
columns present in the file change; what the service maintains (item status and
current branch, passwords, history opt-in, reading goal) is never touched. A row
that is identical to the stored one counts as unchanged.

Every bad row is rejected with its line number and reason and counted; the good rows
still load. ``read == added + updated + unchanged + rejected``. A key that appears
twice in one file: the second row is rejected ("duplicate of line N"). Rows are
written in batches of :data:`BATCH` per transaction, each row in a savepoint, so a
constraint or data error of the database on one row rejects that row only.

Columns
-------
patrons: card_number*, library*, home_municipality*, name, work_or_school_municipality,
category (default individual), email, phone, fax, locale (ja|en, default ja),
default_pickup_branch, default_contact_method (default none), card_expires (date: last
valid day), school, grade, representative (group and school grade cards).
items: barcode*, title_id*, library*, owning_branch*, location, call_number,
material_type (default book), circulating (default true), newest_issue (default false),
lending_release (date), partner (a university library code), set_code (読書会用図書 set).
staff: username*, library*, roles*, name, branch. Passwords are never loaded from a
file: ``unioncat circ staff passwd`` sets them.
calendar: branch*, day*, kind* (closed|holiday|event|visit|school_visit), title (events: the
event; visit and school_visit, the mobile library's schedule: the stop).
(* = required)
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import policies
from lifecycle.model import MATERIAL_TYPES, Patron

from . import auth
from . import schema as s
from .bookshelf import LOCALES, email_syntax_ok
from .service import Circulation

BATCH = 500
KINDS = ("patrons", "items", "staff", "calendar")
CALENDAR_KINDS = ("closed", "holiday", "event", "visit", "school_visit")
# kinds of which a branch may have several a day, told apart by their title (events; the
# mobile library's visits, title = the stop)
_TITLED_KINDS = ("event", "visit", "school_visit")

_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,31}")
_BARCODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
_PHONE = re.compile(r"[0-9+()\- ]{3,32}")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class LoadError(Exception):
    """The file as a whole cannot be loaded (missing, not UTF-8, bad header)."""


class RowError(ValueError):
    """One row is rejected (the message is the reason)."""


@dataclass
class LoadReport:
    kind: str
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)   # (line, reason)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        self.errors.append((line, reason))

    def as_dict(self) -> dict:
        return {"kind": self.kind, "read": self.read, "added": self.added, "updated": self.updated,
                "unchanged": self.unchanged, "rejected": self.rejected,
                "errors": [{"line": ln, "reason": r} for ln, r in self.errors]}

    def summary(self) -> str:
        return (f"{self.kind}: read {self.read}, added {self.added}, updated {self.updated}, "
                f"unchanged {self.unchanged}, rejected {self.rejected}")


# --------------------------------------------------------------------------- reading

def _read_rows(source: str | Path | io.TextIOBase | bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells)]) of a CSV file; blank lines are skipped."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise LoadError(f"{path}: {e.strerror or e}") from None
    elif isinstance(source, bytes):
        data = source
    else:
        data = source.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise LoadError(f"not UTF-8 text (line {line}, byte {e.start}); save the file as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
            else:
                rows.append((start, cells))
    except csv.Error as e:
        raise LoadError(f"line {reader.line_num}: broken CSV ({e})") from None
    if header is None:
        raise LoadError("empty file: no header row")
    return header, rows


def _check_header(kind: str, header: list[str], required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in required + optional]
    dup = sorted({c for c in header if header.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if dup:
        problems.append(f"repeated column(s) {', '.join(dup)}")
    if problems:
        raise LoadError(f"{kind} header: {'; '.join(problems)} (columns: {', '.join(required + optional)})")


# --------------------------------------------------------------------------- cell parsing

def _req(row: dict, col: str) -> str:
    v = row.get(col, "")
    if not v:
        raise RowError(f"{col} is empty")
    return v


def _bool(row: dict, col: str, default: bool) -> bool:
    v = row.get(col, "")
    if not v:
        return default
    if v.lower() in _TRUE:
        return True
    if v.lower() in _FALSE:
        return False
    raise RowError(f"{col}: {v!r} is not true/false")


def _date(row: dict, col: str) -> date | None:
    v = row.get(col, "")
    if not v:
        return None
    try:
        return date.fromisoformat(v.replace("/", "-"))
    except ValueError:
        try:
            return datetime.strptime(v, "%Y/%m/%d").date()
        except ValueError:
            raise RowError(f"{col}: {v!r} is not a date (YYYY-MM-DD)") from None


# --------------------------------------------------------------------------- context

@dataclass
class _Network:
    libraries: dict[str, str]          # code → kind (city | university)
    branches: dict[str, str]           # code → library


async def _network(conn: AsyncConnection) -> _Network:
    libs = {r.code: r.kind for r in (await conn.execute(select(s.libraries.c.code, s.libraries.c.kind))).all()}
    brs = {r.code: r.library for r in (await conn.execute(select(s.branches.c.code, s.branches.c.library))).all()}
    return _Network(libs, brs)


@dataclass(frozen=True)
class _Kind:
    name: str
    table: object
    required: tuple[str, ...]
    optional: tuple[str, ...]
    # (circ, network, cells by column, columns present) → (key columns, values)
    validate: Callable[[Circulation, _Network, dict, set], tuple[tuple[str, ...], dict]]
    on_insert: Callable[[Circulation, dict], dict]
    on_update: Callable[[Circulation, dict], dict] = lambda circ, values: {}


def _present(values: dict, cols: set, optional_defaults: dict) -> dict:
    """Keep optional columns only when they are in the file (on update, absent columns
    are left alone); on insert the table defaults apply to absent ones."""
    return {k: v for k, v in values.items() if k not in optional_defaults or k in cols}


# ---- patrons

_PATRON_OPTIONAL = ("name", "work_or_school_municipality", "category", "email", "phone", "fax", "locale",
                    "default_pickup_branch", "default_contact_method")
# group and school grade cards (circulation/groups.py registers new ones; these load existing ones)
_PATRON_OPTIONAL = _PATRON_OPTIONAL + ("card_expires", "school", "grade", "representative")


def _patron(circ: Circulation, net: _Network, r: dict, cols: set):
    card = _req(r, "card_number")
    if not _CODE.fullmatch(card):
        raise RowError(f"card_number {card!r}: half-width letters, digits and '-' only (at most 32)")
    library = _req(r, "library")
    if library not in circ.profiles:
        raise RowError(f"library {library!r} is not a city library of the network "
                       f"({', '.join(sorted(circ.profiles))})")
    profile = circ.profiles[library]
    category = r.get("category") or "individual"
    if category not in profile.loans and category not in profile.eligibility.categories:
        raise RowError(f"category {category!r} is not one of {library}'s ({', '.join(sorted(profile.loans))})")
    email = r.get("email") or None
    if email and not email_syntax_ok(email):
        raise RowError(f"email {email!r} is not a valid address")
    phone, fax = r.get("phone") or None, r.get("fax") or None
    for col, v in (("phone", phone), ("fax", fax)):
        if v and not _PHONE.fullmatch(v):
            raise RowError(f"{col} {v!r}: digits, spaces, '-', '+', '(' and ')' only")
    locale = r.get("locale") or "ja"
    if locale not in LOCALES:
        raise RowError(f"locale {locale!r} is not one of {', '.join(LOCALES)}")
    pickup = r.get("default_pickup_branch") or None
    if pickup is not None:
        b = profile.branch(pickup)
        if b is None or not b.pickup:
            raise RowError(f"default_pickup_branch {pickup!r} is not a pickup branch of {library} "
                           f"({', '.join(c for c, bc in profile.branches.items() if bc.branch.pickup)})")
    method = r.get("default_contact_method") or "none"
    if method != "none":
        ok = policies.contact_method_ok(profile, Patron(card, "", email=email, phone=phone, fax=fax), method)
        if not ok.allowed:
            raise RowError(f"default_contact_method {method!r}: {ok.message_en}")
    values = {"card_number": card, "library": library, "home_municipality": _req(r, "home_municipality"),
              "name": r.get("name", ""), "work_or_school_municipality": r.get("work_or_school_municipality") or None,
              "category": category, "email": email, "phone": phone, "fax": fax, "locale": locale,
              "default_pickup_branch": pickup, "default_contact_method": method}
    values.update(card_expires=_date(r, "card_expires"), school=r.get("school") or None,
                  grade=r.get("grade") or None, representative=r.get("representative") or None)
    return ("card_number",), _present(values, cols, dict.fromkeys(_PATRON_OPTIONAL))


# ---- items

_ITEM_OPTIONAL = ("location", "call_number", "material_type", "circulating", "newest_issue",
                  "lending_release", "partner")
_ITEM_OPTIONAL = _ITEM_OPTIONAL + ("set_code",)        # 読書会用図書: the reading-group set


def _item(circ: Circulation, net: _Network, r: dict, cols: set):
    barcode = _req(r, "barcode")
    if not _BARCODE.fullmatch(barcode):
        raise RowError(f"barcode {barcode!r}: half-width letters, digits and '-' only (at most 64)")
    title_id = _req(r, "title_id")
    if len(title_id) > 128:
        raise RowError("title_id is longer than 128 characters")
    library = _req(r, "library")
    if library not in net.libraries:
        raise RowError(f"library {library!r} is not in the network (run `unioncat circ init` first?)")
    branch = _req(r, "owning_branch")
    if branch not in net.branches:
        raise RowError(f"owning_branch {branch!r} is not a branch of the network")
    if net.libraries[library] == "city" and net.branches[branch] != library:
        raise RowError(f"owning_branch {branch!r} belongs to {net.branches[branch]}, not {library}")
    material = r.get("material_type") or "book"
    if material not in MATERIAL_TYPES:
        raise RowError(f"material_type {material!r} is not one of {', '.join(sorted(MATERIAL_TYPES))}")
    partner = r.get("partner") or None
    if partner is not None and net.libraries.get(partner) != "university":
        raise RowError(f"partner {partner!r} is not a university library of the network")
    values = {"barcode": barcode, "title_id": title_id, "library": library, "owning_branch": branch,
              "location": r.get("location", ""), "call_number": r.get("call_number", ""),
              "material_type": material, "circulating": _bool(r, "circulating", True),
              "newest_issue": _bool(r, "newest_issue", False), "lending_release": _date(r, "lending_release"),
              "partner": partner}
    values["set_code"] = r.get("set_code") or None
    return ("barcode",), _present(values, cols, dict.fromkeys(_ITEM_OPTIONAL))


# ---- staff

def _staff(circ: Circulation, net: _Network, r: dict, cols: set):
    username, library = _req(r, "username"), _req(r, "library")
    branch = r.get("branch") or None
    roles = auth.parse_roles(_req(r, "roles"))
    problem = auth.staff_fields_problem(circ, username=username, library=library, branch=branch, roles=roles)
    if problem is not None:
        raise RowError(f"{problem.message_en} ({', '.join(f'{k}={v}' for k, v in problem.details.items())})")
    values = {"username": username, "library": library, "roles": " ".join(roles),
              "name": r.get("name", ""), "branch": branch}
    return ("username",), _present(values, cols, dict.fromkeys(("name", "branch")))


# ---- calendar

def _calendar(circ: Circulation, net: _Network, r: dict, cols: set):
    branch = _req(r, "branch")
    if not any(branch in p.branches for p in circ.profiles.values()):
        raise RowError(f"branch {branch!r} is not a branch of a city library")
    day = _date(r, "day")
    if day is None:
        raise RowError("day is empty")
    kind = _req(r, "kind")
    if kind not in CALENDAR_KINDS:
        raise RowError(f"kind {kind!r} is not one of {', '.join(CALENDAR_KINDS)}")
    title = r.get("title", "")
    if kind in _TITLED_KINDS and not title:
        raise RowError("an event needs a title" if kind == "event"
                       else f"a {kind} needs a title (the stop's name)")
    if kind in ("visit", "school_visit") and not policies.is_mobile_branch(
            next(p for p in circ.profiles.values() if branch in p.branches), branch):
        raise RowError(f"a {kind} is a stop of the mobile library; {branch!r} is not one")
    key = ("branch", "day", "kind", "title") if kind in _TITLED_KINDS else ("branch", "day", "kind")
    return key, {"branch": branch, "day": day, "kind": kind, "title": title}


_SPECS = {
    "patrons": _Kind("patrons", s.patrons, ("card_number", "library", "home_municipality"), _PATRON_OPTIONAL,
                     _patron, lambda circ, v: {"created_at": circ.now()}),
    "items": _Kind("items", s.items, ("barcode", "title_id", "library", "owning_branch"), _ITEM_OPTIONAL,
                   _item, lambda circ, v: {"current_branch": v["owning_branch"], "updated_at": circ.now()},
                   lambda circ, v: {"updated_at": circ.now()}),
    "staff": _Kind("staff", s.staff, ("username", "library", "roles"), ("name", "branch"),
                   _staff, lambda circ, v: {"created_at": circ.now()}),
    "calendar": _Kind("calendar", s.calendar_entries, ("branch", "day", "kind"), ("title",),
                      _calendar, lambda circ, v: {}),
}


# --------------------------------------------------------------------------- loading

async def load_csv(circ: Circulation, kind: str, source: str | Path | io.TextIOBase | bytes) -> LoadReport:
    """Load one CSV file of ``kind`` (patrons, items, staff, calendar); see the module doc."""
    try:
        spec = _SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}") from None
    header, raw_rows = _read_rows(source)
    _check_header(kind, header, spec.required, spec.optional)
    cols = set(header)
    report = LoadReport(kind)
    async with circ.db.read() as conn:
        net = await _network(conn)

    prepared: list[tuple[int, tuple[str, ...], dict]] = []
    seen: dict[tuple, int] = {}
    for line, cells in raw_rows:
        report.read += 1
        if len(cells) != len(header):
            report.reject(line, f"{len(cells)} fields, the header has {len(header)}")
            continue
        r = {h: c.strip() for h, c in zip(header, cells)}
        try:
            key_cols, values = spec.validate(circ, net, r, cols)
        except RowError as e:
            report.reject(line, str(e))
            continue
        key = tuple(values[k] for k in key_cols)
        if key in seen:
            report.reject(line, f"duplicate of line {seen[key]} ({', '.join(map(str, key))})")
            continue
        seen[key] = line
        prepared.append((line, key_cols, values))

    for i in range(0, len(prepared), BATCH):
        batch = prepared[i:i + BATCH]

        async def work(conn: AsyncConnection, batch=batch) -> LoadReport:
            part = LoadReport(kind)
            for line, key_cols, values in batch:
                try:
                    async with conn.begin_nested():
                        outcome = await _upsert(conn, circ, spec, key_cols, values)
                except (IntegrityError, DataError) as e:
                    part.reject(line, f"database refused the row: {_short(e)}")
                    continue
                setattr(part, outcome, getattr(part, outcome) + 1)
            return part

        part = await circ.db.run(work)
        report.added += part.added
        report.updated += part.updated
        report.unchanged += part.unchanged
        report.rejected += part.rejected
        report.errors.extend(part.errors)
    report.errors.sort()
    return report


async def _upsert(conn: AsyncConnection, circ: Circulation, spec: _Kind, key_cols: Iterable[str],
                  values: dict) -> str:
    t = spec.table
    where = [t.c[k] == values[k] for k in key_cols]
    row = (await conn.execute(select(t).where(*where).with_for_update())).first()
    if row is None:
        await conn.execute(insert(t).values(**values, **spec.on_insert(circ, values)))
        return "added"
    diff = {k: v for k, v in values.items() if getattr(row, k) != v}
    if not diff:
        return "unchanged"
    await conn.execute(update(t).where(*where).values(**diff, **spec.on_update(circ, values)))
    return "updated"


def _short(e: Exception) -> str:
    text = str(getattr(e, "orig", None) or e)
    return text.splitlines()[0][:200]
