"""The circulation database: every table of the reservation/loan lifecycle, as
SQLAlchemy Core tables (one ``metadata``), the same on SQLite and PostgreSQL.

Times are naive local (Japan) datetimes, as in :mod:`lifecycle`; dates are dates.
Request states are the names of :class:`lifecycle.table.State`.

Invariants the database itself enforces (the engine's locking is the first line, these
are the second, so a bug or a race can fail a transaction but never corrupt the data):

* one open loan per item (``ux_loans_open_item``: partial unique index on ``loans.item_id``
  where ``returned_at`` is null);
* a copy is secured for at most one request (``ux_requests_secured_item``: partial unique
  index on ``requests.item_id`` where the state is IN_TRANSIT or ON_HOLD_SHELF);
* a notice is queued once per ``dedupe_key`` (so a retried transaction or job cannot
  queue the same "hold ready" mail twice).

Every column that references ``requests`` or ``loans`` is indexed: deleting a request
(the purge job) makes the database check each referencing table, which without an
index is a full scan per deleted row.

Lock order (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite serializes writers with
``BEGIN IMMEDIATE``): title queue row, then item row(s), then patron row, then request
rows. Every writer that takes more than one lock takes them in this order. A reading-group
set check-out locks the set's title queue rows (by title id), then its items (by id),
then the patron. Registering or extending a school grade card first takes a
transaction-level advisory lock on (library, school, grade) (``pg_advisory_xact_lock``),
then the patron row. ``patron_proxies`` rows are written only under their patron's row lock
(and read under it at check-out).
"""
from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)

from lifecycle.item_table import ItemStatus
from lifecycle.loan_table import LoanState
from lifecycle.table import SECURED

metadata = MetaData()

SECURED_STATES = tuple(sorted(st.value for st in SECURED))   # the partial index below names them

# --------------------------------------------------------------------------- network

libraries = Table(
    "libraries", metadata,
    Column("code", String(64), primary_key=True),         # "iizuka", "hiroshima-u"
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False, server_default="city"),  # city | university
    Column("profile", String(64)),                         # config/profiles/<name>.toml
)

branches = Table(
    "branches", metadata,
    Column("code", String(64), primary_key=True),         # unique across the network
    Column("library", String(64), ForeignKey("libraries.code"), nullable=False),
    Column("name", Text, nullable=False),
    Column("pickup", Boolean, nullable=False, server_default=text("true")),
    Column("kind", String(32), nullable=False, server_default="library"),
)

# Closed days and events of a branch (opening hours per weekday/season are in the profile).
# The mobile library's schedule (運行スケジュール) is kept here too: one row per stop and day,
# kind "visit" (or "school_visit" for a stop at a school, 学校内での貸出) and title = the stop's
# name; a mobile loan is due on the next visit to the stop it was lent at (circulation/mobile.py).
calendar_entries = Table(
    "calendar_entries", metadata,
    Column("id", Integer, primary_key=True),
    Column("branch", String(64), ForeignKey("branches.code"), nullable=False),
    Column("day", Date, nullable=False),
    Column("kind", String(16), nullable=False),            # closed | holiday | event | visit | school_visit
    Column("title", Text, nullable=False, server_default=""),
    UniqueConstraint("branch", "day", "kind", "title", name="uq_calendar_entry"),
)

# Versions of data the service processes cache (``circulation.service.Circulation.calendar``
# keeps the branch calendars per process): the database bumps a name's ``version`` whenever
# that data changes, by a trigger (see :func:`_version_triggers`), so every writer -- another
# API process, ``unioncat circ load``, an SQL console -- invalidates every cache.
# "calendar": any change to ``calendar_entries``.
circ_versions = Table(
    "circ_versions", metadata,
    Column("name", String(32), primary_key=True),
    Column("version", Integer, nullable=False, server_default="1"),
)

# --------------------------------------------------------------------------- people

patrons = Table(
    "patrons", metadata,
    Column("id", Integer, primary_key=True),
    Column("card_number", String(32), nullable=False, unique=True),
    Column("library", String(64), ForeignKey("libraries.code"), nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("home_municipality", Text, nullable=False),
    Column("work_or_school_municipality", Text),
    Column("category", String(32), nullable=False, server_default="individual"),
    Column("email", Text),
    Column("phone", Text),
    Column("fax", Text),
    Column("locale", String(8), nullable=False, server_default="ja"),
    Column("default_pickup_branch", String(64), ForeignKey("branches.code")),
    Column("default_contact_method", String(16), nullable=False, server_default="none"),
    Column("password_hash", Text),
    Column("password_set_at", DateTime),
    Column("history_opt_in", Boolean, nullable=False, server_default=text("false")),
    Column("reading_goal", Integer),                       # books per year (読書マラソン)
    Column("new_book_alerts", Boolean, nullable=False, server_default=text("false")),
    # 未就学児・小中学生: services that need a guardian's consent (Hiroshima home delivery)
    Column("minor", Boolean, nullable=False, server_default=text("false")),
    Column("guardian_consent_at", DateTime),               # the guardian's consent, when given
    # 有料図書宅配サービス (circulation/delivery.py): registered when the 利用申請書 was accepted
    # (null: not registered), through "counter" or "post"; revoked by staff with a reason code
    # (lifecycle.policies.DELIVERY_REVOCATION_REASONS), which clears delivery_registered_at
    Column("delivery_registered_at", DateTime),
    Column("delivery_registered_via", String(16)),
    Column("delivery_revoked_at", DateTime),
    Column("delivery_revoked_reason", String(32)),
    # last day the card is valid (Hiroshima 団体貸出: お申込み時から1年間, extended by staff a
    # year at a time, circulation/groups.py); null: the card does not expire
    Column("card_expires", Date),
    # school grade cards (category "school", 利用券は学年で1枚): the school and the grade;
    # at most one unexpired card per (library, school, grade), checked by groups.register
    # under an advisory lock on PostgreSQL (an expiry date cannot be a unique index)
    Column("school", Text),
    Column("grade", String(16)),
    Column("representative", Text),                        # group cards: 代表者 (school: 学年主任)
    Column("created_at", DateTime, nullable=False),
    Index("ix_patrons_school_grade", "library", "school", "grade"),
)

# Wrong passwords since the last success, of a patron or of a staff member (one of the two).
login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True),
    Column("patron_id", Integer, ForeignKey("patrons.id"), index=True),
    Column("staff_id", Integer, ForeignKey("staff.id"), index=True),
    Column("at", DateTime, nullable=False),
    CheckConstraint("(patron_id IS NULL) <> (staff_id IS NULL)", name="ck_login_failure_owner"),
)

staff = Table(
    "staff", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("library", String(64), ForeignKey("libraries.code"), nullable=False),
    Column("branch", String(64), ForeignKey("branches.code")),
    Column("roles", Text, nullable=False, server_default="circulation"),  # space-separated
    Column("password_hash", Text),
    Column("created_at", DateTime, nullable=False),
)

# Logged-in sessions of patrons and staff; only a hash of the token is stored.
sessions = Table(
    "sessions", metadata,
    Column("token_hash", String(128), primary_key=True),
    Column("patron_id", Integer, ForeignKey("patrons.id")),
    Column("staff_id", Integer, ForeignKey("staff.id")),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

# 代理での貸出 (Hiroshima: 本人了承のうえカードを預かり代理での貸出は可能): the card holder's
# consent naming a proxy (circulation/proxy.py); live while revoked_at is null. The name is
# stored as given (compared by lifecycle.policies.proxy_name_key).
patron_proxies = Table(
    "patron_proxies", metadata,
    Column("id", Integer, primary_key=True),
    Column("patron_id", Integer, ForeignKey("patrons.id"), nullable=False, index=True),
    Column("proxy_name", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),   # 乳幼児, 入院中, ...
    Column("consented_at", DateTime, nullable=False),
    Column("recorded_by", String(64), nullable=False, server_default=""),
    Column("revoked_at", DateTime),
    Column("revoked_by", String(64)),
)

# --------------------------------------------------------------------------- items

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True),
    Column("barcode", String(64), nullable=False, unique=True),
    Column("title_id", String(128), nullable=False, index=True),   # union record id
    Column("library", String(64), ForeignKey("libraries.code"), nullable=False),  # owner
    Column("owning_branch", String(64), ForeignKey("branches.code"), nullable=False),
    Column("current_branch", String(64), ForeignKey("branches.code")),
    Column("location", Text, nullable=False, server_default=""),
    Column("call_number", Text, nullable=False, server_default=""),
    Column("material_type", String(32), nullable=False, server_default="book"),
    Column("circulating", Boolean, nullable=False, server_default=text("true")),
    Column("newest_issue", Boolean, nullable=False, server_default=text("false")),
    Column("lending_release", Date),
    Column("partner", String(64)),                         # university partner (連携貸出)
    Column("ill", Boolean, nullable=False, server_default=text("false")),
    # 読書会用図書 (Hiroshima): the reading-group set this copy belongs to; a set's copies are
    # lent together with groups.check_out_set and never one by one
    Column("set_code", String(64), index=True),
    # lifecycle.item_table.ItemStatus: available | on_loan | in_transit | on_hold_shelf | lost | withdrawn
    Column("status", String(16), nullable=False, server_default=ItemStatus.AVAILABLE.value),
    Column("updated_at", DateTime),
    # the titles with a copy in at a branch, read from the index alone (the search limit
    # local.available: circulation/availability_view.py)
    Index("ix_items_shelf", "current_branch", "status", "circulating", "newest_issue", "ill", "title_id"),
)

# One row per title that has (or had) a queue: the row that serializes trapping and
# placing for that title (SELECT ... FOR UPDATE on PostgreSQL).
title_queues = Table(
    "title_queues", metadata,
    Column("title_id", String(128), primary_key=True),
    Column("title", Text, nullable=False, server_default=""),
)

# --------------------------------------------------------------------------- requests

requests = Table(
    "requests", metadata,
    Column("id", Integer, primary_key=True),
    Column("patron_id", Integer, ForeignKey("patrons.id"), nullable=False, index=True),
    Column("library", String(64), ForeignKey("libraries.code"), nullable=False),  # serving system
    Column("title_id", String(128), nullable=False),
    # "reservation", "request", or "partner": a university partner's copy (連携貸出, item_id
    # names it from the start; circulation/partners.py)
    Column("kind", String(16), nullable=False, server_default="reservation"),
    Column("material_type", String(32), nullable=False, server_default="book"),
    Column("pickup_branch", String(64), ForeignKey("branches.code"), nullable=False),
    Column("contact_method", String(16), nullable=False, server_default="none"),
    Column("channel", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("placed_at", DateTime, nullable=False),
    Column("item_id", Integer, ForeignKey("items.id")),   # the secured copy
    Column("submitted_at_branch", String(64)),
    Column("publication_date", Date),
    Column("set_id", String(64)),
    Column("set_position", Integer, nullable=False, server_default="0"),
    Column("group_id", String(64)),
    Column("memo", Text, nullable=False, server_default=""),
    # the owning branch whose branch material rule admitted the request (Komae: AV reservations
    # are counted per branch that holds the copies); null when no such rule applied
    Column("rule_branch", String(64)),
    Column("ready_at", DateTime),
    Column("contacted_at", DateTime),
    Column("shelf_deadline", Date),
    Column("cancelled_at", DateTime),
    Column("cancel_reason", Text),
    Column("cancel_channel", String(16)),
    Column("review_note", Text),                           # staff review of a リクエスト
    Column("title", Text, nullable=False, server_default=""),  # display title, for lists and mails
    # 有料図書宅配: to be shipped (pickup_branch is the profile's delivery.dispatch_branch; ready
    # means on that branch's dispatch list, with no hold_ready notice and no shelf deadline)
    Column("delivery", Boolean, nullable=False, server_default=text("false")),
    # a partner request by title (circulation/ill/requester.py): the partners to ask, in order
    # (agency id values, space-separated), fixed when it was placed
    Column("rota", Text),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_requests_queue", "title_id", "state", "placed_at"),
    Index("ux_requests_secured_item", "item_id", unique=True,
          sqlite_where=text("state IN ('IN_TRANSIT', 'ON_HOLD_SHELF')"),
          postgresql_where=text("state IN ('IN_TRANSIT', 'ON_HOLD_SHELF')")),
)

# --------------------------------------------------------------------------- loans

loans = Table(
    "loans", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("patron_id", Integer, ForeignKey("patrons.id"), nullable=False, index=True),
    Column("request_id", Integer, ForeignKey("requests.id"), index=True),
    Column("branch", String(64), ForeignKey("branches.code"), nullable=False),  # lending counter
    Column("stop", Text),                                  # mobile library: the stop it was lent at
    Column("channel", String(16), nullable=False, server_default="counter"),
    Column("lent_at", DateTime, nullable=False),
    Column("due", Date, nullable=False),
    Column("renewals", Integer, nullable=False, server_default="0"),
    Column("renewed_via", String(16)),
    Column("state", String(16), nullable=False, server_default=LoanState.ON_LOAN.value),  # lifecycle.loan_table
    Column("returned_at", DateTime),                       # the date the return counts from
    Column("return_branch", String(64)),
    Column("return_kind", String(16)),                     # counter, book_drop, drop_point, ...
    # 代理での貸出: the name of the person who borrowed with the holder's card (checked against
    # patron_proxies at check-out); null when the holder borrowed
    Column("proxy", Text),
    Index("ux_loans_open_item", "item_id", unique=True,
          sqlite_where=text("returned_at IS NULL"),
          postgresql_where=text("returned_at IS NULL")),
)

transits = Table(
    "transits", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False, index=True),
    Column("request_id", Integer, ForeignKey("requests.id"), index=True),
    Column("from_branch", String(64), ForeignKey("branches.code"), nullable=False),
    Column("to_branch", String(64), ForeignKey("branches.code"), nullable=False),
    # hold | return_home | partner (a university's copy coming in) | partner_return (going back)
    Column("reason", String(16), nullable=False),
    Column("sent_at", DateTime, nullable=False),
    Column("arrived_at", DateTime),
)

# --------------------------------------------------------------------------- audit

# Every transition of a request (and every loan/item event): who, when, from, to, why.
events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("request_id", Integer, ForeignKey("requests.id"), index=True),
    Column("loan_id", Integer, ForeignKey("loans.id"), index=True),
    Column("item_id", Integer, ForeignKey("items.id"), index=True),
    # account events (password set or reset, lockout, registrations): whose account
    Column("patron_id", Integer, ForeignKey("patrons.id"), index=True),
    Column("staff_id", Integer, ForeignKey("staff.id"), index=True),
    Column("event", String(32), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32)),
    Column("actor_role", String(16), nullable=False),      # patron | staff | system | partner
    Column("actor", String(64), nullable=False, server_default=""),  # card, username, job name
    Column("channel", String(16)),
    Column("branch", String(64)),
    Column("reason", Text, nullable=False, server_default=""),
)

# --------------------------------------------------------------------------- notices

# Transactional outbox: a row is written in the same transaction as the transition
# that causes it; the dispatcher sends it later over SMTP and marks it sent.
notices = Table(
    "notices", metadata,
    Column("id", Integer, primary_key=True),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),            # hold_received, hold_ready, ...
    Column("patron_id", Integer, ForeignKey("patrons.id"), nullable=False, index=True),
    Column("request_id", Integer, ForeignKey("requests.id"), index=True),
    Column("loan_id", Integer, ForeignKey("loans.id"), index=True),
    Column("data", Text, nullable=False, server_default="{}"),   # JSON for the template
    Column("status", String(16), nullable=False, server_default="pending"),  # pending|sending|sent|failed|suppressed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_until", DateTime),
    Column("last_error", Text),
    Column("message_id", String(200)),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Index("ix_notices_due", "status", "next_attempt_at"),
)

# --------------------------------------------------------------------------- My bookshelf

bookshelf = Table(
    "bookshelf", metadata,
    Column("id", Integer, primary_key=True),
    Column("patron_id", Integer, ForeignKey("patrons.id"), nullable=False, index=True),
    Column("shelf", String(16), nullable=False),           # want | finished | history
    Column("title_id", String(128), nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("added_at", DateTime, nullable=False),
    Column("loan_id", Integer, ForeignKey("loans.id"), index=True),    # history entries
    Column("note", Text, nullable=False, server_default=""),
)

# Runs of the scheduled jobs (shelf expiry, overdue marking, purge, notice retries).
job_runs = Table(
    "job_runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("job", String(32), nullable=False, index=True),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("changed", Integer, nullable=False, server_default="0"),
    Column("error", Text),
)

# The network's schedule of the periodic jobs (circulation.jobs.Scheduler): every service
# process on this database schedules the jobs, and the one that claims a job's row when it
# is due runs it, so a job runs once per network, not once per process. Times are seconds
# since the epoch (time.time(), not the service clock, which tests and benchmarks stop).
job_schedule = Table(
    "job_schedule", metadata,
    Column("job", String(32), primary_key=True),
    Column("next_due", Float, nullable=False),   # claimed: the end of the claim (a lease); else the next run
    Column("owner", String(128), nullable=False, server_default=""),   # host:pid:n of the last claimer
)

# --------------------------------------------------------------------------- 予約カート

# The patron's reservation cart (Iizuka: search → 予約カート → pickup and contact → confirm):
# titles chosen but not yet placed, each at most once per patron (circulation/cart.py);
# the id keeps the order they were added in.
cart_items = Table(
    "cart_items", metadata,
    Column("id", Integer, primary_key=True),
    Column("patron_id", Integer, ForeignKey("patrons.id"), nullable=False),
    Column("title_id", String(128), nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("added_at", DateTime, nullable=False),
    UniqueConstraint("patron_id", "title_id", name="uq_cart_item"),
)

# --------------------------------------------------------------------------- ISO 18626 inter-library loan

# Requester legs (circulation/ill/requester.py): one per supplier asked for a patron's partner
# request (requests.kind "partner"), in rota order; state: lifecycle.ill.RState. ``rid`` is our
# requestingAgencyRequestId (unique), the key of every message about the leg.
ill_legs = Table(
    "ill_legs", metadata,
    Column("id", Integer, primary_key=True),
    Column("request_id", Integer, ForeignKey("requests.id"), nullable=False, index=True),
    Column("partner", String(64), nullable=False),          # the supplier's agency id value
    Column("rid", String(64), nullable=False, unique=True),
    Column("supplier_rid", String(128)),                    # their supplyingAgencyRequestId
    Column("attempt", Integer, nullable=False),             # 1, 2, ... within the request
    Column("request_type", String(8), nullable=False, server_default="New"),
    Column("previous_leg_id", Integer, ForeignKey("ill_legs.id")),
    Column("state", String(32), nullable=False),
    Column("item_ref", Text),                                # the supplier's item id (Loaned)
    Column("due_at", DateTime),                              # the supplier's due date
    Column("offer", Text, nullable=False, server_default="{}"),  # RetryPossible / conditions (JSON)
    Column("note", Text, nullable=False, server_default=""),     # the supplier's last note
    Column("answer_by", DateTime),                           # a silent supplier is given up then
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# Supplier legs (circulation/ill/supplier.py): a partner's request to borrow from us; state:
# lifecycle.ill.SState. One per (partner, their requestingAgencyRequestId).
ill_supplies = Table(
    "ill_supplies", metadata,
    Column("id", Integer, primary_key=True),
    Column("partner", String(64), nullable=False),
    Column("rid", String(128), nullable=False),
    Column("state", String(32), nullable=False),
    Column("title_id", String(128)),                         # the title matched in our catalog
    Column("libraries", Text, nullable=False, server_default=""),  # our systems holding it (space-separated)
    Column("library", String(64), ForeignKey("libraries.code")),   # the system that supplies
    Column("item_id", Integer, ForeignKey("items.id"), index=True),
    Column("loan_id", Integer, ForeignKey("loans.id"), index=True),  # to the partner as a borrower
    Column("bib", Text, nullable=False, server_default="{}"),      # what was asked for (JSON)
    Column("pending", String(16)),                          # cancel | renew: a question staff answer
    Column("overdue_sent", Boolean, nullable=False, server_default=text("false")),
    Column("due_at", DateTime),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("partner", "rid", name="uq_ill_supply"),
)

# Every ISO 18626 message in and out, with its confirmation: the history staff read, the
# outbox of messages still to deliver (direction "out", status pending/failed) and the
# replay guard (an incoming body seen before is confirmed again and changes nothing).
ill_messages = Table(
    "ill_messages", metadata,
    Column("id", Integer, primary_key=True),
    Column("leg_id", Integer, ForeignKey("ill_legs.id"), index=True),
    Column("supply_id", Integer, ForeignKey("ill_supplies.id"), index=True),
    Column("partner", String(64), nullable=False),
    Column("direction", String(3), nullable=False),          # in | out
    Column("kind", String(40), nullable=False),              # request, supplyingAgencyMessage, ...
    Column("summary", Text, nullable=False, server_default=""),   # e.g. "StatusChange Loaned"
    Column("digest", String(64)),                            # sha256 of an incoming body
    Column("body", Text, nullable=False),
    Column("confirmation", Text),                            # what was answered / was answered
    # in: ok | error;  out: pending | sent | refused (ERROR confirmation) | failed (undelivered)
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime),
    Column("at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Index("ix_ill_messages_due", "direction", "status", "next_attempt_at"),
    Index("ix_ill_messages_digest", "partner", "digest"),
)


# --------------------------------------------------------------------------- version triggers

_BUMP_CALENDAR = "UPDATE circ_versions SET version = version + 1 WHERE name = 'calendar'"
_VERSION_DDL = {
    "postgresql": [
        "INSERT INTO circ_versions (name, version) VALUES ('calendar', 1) ON CONFLICT DO NOTHING",
        "CREATE OR REPLACE FUNCTION circ_bump_calendar() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN {_BUMP_CALENDAR}; RETURN NULL; END $$",
        "CREATE OR REPLACE TRIGGER calendar_entries_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
        "ON calendar_entries FOR EACH STATEMENT EXECUTE FUNCTION circ_bump_calendar()",
    ],
    "sqlite": [
        "INSERT OR IGNORE INTO circ_versions (name, version) VALUES ('calendar', 1)",
        *(f"CREATE TRIGGER IF NOT EXISTS calendar_entries_version_{op.lower()} AFTER {op} ON calendar_entries "
          f"BEGIN {_BUMP_CALENDAR}; END" for op in ("INSERT", "UPDATE", "DELETE")),
    ],
}


@event.listens_for(metadata, "after_create")
def _version_triggers(target, connection, **_kw) -> None:
    """The version rows and the triggers that bump them (idempotent: run by every
    ``create_all``, so a database made before them gets them at the next ``circ init``)."""
    for sql in _VERSION_DDL.get(connection.dialect.name, ()):
        connection.exec_driver_sql(sql)
