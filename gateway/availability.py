"""Availability on the front ends: the holdings of a page of records with their live status
(search/availability.py, one read of the circulation database per page), said the way
each protocol says it:

* SRU, schema ``opac`` (YAZ's OPAC XML): one ``holding`` per holding, its ``circulation``
  when the circulation database knows the copy (:func:`opac_holdings`);
* Z39.50, OPAC record syntax: one ``holdingsAndCirc`` per holding, its ``circulationData``
  likewise, and the note as its ``publicNote`` (:func:`z3950_record`); SUTRS shows the same as "Availability:" lines.

What a copy's status becomes (the same on both):

==================  ===========================================================
availableNow        the copy is in (在架)
availabilityDate    on loan: its due date (YYYY-MM-DD)
restrictions        any other status, as "館内のみ / Library use only" (Japanese / English)
itemId              the barcode
renewable           false: whether a loan may be renewed is the borrower's policy
onHold              the copy is secured for a reservation, or the title has live reservations
temporaryLocation   in transit: the branch it goes to; on the hold shelf: the branch
publicNote          the status and the title's reservations in words, Japanese / English
                    ("貸出中（返却予定日 2026-12-10）・予約 2 件 / On loan (due 2026-12-10);
                    2 reservation(s)"); "貸出状況不明 / Availability unknown" for a holding
                    the circulation database does not know (or without one), which has no
                    circulation element
==================  ===========================================================

A circulation database that cannot answer (down, restarting) does not fail the records: the
page is shown with every status unknown, and one warning is logged.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from circulation.labels import (
    AVAILABILITY_LABELS,
    RESERVATIONS_LABEL,
    UNKNOWN_AVAILABILITY_LABEL,
)
from indexers.backend import BackendUnavailable
from indexers.records import Holding
from search.availability import AvailabilitySource, HoldingStatus, page_holdings
from sru.record_schemas import OpacCirculation, OpacHolding
from z3950 import records as R

log = logging.getLogger("unioncat.availability")


async def holdings_of_page(source: AvailabilitySource | None, records: Sequence) -> dict[int, list[HoldingStatus]]:
    """Holdings with status by record id (every status unknown when the source cannot
    answer now)."""
    try:
        return await page_holdings(source, records)
    except BackendUnavailable as e:
        log.warning("availability not shown: %s", e)
        return await page_holdings(None, records)


def _both(pair: tuple[str, str], **kw) -> str:
    ja, en = pair
    return f"{ja.format(**kw)} / {en.format(**kw)}"


def status_note(hs: HoldingStatus) -> str:
    """The holding's status and the title's reservations in words, Japanese / English."""
    c = hs.copy
    if c is None:
        return _both(UNKNOWN_AVAILABILITY_LABEL)
    ja, en = c.text("ja"), c.text("en")
    if hs.reservations:
        ja += "・" + RESERVATIONS_LABEL[0].format(n=hs.reservations)
        en += "; " + RESERVATIONS_LABEL[1].format(n=hs.reservations)
    return f"{ja} / {en}"


def circulation_of(hs: HoldingStatus) -> OpacCirculation | None:
    """The copy's circulation element (None: status unknown)."""
    c = hs.copy
    if c is None:
        return None
    due = c.due.isoformat() if c.status == "on_loan" and c.due is not None else None
    return OpacCirculation(
        available_now=c.status == "available", availability_date=due,
        restrictions=None if c.status == "available" else _both(AVAILABILITY_LABELS[c.status]),
        item_id=c.barcode or None, renewable=False, on_hold=bool(c.for_request or hs.reservations),
        temporary_location=c.at_branch_name or None)


def opac_holdings(statuses: Sequence[HoldingStatus]) -> list[OpacHolding]:
    """The holding elements of the SRU ``opac`` schema."""
    out = []
    for hs in statuses:
        h = hs.holding
        out.append(OpacHolding(h.library, h.branch, h.location, h.call_number, h.barcode, status_note(hs),
                               circulation_of(hs)))
    return out


def _z_availability(hs: HoldingStatus) -> R.Availability | None:
    c = circulation_of(hs)
    if c is None:
        return None
    return R.Availability(c.available_now, c.availability_date, c.on_hold, c.renewable, c.restrictions,
                          c.item_id, temporary_location=c.temporary_location)


@dataclass(frozen=True)
class ZHolding(Holding):
    """A holding as the Z39.50 encoder takes it: with its note (publicNote) and its
    circulation data (None: unknown)."""

    public_note: str = ""
    circulation: R.Availability | None = None


def z3950_availability(h) -> R.Availability | None:
    """The ``availability`` callable of z3950.records.encode_record for ZHoldings."""
    return getattr(h, "circulation", None)


def z3950_record(page: dict[int, list[HoldingStatus]], record):
    """A record as the Z39.50 OPAC (and SUTRS) encoder takes it: its holdings are
    ZHoldings with their note and circulation data (the circulation database's copies
    added); used with :func:`z3950_availability`."""
    statuses = page.get(getattr(record, "id", None))
    if statuses is None:
        return record
    holdings = [ZHolding(**{f.name: getattr(hs.holding, f.name) for f in dataclasses.fields(Holding)},
                         public_note=status_note(hs), circulation=_z_availability(hs)) for hs in statuses]
    return dataclasses.replace(record, holdings=holdings)
