"""What the catalogue shows of a title's copies: each copy's live status (在架, 貸出中 with
its due date, 取置中, 移送中, 館内のみ, 所在不明), per branch, and the title's live
reservations (予約 n 件), for a page of titles at once; and the titles with a copy in at a
branch (the search limit 「貸出可能な資料のみ」, search/availability.py).

Reads only, and no cache: every call reads the database as it is, so a check-out, a return
or a trap shows in the next search or record. :func:`title_status` costs one query for the
copies of all the titles asked (their open loans and open transits joined in) and one for
their reservations, whatever the number of titles: no query per title or per copy.

Not to be confused with :mod:`circulation.availability`, which is about the *database*
being unavailable.

A copy's status (``CopyStatus.status``, the keys of ``labels.AVAILABILITY_LABELS``):

=================  ===========================================================
``available``      在架: on the shelf and lendable (``items.status`` available)
``on_loan``        貸出中: lent; ``due`` is the open loan's due date
``on_hold_shelf``  取置中: secured for a reservation, on the hold shelf
``in_transit``     移送中: between branches (``at_branch``: where it is going)
``not_for_loan``   館内のみ: on the shelf but not lent (``circulating`` false, or the
                   newest issue of a magazine)
``lost``           所在不明: declared lost
=================  ===========================================================

Withdrawn copies (除籍) and other libraries' copies borrowed for a request (``ill``) are
not the title's holdings and are left out.

Reservations are those of kind ``reservation`` in the states the 予約ランキング counts
(waiting, suspended, in transit, on the hold shelf: :data:`circulation.lists.RANKED_STATES`),
per title and per member system.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, func, select

from lifecycle.item_table import ItemStatus

from . import schema as s
from .labels import AVAILABILITY_LABELS, RESERVATIONS_LABEL
from .lists import RANKED_STATES
from .service import Circulation

AVAILABLE, ON_LOAN, ON_HOLD_SHELF, IN_TRANSIT, NOT_FOR_LOAN, LOST = (
    "available", "on_loan", "on_hold_shelf", "in_transit", "not_for_loan", "lost")
STATUSES = (AVAILABLE, ON_LOAN, ON_HOLD_SHELF, IN_TRANSIT, NOT_FOR_LOAN, LOST)
# the order a branch's summary prefers: the first status any of its copies has
_SUMMARY_ORDER = STATUSES
_CHUNK = 500                      # title ids per IN (...) list


class UnknownPlace(LookupError):
    """A branch or library code the circulation database does not know (a LookupError,
    as search.availability.AvailabilitySource says)."""

    def __init__(self, place: str):
        super().__init__(f"no branch or library {place!r} in the circulation database")
        self.place = place


@dataclass(frozen=True)
class CopyStatus:
    """One copy of a title, as the catalogue shows it."""

    title_id: str
    barcode: str
    library: str                   # the owning library (member system or partner) code
    branch: str                    # the owning branch's code
    branch_name: str
    location: str
    call_number: str
    material_type: str
    status: str                    # one of STATUSES
    due: date | None = None        # on_loan: the due date
    at_branch: str | None = None   # where it is now (hold shelf) or going (in transit)
    at_branch_name: str = ""
    for_request: bool = False      # secured for a reservation (hold shelf, or in transit to one)

    @property
    def available(self) -> bool:
        return self.status == AVAILABLE

    @property
    def label_ja(self) -> str:
        return AVAILABILITY_LABELS[self.status][0]

    @property
    def label_en(self) -> str:
        return AVAILABILITY_LABELS[self.status][1]

    def text(self, lang: str = "ja") -> str:
        """The status as one line: 貸出中（返却予定日 2026-12-10） / On loan (due 2026-12-10)."""
        ja = lang == "ja"
        label = self.label_ja if ja else self.label_en
        if self.status == ON_LOAN and self.due is not None:
            return f"{label}（返却予定日 {self.due.isoformat()}）" if ja else f"{label} (due {self.due.isoformat()})"
        if self.status in (IN_TRANSIT, ON_HOLD_SHELF) and self.at_branch_name:
            where = self.at_branch_name
            if self.status == IN_TRANSIT:
                return f"{label}（{where}へ）" if ja else f"{label} (to {where})"
            return f"{label}（{where}）" if ja else f"{label} ({where})"
        return label


@dataclass(frozen=True)
class BranchStatus:
    """The copies of a title at one branch (its owning branch), summed up."""

    branch: str
    name: str
    library: str
    copies: int
    available: int
    status: str                    # "available" when a copy is in, else the first status by STATUSES
    due: date | None = None        # none in: the earliest due date of its copies on loan

    @property
    def label_ja(self) -> str:
        return AVAILABILITY_LABELS[self.status][0]

    @property
    def label_en(self) -> str:
        return AVAILABILITY_LABELS[self.status][1]


@dataclass(frozen=True)
class TitleStatus:
    title_id: str
    copies: tuple[CopyStatus, ...] = ()
    reservations: int = 0                                   # live reservations, every member system
    reservations_by_library: Mapping[str, int] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return any(c.available for c in self.copies)

    def branches(self) -> list[BranchStatus]:
        """Per owning branch, in the order of the copies (library, branch)."""
        groups: dict[str, list[CopyStatus]] = {}
        for c in self.copies:
            groups.setdefault(c.branch, []).append(c)
        out = []
        for code, cs in groups.items():
            n_in = sum(1 for c in cs if c.available)
            status = AVAILABLE if n_in else min((c.status for c in cs), key=_SUMMARY_ORDER.index)
            dues = [c.due for c in cs if c.due is not None]
            out.append(BranchStatus(code, cs[0].branch_name, cs[0].library, len(cs), n_in, status,
                                    None if n_in or not dues else min(dues)))
        return out

    def reservations_text(self, lang: str = "ja") -> str:
        """予約 n 件 / n reservation(s); "" when there are none."""
        if not self.reservations:
            return ""
        return RESERVATIONS_LABEL[0 if lang == "ja" else 1].format(n=self.reservations)


def copy_state(item_status: str, circulating: bool, newest_issue: bool) -> str | None:
    """A copy's catalogue status from its item row; None for a copy that is not shown
    (withdrawn)."""
    st = ItemStatus(item_status)
    if st is ItemStatus.WITHDRAWN:
        return None
    if st is ItemStatus.AVAILABLE:
        return NOT_FOR_LOAN if (not circulating or newest_issue) else AVAILABLE
    return {ItemStatus.ON_LOAN: ON_LOAN, ItemStatus.ON_HOLD_SHELF: ON_HOLD_SHELF,
            ItemStatus.IN_TRANSIT: IN_TRANSIT, ItemStatus.LOST: LOST}[st]


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


async def title_status(circ: Circulation, title_ids: Iterable[str]) -> dict[str, TitleStatus]:
    """The status of every title asked, by title id (a title the database does not know
    has no copies and no reservations). Copies are ordered by library, owning branch and
    barcode."""
    ids = sorted({t for t in title_ids if t})
    if not ids:
        return {}
    it, ln, tr, rq = s.items.c, s.loans.c, s.transits.c, s.requests.c
    copies: dict[str, dict[int, CopyStatus]] = defaultdict(dict)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    async with circ.db.read() as conn:
        for part in _chunks(ids):
            rows = (await conn.execute(
                select(it.id, it.title_id, it.barcode, it.library, it.owning_branch, it.current_branch, it.location,
                       it.call_number, it.material_type, it.circulating, it.newest_issue, it.status,
                       ln.due, tr.to_branch, tr.reason, tr.id.label("transit_id"))
                .select_from(s.items
                             .outerjoin(s.loans, and_(ln.item_id == it.id, ln.returned_at.is_(None)))
                             .outerjoin(s.transits, and_(tr.item_id == it.id, tr.arrived_at.is_(None))))
                .where(it.title_id.in_(part), it.status != ItemStatus.WITHDRAWN.value, it.ill.is_(False))
                .order_by(it.title_id, it.library, it.owning_branch, it.barcode, tr.id))).all()
            for r in rows:
                status = copy_state(r.status, r.circulating, r.newest_issue)
                if status is None:
                    continue
                at = None
                if status == IN_TRANSIT:
                    at = r.to_branch
                elif status == ON_HOLD_SHELF:
                    at = r.current_branch or r.owning_branch
                copies[r.title_id][r.id] = CopyStatus(   # a later open transit (by id) wins
                    r.title_id, r.barcode, r.library, r.owning_branch, circ.branch_name(r.owning_branch),
                    r.location or "", r.call_number or "", r.material_type, status,
                    due=r.due if status == ON_LOAN else None, at_branch=at,
                    at_branch_name=circ.branch_name(at) if at else "",
                    for_request=status == ON_HOLD_SHELF or (status == IN_TRANSIT and r.reason == "hold"))
            for r in (await conn.execute(
                    select(rq.title_id, rq.library, func.count().label("n"))
                    .where(rq.title_id.in_(part), rq.kind == "reservation", rq.state.in_(RANKED_STATES))
                    .group_by(rq.title_id, rq.library))).all():
                counts[r.title_id][r.library] = r.n
    return {t: TitleStatus(t, tuple(copies[t].values()) if t in copies else (),
                           sum(counts[t].values()) if t in counts else 0,
                           dict(counts[t]) if t in counts else {})
            for t in ids}


async def branches_of(circ: Circulation, places: Iterable[str]) -> list[str]:
    """The branch codes ``places`` name: a branch code stands for itself, a library code
    for each of its branches (any case). Unknown: :class:`UnknownPlace`."""
    wanted = {p.strip().lower(): p for p in places if p.strip()}
    async with circ.db.read() as conn:
        rows = (await conn.execute(select(s.branches.c.code, s.branches.c.library))).all()
    out: set[str] = set()
    for key, place in wanted.items():
        hit = [r.code for r in rows if r.code.lower() == key] or [r.code for r in rows if r.library.lower() == key]
        if not hit:
            raise UnknownPlace(place)
        out.update(hit)
    return sorted(out)


async def available_title_ids(circ: Circulation, places: Iterable[str]) -> frozenset[str]:
    """The titles with a copy in (在架, lendable) at one of the branches ``places`` name
    (branch or library codes, :func:`branches_of`): copies whose status is available,
    that circulate, are not the newest issue, and are at that branch now (their current
    branch, else their owning branch). One query."""
    branches = await branches_of(circ, places)
    it = s.items.c
    lendable = (it.status == ItemStatus.AVAILABLE.value, it.circulating.is_(True), it.newest_issue.is_(False),
                it.ill.is_(False))
    # two parts, so that the first (every copy with a current branch) reads the index
    # ix_items_shelf alone; the set is made here rather than by DISTINCT in the database
    at_branch = select(it.title_id).where(it.current_branch.in_(branches), *lendable)
    at_home = select(it.title_id).where(it.current_branch.is_(None), it.owning_branch.in_(branches), *lendable)
    async with circ.db.read() as conn:
        rows = (await conn.execute(at_branch.union_all(at_home))).scalars().all()
    return frozenset(rows)


class CirculationAvailability:
    """The circulation database as the search room's availability source
    (search.availability.AvailabilitySource): a database that cannot answer now (down,
    restarting, out of connections) is reported as the catalog's
    :class:`~indexers.backend.BackendUnavailable`, which every front end already says as
    "temporarily unavailable" (SRU diagnostic 1, Bib-1 2)."""

    def __init__(self, circ: Circulation):
        self.circ = circ

    async def title_status(self, title_ids: Iterable[str]) -> dict[str, TitleStatus]:
        try:
            return await title_status(self.circ, title_ids)
        except Exception as e:
            _raise_outage(e)
            raise

    async def available_title_ids(self, places: Iterable[str]) -> frozenset[str]:
        try:
            return await available_title_ids(self.circ, places)
        except UnknownPlace:
            raise
        except Exception as e:
            _raise_outage(e)
            raise


def _raise_outage(e: Exception) -> None:
    from indexers.backend import BackendUnavailable

    from .availability import unavailable

    if unavailable(e):
        raise BackendUnavailable(f"the circulation database is unavailable: {type(e).__name__}") from e
