"""The NCIP responder on the circulation database: an external ILL broker (ReShare and
its like) drives our circulation with six NCIP 2.02 services, as staff.

Each admitted message (:func:`connectors.ncip.admit`) is answered by :meth:`NcipNode.respond`
with its response; a refusal is a Problem from the published NCIP schemes, never an
exception.  The client acts with role ``staff`` as actor ``ncip:<its agency id>`` (the
audit trail's ``actor``), on the counter (channel ``counter``), and only on patrons and
copies of the library systems configured for it: to a client, a patron or copy of
another system does not exist (Unknown User / Unknown Item).  Each service is one call
of the circulation's public functions, one unit of work (AcceptItem: one unit of work
of its own, below); the look-ups before it only read.

==================  ==========================================================================
LookupUser          the patron by card (``UserId/UserIdentifierValue``): the UserId and only the
                    ``UserElementType`` asked for of Name Information (the name as one text),
                    User Privilege (the card category, valid to the card's expiry, status
                    Active / Blocked / Expired), Block Or Trap (Block Check Out when the card
                    expired, Block Hold when it expired or a loan is past the profile's overdue
                    block). Addresses, date of birth, language and previous ids are never given.
AcceptItem          an ILL copy arrived for one of our patrons (Requested Action Hold For Pickup
                    [And Notify]): the partner-copy path of :mod:`circulation.partners` in one
                    unit of work: a request of kind ``partner`` with its own temporary item
                    (``items.ill`` true, partner = the client's library row, as
                    :func:`circulation.ill.requester.partner_library` makes it), PLACE, VALIDATE,
                    SEND_TO_PARTNER, PARTNER_SHIPPED (the broker speaks for the lender) and the
                    arrival at the pickup branch (``holds.arrive`` → RECEIVE_AT_PICKUP: hold
                    shelf, deadline, ``hold_ready`` notice). The same RequestId again changes
                    nothing and gets the same answer.
CheckOutItem        ``loans.check_out`` at the branch where the copy is, on the counter
CheckInItem         ``loans.check_in`` at the branch where the copy is (a loan: where it was
                    lent); the routing of the copy is answered as RoutingInformation
RequestItem         ``holds.place`` on the title of the ItemId (or of the BibliographicId: our
                    record id, or an ISBN), RequestType Hold only; the RequestId answered is ours
CancelRequestItem   ``holds.cancel`` of the patron's request named by RequestId (ours, the one
                    the client gave with RequestItem, or the AcceptItem one) or by ItemId
==================  ==========================================================================

When the database cannot be reached :class:`Unavailable` is raised (the HTTP shell
answers 503 with Temporary Processing Failure, so the client tries again).
"""
from __future__ import annotations

import dataclasses
import hashlib
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors.ncip import build as B
from connectors.ncip import model as m
from connectors.ncip.config import NcipClient, NcipConfig
from connectors.ncip.model import (
    AcceptItemError,
    CancelRequestItemError,
    CheckInItemError,
    CheckOutItemError,
    General,
    LookupUserError,
    Messaging,
    RequestItemError,
    SchemeValue,
)
from lifecycle import policies
from lifecycle import table as lt
from lifecycle.model import Decision

from . import holds, loans, routing
from . import schema as s
from .availability import Unavailable, unavailable
from .ill.requester import KIND as PARTNER_KIND
from .ill.requester import partner_library
from .ill.titles import ItemTitles, Titles, Wanted, normal_isbn
from .reads import patron_snapshot
from .service import Circulation
from .store import (
    ConcurrentChange,
    NotFound,
    get_row,
    is_unique_violation,
    lock_title_queue,
    patron_contact,
    record_event,
    transition,
)

E, S, R = lt.Event, lt.State, lt.Role
CHANNEL = "counter"                 # what an NCIP client does, it does as staff at a counter
HOLD_ACTIONS = ("Hold For Pickup", "Hold For Pickup And Notify")
BARCODE_PREFIX = "NCIP"             # a copy whose ItemId we could not take: NCIP<request id>


class Refused(Exception):
    """A Problem to answer with (raised inside a service, answered by :meth:`NcipNode.respond`)."""

    def __init__(self, problem_type: SchemeValue, detail: str = "", *, element: str | None = None,
                 value: str | None = None):
        super().__init__(detail or problem_type.text)
        self.problem = B.problem(problem_type, detail, element=element, value=value)


def _decision_detail(d: Decision) -> str:
    return f"{d.code}: {d.message_en}" if d.message_en else d.code


def broker_title_id(client: NcipClient, request_value: str) -> str:
    """The title id of the copy an AcceptItem brings: one per (client, its RequestId), as
    a broker's temporary record (what an ILS makes for an AcceptItem). It is also how a
    repeated AcceptItem, and a CancelRequestItem naming that RequestId, find the request."""
    tid = f"ncip:{client.code}:{request_value}"
    if len(tid) <= 128:
        return tid
    return "ncip:#" + hashlib.sha256(f"{client.code}\n{request_value}".encode()).hexdigest()[:40]


def request_marker(client: NcipClient, request_value: str) -> str:
    """The memo (for staff) of a request a client placed with RequestItem under its own
    RequestId; a repeated RequestItem and CancelRequestItem find the request by it."""
    return f"NCIP {client.code} request {request_value}"[:2000]


# problems of refused circulation decisions, per service (the default: the last entry)
_CHECK_OUT = {
    "loan_limit": CheckOutItemError.MAXIMUM_CHECK_OUTS_EXCEEDED,
    "item_not_circulating": CheckOutItemError.ITEM_DOES_NOT_CIRCULATE,
    "reading_set_whole_only": CheckOutItemError.ITEM_DOES_NOT_CIRCULATE,
    "card_expired": CheckOutItemError.USER_BLOCKED,
    "no_loan_rule": CheckOutItemError.USER_INELIGIBLE_TO_CHECK_OUT_THIS_ITEM,
    "card_not_valid_here": CheckOutItemError.USER_INELIGIBLE_TO_CHECK_OUT_THIS_ITEM,
    "card_not_for_mobile": CheckOutItemError.USER_INELIGIBLE_TO_CHECK_OUT_THIS_ITEM,
    "mobile_card_only": CheckOutItemError.USER_INELIGIBLE_TO_CHECK_OUT_THIS_ITEM,
    None: CheckOutItemError.RESOURCE_CANNOT_BE_PROVIDED,
}
_REQUEST = {
    "blocked_overdue": RequestItemError.USER_BLOCKED,
    "card_expired": RequestItemError.USER_BLOCKED,
    "duplicate_request": RequestItemError.DUPLICATE_REQUEST,
    "not_circulating": RequestItemError.ITEM_DOES_NOT_CIRCULATE,
    "material_av": RequestItemError.ITEM_DOES_NOT_CIRCULATE,
    "material_ebook": RequestItemError.ITEM_DOES_NOT_CIRCULATE,
    "newest_issue": RequestItemError.ITEM_DOES_NOT_CIRCULATE,
    "magazine_not_released": RequestItemError.ITEM_DOES_NOT_CIRCULATE,
    "request_material_refused": RequestItemError.ITEM_DOES_NOT_CIRCULATE,
    "pickup_not_service_point": RequestItemError.ELEMENT_RULE_VIOLATED,
    None: RequestItemError.USER_INELIGIBLE_TO_REQUEST_THIS_ITEM,
}
_CANCEL = {
    "secured_pickup_branch_only": CancelRequestItemError.ELEMENT_RULE_VIOLATED,
    "secured_staff_only": CancelRequestItemError.ELEMENT_RULE_VIOLATED,
    None: CancelRequestItemError.REQUEST_ALREADY_PROCESSED,
}


def _refusal(table: dict, d: Decision) -> Refused:
    problem_type = table.get(d.code, table[None])
    element = "PickupLocation" if d.code.startswith("pickup") else None
    return Refused(problem_type, _decision_detail(d), element=element)


# --------------------------------------------------------------------------- the node

@dataclasses.dataclass
class NcipNode:
    """The circulation service as an NCIP responder for the configured clients."""
    circ: Circulation
    config: NcipConfig
    titles: Titles | None = None

    def __post_init__(self):
        if self.titles is None:
            self.titles = ItemTitles(self.circ)
        for c in self.config.clients.values():
            unknown = sorted(c.systems - set(self.circ.profiles))
            if unknown:
                raise ValueError(f"ncip.clients.{c.code}.systems: no library system {', '.join(unknown)}")
            if c.library in self.circ.profiles:
                raise ValueError(f"ncip.clients.{c.code}.library: {c.library} is one of our library systems")

    @property
    def us(self) -> SchemeValue:
        return SchemeValue(self.config.agency)

    def _end_of(self, day: date | None) -> datetime | None:
        """A due or expiry date as NCIP's dateTime: the end of that day in the service's zone."""
        return None if day is None else self.circ.clock.end_of(day)

    async def respond(self, message: m.Initiation, client: NcipClient) -> m.Response:
        """The response to an admitted message; raises :class:`Unavailable` (503)."""
        service = type(message).__name__
        handler = {
            m.LookupUser: self.lookup_user, m.AcceptItem: self.accept_item, m.CheckOutItem: self.check_out_item,
            m.CheckInItem: self.check_in_item, m.RequestItem: self.request_item,
            m.CancelRequestItem: self.cancel_request_item,
        }[type(message)]
        header = B.response_header(message.initiation_header, self.us)
        try:
            try:
                response = await handler(message, client)
            except Refused as r:
                return B.problem_response(service, (r.problem,), header)
            except (lt.IllegalTransition, ConcurrentChange) as e:
                # the state moved under us (another counter, a job): nothing was written
                return B.problem_response(service, (B.problem(
                    General.TEMPORARY_PROCESSING_FAILURE, f"try again: {e}"),), header)
        except Exception as e:
            if unavailable(e):
                raise Unavailable.of(e) from None
            raise
        return dataclasses.replace(response, response_header=header)

    # ------------------------------------------------------------------ look-ups

    @staticmethod
    def _user(msg) -> str:
        if msg.user_id is None:
            raise Refused(General.NEEDED_DATA_MISSING,
                          "identify the user by UserId (AuthenticationInput is not supported here)",
                          element="UserId")
        return msg.user_id.user_identifier_value.strip()

    async def _patron(self, conn: AsyncConnection, card: str, client: NcipClient, unknown: SchemeValue):
        row = (await conn.execute(select(s.patrons).where(s.patrons.c.card_number == card))).first()
        if row is None or row.library not in client.systems:
            raise Refused(unknown, "no such user", element="UserIdentifierValue", value=card)
        return row

    async def _item(self, conn: AsyncConnection, item_id: m.ItemId, unknown: SchemeValue):
        barcode = item_id.item_identifier_value.strip()
        row = (await conn.execute(select(s.items).where(s.items.c.barcode == barcode))).first()
        if row is None:
            raise Refused(unknown, "no such item", element="ItemIdentifierValue", value=barcode)
        return row

    def _branch_of(self, item_row, client: NcipClient, unknown: SchemeValue) -> str:
        """Where the copy is (a copy on loan: the branch that lent it), when that branch is
        one of the client's systems."""
        branch = item_row.current_branch or item_row.owning_branch
        try:
            system = self.circ.profile_of_branch(branch).system
        except NotFound:
            system = None
        if system not in client.systems:
            raise Refused(unknown, "no such item", element="ItemIdentifierValue", value=item_row.barcode)
        return branch

    def _pickup(self, patron_row, given: SchemeValue | None, rule_violated: SchemeValue) -> str:
        code = (given.text.strip() if given is not None else "") or (patron_row.default_pickup_branch or "")
        if not code:
            raise Refused(General.NEEDED_DATA_MISSING, "no PickupLocation and no default pickup branch",
                          element="PickupLocation")
        d = policies.pickup_ok(self.circ.profile(patron_row.library), patron_contact(patron_row), code)
        if not d.allowed:
            raise Refused(rule_violated, _decision_detail(d), element="PickupLocation", value=code)
        return code

    def _user_id(self, card: str) -> m.UserId:
        return m.UserId(card, agency_id=self.us)

    def _item_id(self, barcode: str) -> m.ItemId:
        return m.ItemId(barcode, agency_id=self.us)

    # ------------------------------------------------------------------ LookupUser

    async def lookup_user(self, msg: m.LookupUser, client: NcipClient) -> m.LookupUserResponse:
        card = self._user(msg)
        wanted = set()
        for given in msg.user_element_type:
            value = m.known(m.USER_ELEMENT_TYPES, given)
            if value is None:
                raise Refused(Messaging.UNKNOWN_VALUE_FROM_KNOWN_SCHEME, "not a user element type",
                              element="UserElementType", value=given.text)
            wanted.add(value.text)
        async with self.circ.db.read() as conn:
            patron = await self._patron(conn, card, client, LookupUserError.UNKNOWN_USER)
            snapshot = await patron_snapshot(conn, patron)
        now = self.circ.now()
        profile = self.circ.profile(patron.library)
        blocks = user_blocks(profile, snapshot, now)
        expired = policies.card_expired(snapshot, now)
        fields = m.UserOptionalFields(
            name_information=(m.NameInformation(m.PersonalNameInformation(
                unstructured_personal_user_name=patron.name or patron.card_number))
                if "Name Information" in wanted else None),
            user_privilege=((m.UserPrivilege(
                agency_id=self.us, agency_user_privilege_type=SchemeValue(patron.category),
                valid_to_date=self._end_of(patron.card_expires),
                user_privilege_status=m.UserPrivilegeStatus(SchemeValue(
                    "Expired" if expired else "Blocked" if blocks else "Active")),
                user_privilege_description=f"{profile.name} ({patron.library}): {patron.category}"),)
                if "User Privilege" in wanted else ()),
            block_or_trap=(tuple(m.BlockOrTrap(self.us, SchemeValue(b)) for b in blocks)
                           if "Block Or Trap" in wanted else ()),
            user_id=(self._user_id(patron.card_number),) if "User Id" in wanted else ())
        empty = fields == m.UserOptionalFields()
        return m.LookupUserResponse(user_id=self._user_id(patron.card_number),
                                    user_optional_fields=None if empty else fields)

    # ------------------------------------------------------------------ AcceptItem

    async def accept_item(self, msg: m.AcceptItem, client: NcipClient) -> m.AcceptItemResponse:
        action = m.known(m.REQUESTED_ACTION_TYPES, msg.requested_action_type)
        if action is None:
            raise Refused(Messaging.UNKNOWN_VALUE_FROM_KNOWN_SCHEME, "not a requested action type",
                          element="RequestedActionType", value=msg.requested_action_type.text)
        if action.text not in HOLD_ACTIONS:
            raise Refused(AcceptItemError.ELEMENT_RULE_VIOLATED,
                          "an arriving copy is held for its patron: Hold For Pickup [And Notify]",
                          element="RequestedActionType", value=action.text)
        if msg.non_returnable_flag:
            raise Refused(AcceptItemError.CANNOT_ACCEPT_ITEM, "copies to keep are not taken in circulation",
                          element="NonReturnableFlag")
        if msg.user_id is None:
            raise Refused(General.NEEDED_DATA_MISSING, "the patron the copy is for", element="UserId")
        card = msg.user_id.user_identifier_value.strip()
        rid_value = msg.request_id.request_identifier_value.strip()
        if not rid_value:
            raise Refused(General.NEEDED_DATA_MISSING, "the request the copy is for",
                          element="RequestIdentifierValue")
        bib = msg.item_optional_fields.bibliographic_description if msg.item_optional_fields else None
        shown = ((bib.title or "").strip() if bib else "") or f"ILL {rid_value}"
        if bib and (bib.author or "").strip():
            shown = f"{shown} / {bib.author.strip()}"
        async with self.circ.db.read() as conn:
            patron = await self._patron(conn, card, client, AcceptItemError.UNKNOWN_USER)
        pickup = self._pickup(patron, msg.pickup_location, AcceptItemError.ELEMENT_RULE_VIOLATED)
        wanted = msg.item_id.item_identifier_value.strip() if msg.item_id is not None else ""
        title_id = broker_title_id(client, rid_value)
        memo = f"NCIP {client.code} AcceptItem {rid_value}"
        if msg.date_for_return is not None:
            memo += f"; lender's due date {self.circ.clock.local(msg.date_for_return).date().isoformat()}"

        async def work(conn: AsyncConnection):
            now = self.circ.now()
            await lock_title_queue(conn, title_id, shown)
            patron_row = await get_row(conn, s.patrons, s.patrons.c.id == patron.id, what="patron",
                                       for_update=True)
            before = (await conn.execute(select(s.requests).where(
                s.requests.c.title_id == title_id, s.requests.c.kind == PARTNER_KIND)
                .order_by(s.requests.c.id.desc()))).first()
            if before is not None:
                if before.patron_id != patron_row.id:
                    raise Refused(AcceptItemError.ELEMENT_RULE_VIOLATED, "this RequestId is another patron's",
                                  element="RequestIdentifierValue", value=rid_value)
                item = await get_row(conn, s.items, s.items.c.id == before.item_id, what="item")
                return item.barcode
            lib, branch = await _client_library(conn, client)
            res = await conn.execute(s.requests.insert().values(
                patron_id=patron_row.id, library=patron_row.library, title_id=title_id, kind=PARTNER_KIND,
                material_type="book", pickup_branch=pickup, contact_method=patron_row.default_contact_method,
                channel=CHANNEL, state=S.NEW.value, placed_at=now, submitted_at_branch=pickup, memo=memo,
                title=shown, updated_at=now))
            rid = res.inserted_primary_key[0]
            copy = dict(title_id=title_id, library=lib, owning_branch=branch, current_branch=branch,
                        material_type="book", partner=lib, ill=True, status="in_transit", updated_at=now)
            item_id = None
            if wanted and len(wanted) <= 64:
                try:
                    async with conn.begin_nested():
                        item = await conn.execute(s.items.insert().values(barcode=wanted, **copy))
                    barcode, item_id = wanted, item.inserted_primary_key[0]
                except IntegrityError as e:      # a barcode of ours (or taken at this moment): ours instead
                    if not is_unique_violation(e):
                        raise
            if item_id is None:
                barcode = f"{BARCODE_PREFIX}{rid:08d}"
                item = await conn.execute(s.items.insert().values(barcode=barcode, **copy))
                item_id = item.inserted_primary_key[0]
            await conn.execute(update(s.requests).where(s.requests.c.id == rid).values(item_id=item_id))
            await record_event(conn, at=now, event="PLACE", actor_role=R.STAFF.value, actor=client.actor,
                               request_id=rid, item_id=item_id, to_state=S.NEW.value, channel=CHANNEL,
                               branch=pickup, reason=f"NCIP AcceptItem {rid_value}")
            for event, role in ((E.VALIDATE, R.SYSTEM), (E.SEND_TO_PARTNER, R.SYSTEM), (E.PARTNER_SHIPPED, R.PARTNER)):
                row = await get_row(conn, s.requests, s.requests.c.id == rid, what="request")
                await transition(conn, row, event, role=role, actor=client.actor, at=now, channel=CHANNEL,
                                 branch=pickup, reason=client.code if event is E.SEND_TO_PARTNER
                                 else "arrived (NCIP AcceptItem)" if event is E.PARTNER_SHIPPED else "")
            item_row = await get_row(conn, s.items, s.items.c.id == item_id, what="item")
            await routing.arrive(self.circ, conn, item_row, pickup, role=R.STAFF, actor=client.actor)
            return barcode

        barcode = await self.circ.db.run(work)
        return m.AcceptItemResponse(request_id=msg.request_id, item_id=self._item_id(barcode))

    # ------------------------------------------------------------------ CheckOutItem

    async def check_out_item(self, msg: m.CheckOutItem, client: NcipClient) -> m.CheckOutItemResponse:
        card = self._user(msg)
        async with self.circ.db.read() as conn:
            patron = await self._patron(conn, card, client, CheckOutItemError.UNKNOWN_USER)
            item = await self._item(conn, msg.item_id, CheckOutItemError.UNKNOWN_ITEM)
        branch = self._branch_of(item, client, CheckOutItemError.UNKNOWN_ITEM)
        try:
            out = await loans.check_out(self.circ, barcode=item.barcode, card=patron.card_number, branch=branch,
                                        role=R.STAFF, actor=client.actor, channel=CHANNEL)
        except NotFound as e:
            raise Refused(CheckOutItemError.UNKNOWN_ITEM, str(e), element="ItemIdentifierValue") from None
        if not out.decision.allowed:
            raise _refusal(_CHECK_OUT, out.decision)
        return m.CheckOutItemResponse(item_id=self._item_id(item.barcode), user_id=self._user_id(patron.card_number),
                                      date_due=self._end_of(out.due), renewal_count=0)

    # ------------------------------------------------------------------ CheckInItem

    async def check_in_item(self, msg: m.CheckInItem, client: NcipClient) -> m.CheckInItemResponse:
        async with self.circ.db.read() as conn:
            item = await self._item(conn, msg.item_id, CheckInItemError.UNKNOWN_ITEM)
        branch = self._branch_of(item, client, CheckInItemError.UNKNOWN_ITEM)
        try:
            out = await loans.check_in(self.circ, barcode=item.barcode, branch=branch, role=R.STAFF,
                                       actor=client.actor, return_kind="counter")
        except NotFound as e:
            raise Refused(CheckInItemError.UNKNOWN_ITEM, str(e), element="ItemIdentifierValue") from None
        if out.decision.code == "not_on_loan":
            raise Refused(CheckInItemError.ITEM_NOT_CHECKED_OUT, _decision_detail(out.decision),
                          element="ItemIdentifierValue", value=item.barcode)
        if not out.decision.allowed:
            raise Refused(General.UNAUTHORIZED_COMBINATION_OF_ELEMENT_VALUES_FOR_AGENCY,
                          _decision_detail(out.decision), element="ItemIdentifierValue", value=item.barcode)
        user_id = None
        if any(m.USER_ELEMENT_TYPES["User Id"].means(t) for t in msg.user_element_type):
            async with self.circ.db.read() as conn:
                card = (await conn.execute(select(s.patrons.c.card_number).join(
                    s.loans, s.loans.c.patron_id == s.patrons.c.id).where(s.loans.c.id == out.loan_id))).scalar()
            user_id = self._user_id(card)
        return m.CheckInItemResponse(item_id=self._item_id(item.barcode), user_id=user_id,
                                     routing_information=routing_information(out.routing))

    # ------------------------------------------------------------------ RequestItem

    async def request_item(self, msg: m.RequestItem, client: NcipClient) -> m.RequestItemResponse:
        card = self._user(msg)
        kind = m.known(m.REQUEST_TYPES, msg.request_type)
        scope = m.known(m.REQUEST_SCOPE_TYPES, msg.request_scope_type)
        for given, value, element in ((msg.request_type, kind, "RequestType"),
                                      (msg.request_scope_type, scope, "RequestScopeType")):
            if value is None:
                raise Refused(Messaging.UNKNOWN_VALUE_FROM_KNOWN_SCHEME, f"not a {element}", element=element,
                              value=given.text)
        if kind.text != "Hold":
            raise Refused(RequestItemError.ELEMENT_RULE_VIOLATED, "only holds are placed here",
                          element="RequestType", value=kind.text)
        async with self.circ.db.read() as conn:
            patron = await self._patron(conn, card, client, RequestItemError.UNKNOWN_USER)
            title_id = await self._title_of(conn, msg)
            marker = request_marker(client, msg.request_id.request_identifier_value.strip()) \
                if msg.request_id is not None else None
            before = None
            if marker is not None:
                before = (await conn.execute(select(s.requests.c.id).where(
                    s.requests.c.patron_id == patron.id, s.requests.c.memo == marker,
                    s.requests.c.state.notin_([st.value for st in lt.TERMINAL])))).scalar()
        pickup = self._pickup(patron, msg.pickup_location, RequestItemError.ELEMENT_RULE_VIOLATED)
        if before is None:
            placed = await holds.place(self.circ, card=patron.card_number, title_id=title_id, pickup_branch=pickup,
                                       channel=CHANNEL, role=R.STAFF, actor=client.actor,
                                       memo=marker or f"NCIP {client.code} RequestItem")
            if placed.request_id is None:
                raise _refusal(_REQUEST, placed.decision)
            before = placed.request_id
        return m.RequestItemResponse(
            request_id=m.RequestId(str(before), agency_id=self.us), user_id=self._user_id(patron.card_number),
            request_type=m.REQUEST_TYPES["Hold"], request_scope_type=m.REQUEST_SCOPE_TYPES["Bibliographic Item"])

    async def _title_of(self, conn: AsyncConnection, msg: m.RequestItem) -> str:
        """Our title id for what the RequestItem names: the title of its first known ItemId,
        else of its BibliographicIds (a record id of ours, an ISBN)."""
        for item_id in msg.item_id:
            barcode = item_id.item_identifier_value.strip()
            tid = (await conn.execute(select(s.items.c.title_id).where(s.items.c.barcode == barcode))).scalar()
            if tid is not None:
                return tid
        record_ids, isbns = [], []
        for b in msg.bibliographic_id:
            if b.bibliographic_record_id is not None:
                record_ids.append(b.bibliographic_record_id.bibliographic_record_identifier.strip())
            elif b.bibliographic_item_id is not None:
                code = b.bibliographic_item_id.bibliographic_item_identifier_code
                if code is None or code.text.strip().upper() in ("ISBN", "ISSN"):
                    isbns.append(normal_isbn(b.bibliographic_item_id.bibliographic_item_identifier))
        for rid in record_ids:
            found = await self.titles.describe(rid, conn)
            if found is not None:
                return found.title_id
        if isbns:
            found = await self.titles.find(Wanted(isbns=tuple(i for i in isbns if i)), conn)
            if found is not None:
                return found.title_id
        given = msg.item_id[0].item_identifier_value if msg.item_id else (record_ids or isbns or [""])[0]
        raise Refused(RequestItemError.UNKNOWN_ITEM, "no such item or title",
                      element="ItemIdentifierValue" if msg.item_id else "BibliographicId", value=given)

    # ------------------------------------------------------------------ CancelRequestItem

    async def cancel_request_item(self, msg: m.CancelRequestItem, client: NcipClient
                                  ) -> m.CancelRequestItemResponse:
        card = self._user(msg)
        async with self.circ.db.read() as conn:
            patron = await self._patron(conn, card, client, CancelRequestItemError.UNKNOWN_USER)
            row = await self._request_of(conn, msg, client, patron)
        d = await holds.cancel(self.circ, request_id=row.id, role=R.STAFF, actor=client.actor, channel=CHANNEL,
                               reason=f"NCIP CancelRequestItem ({client.code})", branch=row.pickup_branch)
        if not d.allowed:
            raise _refusal(_CANCEL, d)
        return m.CancelRequestItemResponse(
            request_id=msg.request_id or m.RequestId(str(row.id), agency_id=self.us), item_id=msg.item_id,
            user_id=self._user_id(patron.card_number))

    async def _request_of(self, conn: AsyncConnection, msg: m.CancelRequestItem, client: NcipClient, patron):
        mine = select(s.requests).where(s.requests.c.patron_id == patron.id).order_by(s.requests.c.id.desc())
        if msg.request_id is not None:
            value = msg.request_id.request_identifier_value.strip()
            agency = msg.request_id.agency_id
            candidates = [mine.where(s.requests.c.memo == request_marker(client, value)),
                          mine.where(s.requests.c.title_id == broker_title_id(client, value),
                                     s.requests.c.kind == PARTNER_KIND)]
            if value.isdigit() and len(value) < 12 and (agency is None or agency.text.strip() == self.config.agency):
                candidates.append(mine.where(s.requests.c.id == int(value)))
            for q in candidates:
                row = (await conn.execute(q)).first()
                if row is not None:
                    return row
            raise Refused(CancelRequestItemError.UNKNOWN_REQUEST, "no such request of this user",
                          element="RequestIdentifierValue", value=value)
        item = await self._item(conn, msg.item_id, CancelRequestItemError.UNKNOWN_ITEM)
        live = [st.value for st in lt.State if st not in lt.TERMINAL]
        for q in (mine.where(s.requests.c.item_id == item.id, s.requests.c.state.in_(live)),
                  mine.where(s.requests.c.title_id == item.title_id, s.requests.c.state.in_(live))):
            row = (await conn.execute(q)).first()
            if row is not None:
                return row
        raise Refused(CancelRequestItemError.UNKNOWN_REQUEST, "this user has no live request for this item",
                      element="ItemIdentifierValue", value=item.barcode)


async def _client_library(conn: AsyncConnection, client: NcipClient) -> tuple[str, str]:
    """The library and branch rows of the copies a client brings in: those of an ISO 18626
    partner of that agency (:func:`~circulation.ill.requester.partner_library`, which
    makes them on first use, safe against a concurrent first use)."""
    return await partner_library(conn, client)


# --------------------------------------------------------------------------- pure helpers

def user_blocks(profile, patron, now: datetime) -> list[str]:
    """The patron's blocks as NCIP BlockOrTrapType values (local values: NCIP publishes
    no list): an expired card blocks borrowing and holds (``policies.card_expired``), a
    loan past the profile's overdue block blocks holds (``placing.overdue_block_days``,
    the rule of ``policies.can_place``)."""
    out = []
    if policies.card_expired(patron, now):
        out += ["Block Check Out", "Block Hold"]
    days = profile.placing.overdue_block_days
    if days is not None and any(policies.overdue_days(loan, now) > days for loan in patron.loans):
        out.append("Block Hold")
    return list(dict.fromkeys(out))


# the routing kind of a partner's copy going back (partners.TO_PARTNER; this module does not
# import the leg, see tests/test_lifecycle_circulation_imports.py)
TO_LENDER = "to_partner"

_ROUTING = {
    routing.HOLD_SHELF: "Put on the hold shelf",
    routing.TRANSIT_HOLD: "Send to the pickup branch",
    routing.TRANSIT_ONWARD: "Send to the pickup branch",
    routing.TRANSIT_HOME: "Send to its home branch",
    routing.RESHELVE: "Reshelve",
    routing.WALK_IN: "Keep at the counter",
    TO_LENDER: "Send back to the lending library",
}


def routing_information(routing: routing.Routing | None) -> m.RoutingInformation | None:
    """Where the copy goes after a check-in (the branch code as a one-level location name)."""
    if routing is None or routing.kind not in _ROUTING or not routing.to_branch:
        return None
    return m.RoutingInformation(
        routing_instructions=_ROUTING[routing.kind],
        destination=m.Destination(m.Location(
            location_type=SchemeValue("Branch"),
            location_name=m.LocationName((m.LocationNameInstance(1, routing.to_branch),)))))


__all__ = ["NcipNode", "Unavailable", "broker_title_id", "request_marker", "routing_information", "user_blocks"]
