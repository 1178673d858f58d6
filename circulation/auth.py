"""Patron and staff access: passwords, logins with lockout, sessions, roles.

Passwords
---------
Hashed with Argon2id (argon2-cffi's ``PasswordHasher``). Production uses the library's
defaults; :func:`configure_password_hashing` (or the environment variable
``UNIONCAT_ARGON2``, e.g. ``time_cost=1,memory_cost=8,parallelism=1``, read at import)
sets cheaper parameters for tests. A hash made with other parameters is replaced on the
next successful login (``check_needs_rehash``). Hashing and verifying run in a worker
thread, so a login does not stall the event loop, and never inside a database
transaction, so the writer lock is not held while Argon2 works.

Patron passwords follow the profile (``[login]``: length and charset, checked by
:func:`lifecycle.policies.password_acceptable`). Staff passwords are at least
:data:`STAFF_PASSWORD_MIN` characters of anything.

Who may set a patron's password (:func:`set_password`):

* the patron, changing it: the old password must be right (a wrong one counts as a
  failed login, so the lockout also limits guessing here);
* the patron, registering (新規パスワード登録, first time or forgotten password): the
  seed does not say how identity is proven; we ask for the phone number registered on
  the card (``registered_phone``). A card without a phone number cannot register on the
  web (the counter can). A wrong phone number counts as a failed login. The password
  rule (length, charset) is checked only after the phone number matched, and an unknown
  card costs the same hash as a wrong phone number, so neither the answer (403
  ``registration_failed``) nor its time tells whether a card exists;
* staff at the counter (``role="staff"``): any patron, no old password; this also
  clears the patron's failed logins (unlocks the account).

Every successful change queues a ``password_registered`` notice (新規パスワード登録通知;
deduplicated per new hash, so a retried transaction queues it once) and ends the
patron's other sessions.

Logins and lockout
------------------
Patron login: card number (Iizuka: the 10 digits under the barcode) + password. Wrong
passwords are recorded in ``login_failures``; :func:`lifecycle.policies.login_locked`
decides from them (Iizuka: 5 wrong passwords lock the account for 30 minutes). The
attempt that reaches the limit already answers "locked until HH:MM". While locked even
the right password is refused (and the attempt is not recorded, so it does not extend
the lock). A success clears the failures; so does the first attempt after a lock ended
(the count starts again).

An unknown card, a card without a password and a wrong password get the same answer
(``login_failed``) and cost the same time (a dummy hash is verified), so the answer does
not tell whether a card exists. Only a *locked* card says so, because the patron must
be told until when; that needs ``lockout_attempts`` wrong passwords first.

Staff login: username + password, the same uniform failure, and the same lockout by the
``[login]`` rules of the staff member's library (``login_failures`` rows name a patron or
a staff member). Resetting the password (``unioncat circ staff --reset``) unlocks.

Audit: every password set or reset is an event on the account (``events.patron_id`` /
``events.staff_id``): PASSWORD_SET (the patron changed or registered it) or
PASSWORD_RESET (staff reset it at the counter, an operator reset a staff password), with
who did it; reaching the lockout limit is a LOCKED_OUT event. No password or hash is
ever written to the audit.

Sessions
--------
A session token is ``secrets.token_urlsafe(32)``, given to the client once; the database
keeps only its SHA-256 (``sessions.token_hash``), so a leaked table does not leak live
sessions. Patron sessions expire after :data:`PATRON_IDLE` (30 minutes) without use,
sliding with every :func:`session_of`, and at most :data:`PATRON_MAX` (8 hours) after
login — the seed warns about shared computers (ネットカフェ), so an idle session should
not stay open. Staff sessions last :data:`STAFF_SESSION` (8 hours, one working day)
from login, not sliding.

Roles
-----
Staff hold any of :data:`ROLES`: ``circulation`` (check-in/out, hold shelf, pull and
transit lists), ``requests`` (reviewing リクエスト), ``admin`` (jobs, loaders),
``network`` (acts for the whole network: the jobs touch every library system, so running
one by hand needs ``admin`` and ``network``). No role implies another. :func:`require_role`
answers with a :class:`Decision`.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import policies
from lifecycle.model import Decision
from lifecycle.profiles import Profile
from lifecycle.reasons import decide, locked_until
from lifecycle.table import Role

from . import notices
from . import schema as s
from .service import Circulation
from .store import lock_one, record_event

ROLES = ("circulation", "requests", "admin", "network")
PATRON_IDLE = timedelta(minutes=30)
PATRON_MAX = timedelta(hours=8)
STAFF_SESSION = timedelta(hours=8)
STAFF_PASSWORD_MIN = 8
PASSWORD_MAX_BYTES = 1024          # longer input is refused before hashing
SESSION_EXTEND_STEP = timedelta(minutes=1)   # don't rewrite the expiry more often than this

ARGON2_ENV = "UNIONCAT_ARGON2"

# --------------------------------------------------------------------------- hashing

_DEFAULTS = {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}
_params = dict(_DEFAULTS)
_hasher = PasswordHasher(**_params)
_dummy_hash: str | None = None


def configure_password_hashing(*, time_cost: int | None = None, memory_cost: int | None = None,
                               parallelism: int | None = None, reset: bool = False) -> dict:
    """Set the Argon2 parameters for new hashes (``reset=True``: argon2-cffi's defaults).
    Returns the parameters now in force."""
    global _hasher, _dummy_hash
    if reset:
        _params.clear()
        _params.update(_DEFAULTS)
    for k, v in (("time_cost", time_cost), ("memory_cost", memory_cost), ("parallelism", parallelism)):
        if v is not None:
            _params[k] = int(v)
    _hasher = PasswordHasher(**_params)
    _dummy_hash = None
    return dict(_params)


def _configure_from_env() -> None:
    spec = os.environ.get(ARGON2_ENV, "").strip()
    if not spec:
        return
    kw = {}
    for part in spec.split(","):
        k, _, v = part.partition("=")
        k = k.strip()
        if k not in _DEFAULTS or not v.strip().isdigit():
            raise ValueError(f"{ARGON2_ENV}: expected time_cost=N,memory_cost=N,parallelism=N; got {spec!r}")
        kw[k] = int(v)
    configure_password_hashing(**kw)


_configure_from_env()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(right password?, a new hash when the stored one uses old parameters). A
    missing or unreadable hash is verified against a dummy, so it costs the same."""
    global _dummy_hash
    hasher = _hasher
    if stored is None:
        if _dummy_hash is None:
            _dummy_hash = await asyncio.to_thread(hasher.hash, secrets.token_hex(8))
        stored, real = _dummy_hash, False
    else:
        real = True

    def work() -> tuple[bool, str | None]:
        try:
            hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, None
        if not real:
            return False, None
        return True, (hasher.hash(password) if hasher.check_needs_rehash(stored) else None)

    return await asyncio.to_thread(work)


# --------------------------------------------------------------------------- principals

@dataclass(frozen=True)
class Principal:
    """Who a session belongs to. ``login`` is the card number (patron) or the
    username (staff)."""
    kind: str                                  # "patron" | "staff"
    id: int
    login: str
    library: str
    roles: frozenset[str] = frozenset()
    branch: str | None = None
    name: str = ""

    @property
    def card(self) -> str | None:
        return self.login if self.kind == "patron" else None

    @property
    def username(self) -> str | None:
        return self.login if self.kind == "staff" else None


@dataclass(frozen=True)
class LoginResult:
    session_token: str | None
    decision: Decision
    principal: Principal | None = field(default=None, compare=False)

    def __bool__(self) -> bool:
        return self.session_token is not None


def require_role(principal: Principal | None, role: str) -> Decision:
    """Allowed when ``principal`` is a staff member holding ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if principal is None:
        return decide("not_logged_in")
    if principal.kind != "staff" or role not in principal.roles:
        return decide("role_required", role=role)
    return decide("ok")


def parse_roles(roles: str | Iterable[str]) -> list[str]:
    """``"circulation requests"`` (spaces or commas) or a list → ordered unique roles."""
    words = re.split(r"[\s,]+", roles) if isinstance(roles, str) else list(roles)
    out: list[str] = []
    for w in words:
        w = w.strip()
        if w and w not in out:
            out.append(w)
    return out


def _roles_problem(roles: list[str]) -> Decision | None:
    if not roles:
        return decide("no_roles")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        return decide("unknown_role", roles=unknown, allowed=list(ROLES))
    return None


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def _new_session(conn: AsyncConnection, *, patron_id: int | None = None,
                       staff_id: int | None = None, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    expires = now + (PATRON_IDLE if patron_id is not None else STAFF_SESSION)
    await conn.execute(insert(s.sessions).values(token_hash=_hash_token(token), patron_id=patron_id,
                                                 staff_id=staff_id, created_at=now, expires_at=expires))
    return token


def _patron_principal(row) -> Principal:
    return Principal("patron", row.id, row.card_number, row.library, frozenset(), None, row.name)


def _staff_principal(row) -> Principal:
    return Principal("staff", row.id, row.username, row.library, frozenset(parse_roles(row.roles)),
                     row.branch, row.name)


# --------------------------------------------------------------------------- patron login

def _owner(patron_id: int | None = None, staff_id: int | None = None):
    """The login_failures condition for one patron's or one staff member's rows."""
    if (patron_id is None) == (staff_id is None):
        raise ValueError("give exactly one of patron_id, staff_id")
    if patron_id is not None:
        return s.login_failures.c.patron_id == patron_id
    return s.login_failures.c.staff_id == staff_id


async def _failures(conn: AsyncConnection, patron_id: int | None = None, *,
                    staff_id: int | None = None) -> list[datetime]:
    return [r.at for r in (await conn.execute(
        select(s.login_failures.c.at).where(_owner(patron_id, staff_id)))).all()]


async def _clear_failures(conn: AsyncConnection, patron_id: int | None = None, *,
                          staff_id: int | None = None) -> None:
    await conn.execute(delete(s.login_failures).where(_owner(patron_id, staff_id)))


async def _live_failures(conn: AsyncConnection, profile: Profile, patron_id: int | None,
                         now: datetime, *, staff_id: int | None = None) -> list[datetime]:
    """The failures that count now: a lock that has ended is forgotten (the count starts
    again). Call inside a write transaction with the patron's (staff member's) row locked."""
    fails = await _failures(conn, patron_id, staff_id=staff_id)
    if len(fails) >= profile.login.lockout_attempts and policies.login_locked(profile, fails, now).allowed:
        await _clear_failures(conn, patron_id, staff_id=staff_id)
        return []
    return fails


def _lock_of(profile: Profile, fails: list[datetime], now: datetime) -> Decision | None:
    d = policies.login_locked(profile, fails, now)
    if d.allowed:
        return None
    return locked_until(d.details["until"])


async def _record_failure(conn: AsyncConnection, profile: Profile, patron_id: int | None,
                          fails: list[datetime], now: datetime, *, staff_id: int | None = None,
                          actor: str = "") -> Decision | None:
    """Record a wrong password; the lock decision if this attempt reached the limit (the
    lock is audited as a LOCKED_OUT event on the account)."""
    await conn.execute(insert(s.login_failures).values(patron_id=patron_id, staff_id=staff_id, at=now))
    lock = _lock_of(profile, fails + [now], now)
    if lock is not None:
        await record_event(conn, at=now, event="LOCKED_OUT", actor_role=Role.SYSTEM.value,
                           actor="login", patron_id=patron_id, staff_id=staff_id,
                           reason=f"{len(fails) + 1} wrong passwords for {actor}; "
                                  f"locked until {lock.details['until'].isoformat(timespec='minutes')}")
    return lock


class _Changed(Exception):
    """The stored hash changed between verifying and recording: verify again."""


async def patron_login(circ: Circulation, *, card: str, password: str) -> LoginResult:
    """Log a patron in with card number and password; see the module doc."""
    for _ in range(5):
        now = circ.now()
        async with circ.db.read() as conn:
            row = (await conn.execute(select(s.patrons).where(s.patrons.c.card_number == card))).first()
            fails = await _failures(conn, row.id) if row is not None else []
        if row is None or len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
            await _verify(None, password[:64])
            return LoginResult(None, decide("login_failed"))
        profile = circ.profile(row.library)
        lock = _lock_of(profile, fails, now)
        if lock is not None:
            return LoginResult(None, lock)
        ok, new_hash = await _verify(row.password_hash, password)

        async def finish(conn: AsyncConnection, row=row, ok=ok, new_hash=new_hash, profile=profile,
                         now=now) -> LoginResult:
            cur = await lock_one(conn, s.patrons, s.patrons.c.id == row.id)
            if cur is None:
                return LoginResult(None, decide("login_failed"))
            if cur.password_hash != row.password_hash:
                raise _Changed()
            fails = await _live_failures(conn, profile, row.id, now)
            lock = _lock_of(profile, fails, now)
            if lock is not None:        # a concurrent attempt reached the limit meanwhile
                return LoginResult(None, lock)
            if not ok:
                lock = await _record_failure(conn, profile, row.id, fails, now, actor=f"card {card}")
                return LoginResult(None, decide("login_failed") if lock is None else lock)
            await _clear_failures(conn, row.id)
            if new_hash is not None:
                await conn.execute(update(s.patrons).where(s.patrons.c.id == row.id)
                                   .values(password_hash=new_hash))
            token = await _new_session(conn, patron_id=row.id, now=now)
            return LoginResult(token, decide("logged_in"), _patron_principal(cur))

        try:
            return await circ.db.run(finish)
        except _Changed:
            continue
    return LoginResult(None, decide("login_failed"))


# --------------------------------------------------------------------------- passwords

def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


async def set_password(circ: Circulation, *, card: str, new_password: str,
                       old_password: str | None = None, role: str, actor: str,
                       registered_phone: str | None = None,
                       keep_session: str | None = None) -> Decision:
    """Set a patron's password (change, self-registration or staff reset; see the module
    doc). ``role`` is "patron" or "staff"; ``actor`` the card number or staff username.
    ``keep_session``: a token of the patron's that stays valid (the one making the change);
    every other session of the patron ends."""
    if role not in ("patron", "staff"):
        raise ValueError(f"role must be 'patron' or 'staff', not {role!r}")
    for _ in range(5):
        try:
            return await _set_password_once(circ, card, new_password, old_password, role, actor,
                                            registered_phone, keep_session)
        except _Changed:
            continue     # the password changed meanwhile: check the proof against the new one
    return decide("password_change_failed" if old_password is not None else "registration_failed")


async def _set_password_once(circ: Circulation, card: str, new_password: str, old_password: str | None,
                             role: str, actor: str, registered_phone: str | None,
                             keep_session: str | None) -> Decision:
    now = circ.now()
    async with circ.db.read() as conn:
        row = (await conn.execute(select(s.patrons).where(s.patrons.c.card_number == card))).first()
        fails = await _failures(conn, row.id) if row is not None else []
    if row is None:
        if role == "staff":
            return decide("unknown_card")
        # the answer and the work of a card that exists but is not proven (below)
        if old_password is not None:
            await _verify(None, old_password[:64])
        else:
            await hash_password(new_password[:64])
        return decide("password_change_failed" if old_password is not None else "registration_failed")
    profile = circ.profile(row.library)
    rule = policies.password_acceptable(profile, new_password)
    if role == "staff" and not rule.allowed:
        return rule

    proof_ok, refusal = True, None
    if role == "patron":
        lock = _lock_of(profile, fails, now)
        if lock is not None:
            return lock
        if old_password is not None:
            proof_ok, _ = await _verify(row.password_hash, old_password)
            refusal = decide("password_change_failed")
        else:
            phone = _digits(row.phone)
            proof_ok = bool(phone) and secrets.compare_digest(phone, _digits(registered_phone))
            refusal = decide("registration_failed")
    # The password rule is told only to whoever proved the card (the old password, the
    # phone): otherwise 422 for a card that exists against 403 for one that does not
    # would let anyone enumerate card numbers.
    if proof_ok and not rule.allowed:
        return rule
    new_hash = await hash_password(new_password) if proof_ok else None
    if not proof_ok and old_password is None:
        await hash_password(new_password[:64])       # as much work as an unknown card's

    async def work(conn: AsyncConnection) -> Decision:
        cur = await lock_one(conn, s.patrons, s.patrons.c.id == row.id)
        if cur.password_hash != row.password_hash:
            raise _Changed()
        if role == "patron":
            fails = await _live_failures(conn, profile, row.id, now)
            lock = _lock_of(profile, fails, now)
            if lock is not None:
                return lock
            if not proof_ok:
                lock = await _record_failure(conn, profile, row.id, fails, now, actor=f"card {card}")
                return refusal if lock is None else lock
        await conn.execute(update(s.patrons).where(s.patrons.c.id == row.id)
                           .values(password_hash=new_hash, password_set_at=now))
        await _clear_failures(conn, row.id)
        how = ("changed by the patron" if old_password is not None else
               "registered by the patron (phone check)" if role == "patron" else
               "reset by staff; failed logins cleared")
        await record_event(conn, at=now, event="PASSWORD_RESET" if role == "staff" else "PASSWORD_SET",
                           actor_role=role, actor=actor, patron_id=row.id, reason=how)
        q = delete(s.sessions).where(s.sessions.c.patron_id == row.id)
        if keep_session:
            q = q.where(s.sessions.c.token_hash != _hash_token(keep_session))
        await conn.execute(q)
        await notices.enqueue(conn, kind="password_registered", patron_id=row.id,
                              dedupe_key=f"password_registered:{row.id}:{_hash_token(new_hash)[:24]}", at=now,
                              data={"card": card, "at": now, "by": role, "actor": actor})
        return decide("password_registered")

    return await circ.db.run(work)


# --------------------------------------------------------------------------- staff

_USERNAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _staff_password_problem(password: str) -> Decision | None:
    if len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
        return decide("password_too_long")
    if len(password) < STAFF_PASSWORD_MIN:
        return decide("staff_password_weak", min=STAFF_PASSWORD_MIN)
    return None


def staff_fields_problem(circ: Circulation, *, username: str, library: str, branch: str | None,
                         roles: list[str]) -> Decision | None:
    """Why these staff fields cannot be stored (None when they can). Shared with the
    staff CSV loader."""
    if not _USERNAME.fullmatch(username or ""):
        return decide("username_invalid")
    if library not in circ.profiles:
        return decide("unknown_library", library=library)
    if branch is not None and branch not in circ.profiles[library].branches:
        return decide("unknown_branch", branch=branch, library=library)
    return _roles_problem(roles)


async def create_staff(circ: Circulation, *, username: str, password: str, library: str,
                       branch: str | None, roles: str | Iterable[str], name: str = "") -> Decision:
    """Add a staff member; ``details["id"]`` is the new row's id."""
    roles = parse_roles(roles)
    problem = staff_fields_problem(circ, username=username, library=library, branch=branch, roles=roles)
    if problem is None:
        problem = _staff_password_problem(password)      # (a refusal Decision is falsy: no `or`)
    if problem is not None:
        return problem
    pw_hash = await hash_password(password)
    now = circ.now()

    async def work(conn: AsyncConnection) -> Decision:
        if (await conn.execute(select(s.staff.c.id).where(s.staff.c.username == username))).first():
            return decide("staff_exists", username=username)
        res = await conn.execute(insert(s.staff).values(
            username=username, name=name, library=library, branch=branch, roles=" ".join(roles),
            password_hash=pw_hash, created_at=now))
        return decide("ok", id=res.inserted_primary_key[0])

    return await circ.db.run(work)


async def set_staff_password(circ: Circulation, *, username: str, new_password: str,
                             actor: str = "operator") -> Decision:
    """Set (or reset) a staff member's password; their sessions end, their failed logins
    are cleared (this unlocks a locked account), and a PASSWORD_RESET event names
    ``actor`` (the operator or admin who did it)."""
    problem = _staff_password_problem(new_password)
    if problem is not None:
        return problem
    pw_hash = await hash_password(new_password)

    async def work(conn: AsyncConnection) -> Decision:
        row = await lock_one(conn, s.staff, s.staff.c.username == username)
        if row is None:
            return decide("unknown_staff", username=username)
        now = circ.now()
        await conn.execute(update(s.staff).where(s.staff.c.id == row.id).values(password_hash=pw_hash))
        await conn.execute(delete(s.sessions).where(s.sessions.c.staff_id == row.id))
        await _clear_failures(conn, staff_id=row.id)
        await record_event(conn, at=now, event="PASSWORD_RESET", actor_role=Role.STAFF.value,
                           actor=actor, staff_id=row.id,
                           reason=f"password of staff {username} reset; sessions ended, failed logins cleared")
        return decide("password_registered")

    return await circ.db.run(work)


async def staff_login(circ: Circulation, *, username: str, password: str) -> LoginResult:
    """Log a staff member in. Wrong passwords lock the account as for patrons, by the
    ``[login]`` rules of the staff member's library (5 wrong, 30 minutes for all three
    profiles); a reset of the password (:func:`set_staff_password`) unlocks it."""
    for _ in range(5):
        now = circ.now()
        async with circ.db.read() as conn:
            row = (await conn.execute(select(s.staff).where(s.staff.c.username == username))).first()
            fails = await _failures(conn, staff_id=row.id) if row is not None else []
        if row is None or len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
            await _verify(None, password[:64])
            return LoginResult(None, decide("staff_login_failed"))
        profile = circ.profile(row.library)
        lock = _lock_of(profile, fails, now)
        if lock is not None:
            return LoginResult(None, lock)
        ok, new_hash = await _verify(row.password_hash, password)

        async def work(conn: AsyncConnection, row=row, ok=ok, new_hash=new_hash, profile=profile,
                       now=now) -> LoginResult:
            cur = await lock_one(conn, s.staff, s.staff.c.id == row.id)
            if cur is None:
                return LoginResult(None, decide("staff_login_failed"))
            if cur.password_hash != row.password_hash:
                raise _Changed()
            fails = await _live_failures(conn, profile, None, now, staff_id=row.id)
            lock = _lock_of(profile, fails, now)
            if lock is not None:        # a concurrent attempt reached the limit meanwhile
                return LoginResult(None, lock)
            if not ok:
                lock = await _record_failure(conn, profile, None, fails, now, staff_id=row.id,
                                             actor=f"staff {username}")
                return LoginResult(None, decide("staff_login_failed") if lock is None else lock)
            await _clear_failures(conn, staff_id=row.id)
            if new_hash is not None:
                await conn.execute(update(s.staff).where(s.staff.c.id == row.id).values(password_hash=new_hash))
            token = await _new_session(conn, staff_id=row.id, now=now)
            return LoginResult(token, decide("logged_in"), _staff_principal(cur))

        try:
            return await circ.db.run(work)
        except _Changed:
            continue
    return LoginResult(None, decide("staff_login_failed"))


# --------------------------------------------------------------------------- sessions

async def session_of(circ: Circulation, token: str | None) -> Principal | None:
    """The principal a session token belongs to, or None (unknown, expired, logged out,
    or the person was removed). A patron session's idle expiry moves forward."""
    if not token:
        return None
    th = _hash_token(token)
    now = circ.now()
    async with circ.db.read() as conn:
        srow = (await conn.execute(select(s.sessions).where(s.sessions.c.token_hash == th))).first()
        if srow is None:
            return None
        person = None
        if srow.expires_at > now:
            if srow.patron_id is not None:
                person = (await conn.execute(select(s.patrons).where(s.patrons.c.id == srow.patron_id))).first()
            elif srow.staff_id is not None:
                person = (await conn.execute(select(s.staff).where(s.staff.c.id == srow.staff_id))).first()
    if person is None:
        async with circ.db.transaction() as conn:
            await conn.execute(delete(s.sessions).where(s.sessions.c.token_hash == th))
        return None
    if srow.patron_id is not None:
        new_expiry = min(now + PATRON_IDLE, srow.created_at + PATRON_MAX)
        if new_expiry - srow.expires_at >= SESSION_EXTEND_STEP:
            async with circ.db.transaction() as conn:
                await conn.execute(update(s.sessions)
                                   .where(s.sessions.c.token_hash == th, s.sessions.c.expires_at > now)
                                   .values(expires_at=new_expiry))
        return _patron_principal(person)
    return _staff_principal(person)


async def logout(circ: Circulation, token: str | None) -> bool:
    """End a session; False when there was none."""
    if not token:
        return False
    async with circ.db.transaction() as conn:
        res = await conn.execute(delete(s.sessions).where(s.sessions.c.token_hash == _hash_token(token)))
        return res.rowcount > 0


async def purge_expired_sessions(circ: Circulation) -> int:
    """Delete sessions that have expired; returns how many (for a periodic job)."""
    async with circ.db.transaction() as conn:
        res = await conn.execute(delete(s.sessions).where(s.sessions.c.expires_at <= circ.now()))
        return res.rowcount
