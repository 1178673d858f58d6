"""Patron and staff access on the database (circulation/auth.py): password rules and
registration, login with the Iizuka lockout, sessions, staff roles. Each test runs on
SQLite and on PostgreSQL (the ``db_url`` fixture)."""
from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from circ_helpers import CHEAP_HASHING, NOW, add_patron, rows
from circulation import auth
from circulation import schema as s

pytestmark = pytest.mark.usefixtures("cheap_hashing")
CARD = "2100000001"


async def iizuka_patron(circ, card=CARD, password: str | None = "hon1234", phone="0948-22-0001", **kw):
    pid = await add_patron(circ, card, "iizuka", phone=phone, email="hanako@example.jp", **kw)
    if password is not None:
        d = await auth.set_password(circ, card=card, new_password=password, role="staff", actor="counter1")
        assert d.allowed, d
    return pid


def at(minutes: float):
    return NOW + timedelta(minutes=minutes)


async def test_iizuka_patron_registers_a_password_with_the_registered_phone_and_logs_in(circ):
    pid = await iizuka_patron(circ, password=None)
    d = await auth.set_password(circ, card=CARD, new_password="hon1234", role="patron", actor=CARD,
                                registered_phone="0948220001")
    assert d.allowed and d.code == "password_registered"
    (p,) = await rows(circ, s.patrons, s.patrons.c.id == pid)
    assert p.password_hash.startswith("$argon2id$") and "hon1234" not in p.password_hash
    assert p.password_set_at == NOW
    (n,) = await rows(circ, s.notices, s.notices.c.patron_id == pid)
    assert n.kind == "password_registered" and n.status == "pending"

    res = await auth.patron_login(circ, card=CARD, password="hon1234")
    assert res.session_token and res.decision.code == "logged_in"
    who = await auth.session_of(circ, res.session_token)
    assert (who.kind, who.id, who.card, who.library, who.roles) == ("patron", pid, CARD, "iizuka", frozenset())


async def test_iizuka_passwords_are_four_to_ten_half_width_alphanumerics_digits_only_allowed(circ):
    pid = await iizuka_patron(circ, password=None)
    for bad, code in [("abc", "password_length"), ("abcdefghijk", "password_length"),
                      ("ｐａｓｓ１２", "password_charset"), ("pass-12", "password_charset"),
                      ("パスワード", "password_charset")]:
        d = await auth.set_password(circ, card=CARD, new_password=bad, role="staff", actor="counter1")
        assert (d.allowed, d.code) == (False, code), bad
    (p,) = await rows(circ, s.patrons, s.patrons.c.id == pid)
    assert p.password_hash is None
    assert await rows(circ, s.notices) == []
    for good in ("1234", "Abc12345ef", "0000000000"):
        d = await auth.set_password(circ, card=CARD, new_password=good, role="staff", actor="counter1")
        assert d.allowed, good
        assert (await auth.patron_login(circ, card=CARD, password=good)).session_token


async def test_iizuka_five_wrong_passwords_lock_the_account_for_thirty_minutes(circ):
    pid = await iizuka_patron(circ)
    for i in range(4):
        circ.clock.fixed = at(i)
        res = await auth.patron_login(circ, card=CARD, password="wrong1")
        assert (res.session_token, res.decision.code) == (None, "login_failed")
    circ.clock.fixed = at(4)
    fifth = await auth.patron_login(circ, card=CARD, password="wrong1")
    assert fifth.decision.code == "locked_out"
    until = at(4) + timedelta(minutes=30)
    assert fifth.decision.details["until"] == until
    assert f"{until:%H:%M}まで" in fifth.decision.message_ja and f"{until:%H:%M}" in fifth.decision.message_en

    circ.clock.fixed = until - timedelta(minutes=1)
    right_too_early = await auth.patron_login(circ, card=CARD, password="hon1234")
    assert (right_too_early.session_token, right_too_early.decision.code) == (None, "locked_out")
    assert right_too_early.decision.details["until"] == until      # not extended by the attempt
    assert len(await rows(circ, s.login_failures, s.login_failures.c.patron_id == pid)) == 5

    circ.clock.fixed = until
    res = await auth.patron_login(circ, card=CARD, password="hon1234")
    assert res.session_token and res.decision.code == "logged_in"
    assert await rows(circ, s.login_failures, s.login_failures.c.patron_id == pid) == []


async def test_after_a_lock_ends_one_wrong_password_does_not_lock_again(circ):
    pid = await iizuka_patron(circ)
    for i in range(5):
        circ.clock.fixed = at(i)
        await auth.patron_login(circ, card=CARD, password="wrong1")
    circ.clock.fixed = at(4 + 30)
    res = await auth.patron_login(circ, card=CARD, password="wrong1")
    assert res.decision.code == "login_failed"
    assert len(await rows(circ, s.login_failures, s.login_failures.c.patron_id == pid)) == 1


async def test_a_successful_login_clears_the_count_of_wrong_passwords(circ):
    await iizuka_patron(circ)
    for i in range(4):
        circ.clock.fixed = at(i)
        await auth.patron_login(circ, card=CARD, password="wrong1")
    circ.clock.fixed = at(5)
    assert (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    for i in range(4):
        circ.clock.fixed = at(6 + i)
        res = await auth.patron_login(circ, card=CARD, password="wrong1")
        assert res.decision.code == "login_failed"


async def test_unknown_card_card_without_password_and_wrong_password_get_the_same_answer(circ):
    await iizuka_patron(circ)
    await iizuka_patron(circ, card="2100000002", password=None)
    unknown = await auth.patron_login(circ, card="2199999999", password="hon1234")
    no_password = await auth.patron_login(circ, card="2100000002", password="hon1234")
    wrong = await auth.patron_login(circ, card=CARD, password="hon9999")
    answers = {(r.session_token, r.decision.code, r.decision.message_ja, r.decision.message_en)
               for r in (unknown, no_password, wrong)}
    assert len(answers) == 1
    assert unknown.decision.code == "login_failed" and not unknown.decision.details


async def test_five_concurrent_wrong_passwords_and_more_record_exactly_five_and_lock(circ):
    pid = await iizuka_patron(circ)
    results = await asyncio.gather(*(auth.patron_login(circ, card=CARD, password=f"wrong{i}") for i in range(8)))
    codes = sorted(r.decision.code for r in results)
    assert codes.count("login_failed") == 4 and codes.count("locked_out") == 4
    assert len(await rows(circ, s.login_failures, s.login_failures.c.patron_id == pid)) == 5
    assert (await auth.patron_login(circ, card=CARD, password="hon1234")).decision.code == "locked_out"


async def test_patron_changes_the_password_with_the_old_one_and_other_sessions_end(circ):
    pid = await iizuka_patron(circ)
    here = (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    elsewhere = (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token

    wrong = await auth.set_password(circ, card=CARD, new_password="new5678", old_password="nothat1",
                                    role="patron", actor=CARD, keep_session=here)
    assert (wrong.allowed, wrong.code) == (False, "password_change_failed")
    assert len(await rows(circ, s.login_failures, s.login_failures.c.patron_id == pid)) == 1

    d = await auth.set_password(circ, card=CARD, new_password="new5678", old_password="hon1234",
                                role="patron", actor=CARD, keep_session=here)
    assert d.code == "password_registered"
    assert (await auth.session_of(circ, here)).card == CARD
    assert await auth.session_of(circ, elsewhere) is None
    assert not (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    assert (await auth.patron_login(circ, card=CARD, password="new5678")).session_token
    kinds = [n.kind for n in await rows(circ, s.notices, s.notices.c.patron_id == pid)]
    assert kinds == ["password_registered", "password_registered"]   # staff's first one, the change


async def test_new_password_registration_needs_the_phone_number_on_the_card(circ):
    await iizuka_patron(circ)                                     # forgot the password
    await iizuka_patron(circ, card="2100000002", password=None, phone=None)
    wrong_phone = await auth.set_password(circ, card=CARD, new_password="fresh12", role="patron",
                                          actor=CARD, registered_phone="0948-00-0000")
    no_phone_on_card = await auth.set_password(circ, card="2100000002", new_password="fresh12",
                                               role="patron", actor="2100000002", registered_phone="")
    unknown = await auth.set_password(circ, card="2199999999", new_password="fresh12", role="patron",
                                      actor="2199999999", registered_phone="0948220001")
    assert {d.code for d in (wrong_phone, no_phone_on_card, unknown)} == {"registration_failed"}
    assert not (await auth.patron_login(circ, card=CARD, password="fresh12")).session_token

    ok = await auth.set_password(circ, card=CARD, new_password="fresh12", role="patron", actor=CARD,
                                 registered_phone="(0948) 22-0001")
    assert ok.allowed
    assert (await auth.patron_login(circ, card=CARD, password="fresh12")).session_token


async def test_staff_reset_at_the_counter_unlocks_a_locked_account(circ):
    pid = await iizuka_patron(circ)
    for _ in range(5):
        await auth.patron_login(circ, card=CARD, password="wrong1")
    assert (await auth.patron_login(circ, card=CARD, password="hon1234")).decision.code == "locked_out"
    d = await auth.set_password(circ, card=CARD, new_password="reset99", role="staff", actor="counter1")
    assert d.allowed
    assert await rows(circ, s.login_failures, s.login_failures.c.patron_id == pid) == []
    assert (await auth.patron_login(circ, card=CARD, password="reset99")).session_token


async def test_a_locked_patron_cannot_register_a_new_password_on_the_web_either(circ):
    await iizuka_patron(circ)
    for _ in range(5):
        await auth.patron_login(circ, card=CARD, password="wrong1")
    d = await auth.set_password(circ, card=CARD, new_password="fresh12", role="patron", actor=CARD,
                                registered_phone="0948220001")
    assert d.code == "locked_out"
    assert (await auth.patron_login(circ, card=CARD, password="fresh12")).decision.code == "locked_out"


async def test_login_rehashes_a_password_hashed_with_old_parameters(circ):
    pid = await iizuka_patron(circ)
    (before,) = await rows(circ, s.patrons, s.patrons.c.id == pid)
    assert "t=1," in before.password_hash
    auth.configure_password_hashing(time_cost=2)
    assert (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    (after,) = await rows(circ, s.patrons, s.patrons.c.id == pid)
    assert after.password_hash != before.password_hash and "t=2," in after.password_hash
    assert not PasswordHasher(**{**CHEAP_HASHING, "time_cost": 2}).check_needs_rehash(after.password_hash)
    assert (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token


async def test_patron_session_slides_with_use_ends_after_thirty_idle_minutes(circ):
    await iizuka_patron(circ)
    token = (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    circ.clock.fixed = at(20)
    assert await auth.session_of(circ, token) is not None
    circ.clock.fixed = at(45)                       # 25 minutes after the last use
    assert await auth.session_of(circ, token) is not None
    (srow,) = await rows(circ, s.sessions)
    assert srow.expires_at == at(75)
    circ.clock.fixed = at(75)
    assert await auth.session_of(circ, token) is None
    assert await rows(circ, s.sessions) == []       # an expired session is removed


async def test_patron_session_ends_eight_hours_after_login_even_when_in_use(circ):
    await iizuka_patron(circ)
    token = (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    for m in range(20, 8 * 60, 20):
        circ.clock.fixed = at(m)
        assert await auth.session_of(circ, token) is not None, m
    circ.clock.fixed = at(8 * 60)
    assert await auth.session_of(circ, token) is None


async def test_only_the_sha256_of_a_session_token_is_stored_and_logout_ends_it(circ):
    await iizuka_patron(circ)
    token = (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    (srow,) = await rows(circ, s.sessions)
    assert srow.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert await auth.session_of(circ, srow.token_hash) is None    # the stored value is no token
    assert await auth.logout(circ, token) is True
    assert await auth.session_of(circ, token) is None
    assert await auth.logout(circ, token) is False


async def test_staff_log_in_for_eight_hours_with_their_roles(circ):
    d = await auth.create_staff(circ, username="iizuka.counter", password="counter-pass", library="iizuka",
                                branch="honami", roles="circulation requests", name="穂波 カウンター")
    assert d.allowed and isinstance(d.details["id"], int)
    res = await auth.staff_login(circ, username="iizuka.counter", password="counter-pass")
    assert res.session_token
    who = await auth.session_of(circ, res.session_token)
    assert (who.kind, who.username, who.library, who.branch, who.roles) == (
        "staff", "iizuka.counter", "iizuka", "honami", frozenset({"circulation", "requests"}))
    assert auth.require_role(who, "circulation").allowed
    assert auth.require_role(who, "requests").allowed
    refused = auth.require_role(who, "admin")
    assert (refused.allowed, refused.code) == (False, "role_required")

    circ.clock.fixed = at(8 * 60 - 1)
    assert await auth.session_of(circ, res.session_token) is not None
    circ.clock.fixed = at(8 * 60)                  # not extended by the use a minute earlier
    assert await auth.session_of(circ, res.session_token) is None


async def test_wrong_staff_password_and_unknown_username_get_the_same_answer(circ):
    await auth.create_staff(circ, username="komae.requests", password="requests-pass", library="komae",
                            branch="komae-central", roles=["requests"])
    wrong = await auth.staff_login(circ, username="komae.requests", password="requests-pas")
    unknown = await auth.staff_login(circ, username="komae.request", password="requests-pass")
    assert wrong.session_token is None and unknown.session_token is None
    assert wrong.decision == unknown.decision and wrong.decision.code == "staff_login_failed"


async def test_patrons_and_anonymous_callers_hold_no_staff_role(circ):
    await iizuka_patron(circ)
    token = (await auth.patron_login(circ, card=CARD, password="hon1234")).session_token
    patron = await auth.session_of(circ, token)
    assert auth.require_role(patron, "circulation").code == "role_required"
    assert auth.require_role(None, "circulation").code == "not_logged_in"
    with pytest.raises(ValueError):
        auth.require_role(patron, "superuser")


async def test_create_staff_refuses_bad_roles_foreign_branches_weak_passwords_and_taken_names(circ):
    ok = dict(username="h.central", password="central-pass", library="hiroshima", branch="central",
              roles="circulation")
    cases = [({"roles": "circulation cashier"}, "unknown_role"), ({"roles": ""}, "no_roles"),
             ({"branch": "iizuka"}, "unknown_branch"), ({"library": "fukuoka"}, "unknown_library"),
             ({"password": "short"}, "staff_password_weak"), ({"username": "中央"}, "username_invalid")]
    for change, code in cases:
        d = await auth.create_staff(circ, **{**ok, **change})
        assert (d.allowed, d.code) == (False, code), change
    assert await rows(circ, s.staff) == []
    assert (await auth.create_staff(circ, **ok)).allowed
    assert (await auth.create_staff(circ, **ok)).code == "staff_exists"


async def test_a_staff_password_reset_ends_their_sessions(circ):
    await auth.create_staff(circ, username="h.central", password="central-pass", library="hiroshima",
                            branch="central", roles="circulation admin")
    token = (await auth.staff_login(circ, username="h.central", password="central-pass")).session_token
    assert (await auth.set_staff_password(circ, username="h.central", new_password="another-pass")).allowed
    assert await auth.session_of(circ, token) is None
    assert (await auth.staff_login(circ, username="h.central", password="another-pass")).session_token
    assert (await auth.set_staff_password(circ, username="nobody", new_password="another-pass")).code == "unknown_staff"


async def test_five_wrong_staff_passwords_lock_the_staff_account_for_thirty_minutes(circ):
    await auth.create_staff(circ, username="h.central", password="central-pass", library="hiroshima",
                            branch="central", roles="circulation")
    (member,) = await rows(circ, s.staff)
    for i in range(4):
        circ.clock.fixed = at(i)
        res = await auth.staff_login(circ, username="h.central", password="central-pas")
        assert res.decision.code == "staff_login_failed"
    circ.clock.fixed = at(4)
    fifth = await auth.staff_login(circ, username="h.central", password="central-pas")
    until = at(4) + timedelta(minutes=30)
    assert (fifth.decision.code, fifth.decision.details["until"]) == ("locked_out", until)
    circ.clock.fixed = until - timedelta(minutes=1)
    right_too_early = await auth.staff_login(circ, username="h.central", password="central-pass")
    assert (right_too_early.session_token, right_too_early.decision.code) == (None, "locked_out")
    fails = await rows(circ, s.login_failures, s.login_failures.c.staff_id == member.id)
    assert len(fails) == 5 and all(f.patron_id is None for f in fails)
    (locked,) = await rows(circ, s.events, s.events.c.event == "LOCKED_OUT")
    assert (locked.staff_id, locked.patron_id, locked.actor_role) == (member.id, None, "system")
    assert f"locked until {until:%Y-%m-%dT%H:%M}" in locked.reason

    circ.clock.fixed = until
    res = await auth.staff_login(circ, username="h.central", password="central-pass")
    assert res.session_token and res.decision.code == "logged_in"
    assert await rows(circ, s.login_failures, s.login_failures.c.staff_id == member.id) == []


async def test_staff_lockout_counts_per_account_and_a_password_reset_unlocks(circ):
    for name in ("h.central", "h.naka"):
        await auth.create_staff(circ, username=name, password="central-pass", library="hiroshima",
                                branch="central", roles="circulation")
    for _ in range(5):
        await auth.staff_login(circ, username="h.central", password="nope-nope")
    assert (await auth.staff_login(circ, username="h.central", password="central-pass")).decision.code == "locked_out"
    assert (await auth.staff_login(circ, username="h.naka", password="central-pass")).session_token
    d = await auth.set_staff_password(circ, username="h.central", new_password="fresh-pass", actor="admin1")
    assert d.allowed
    assert (await auth.staff_login(circ, username="h.central", password="fresh-pass")).session_token
    (member,) = await rows(circ, s.staff, s.staff.c.username == "h.central")
    (reset,) = await rows(circ, s.events, s.events.c.event == "PASSWORD_RESET")
    assert (reset.staff_id, reset.actor_role, reset.actor) == (member.id, "staff", "admin1")
    assert "fresh-pass" not in reset.reason and "failed logins cleared" in reset.reason


async def test_every_patron_password_change_is_audited_without_the_password(circ):
    pid = await iizuka_patron(circ)                          # set by staff at the counter
    circ.clock.fixed = at(1)
    assert (await auth.set_password(circ, card=CARD, new_password="next1234", old_password="hon1234",
                                    role="patron", actor=CARD)).allowed
    circ.clock.fixed = at(2)
    assert (await auth.set_password(circ, card=CARD, new_password="again99", role="patron", actor=CARD,
                                    registered_phone="0948-22-0001")).allowed
    refused = await auth.set_password(circ, card=CARD, new_password="wrong88", old_password="nothat1",
                                      role="patron", actor=CARD)
    assert not refused.allowed
    audit = await rows(circ, s.events, s.events.c.patron_id == pid, order_by=s.events.c.id)
    assert [(e.event, e.actor_role, e.actor, e.at) for e in audit] == [
        ("PASSWORD_RESET", "staff", "counter1", NOW),
        ("PASSWORD_SET", "patron", CARD, at(1)),
        ("PASSWORD_SET", "patron", CARD, at(2)),
    ]
    assert [e.reason for e in audit] == ["reset by staff; failed logins cleared", "changed by the patron",
                                         "registered by the patron (phone check)"]
    assert not any(pw in e.reason for e in audit for pw in ("hon1234", "next1234", "again99", "$argon2"))


async def test_a_patron_lockout_is_an_audit_event_on_the_account(circ):
    pid = await iizuka_patron(circ)
    for i in range(5):
        circ.clock.fixed = at(i)
        await auth.patron_login(circ, card=CARD, password="wrong1")
    (locked,) = await rows(circ, s.events, s.events.c.event == "LOCKED_OUT")
    assert (locked.patron_id, locked.staff_id, locked.at) == (pid, None, at(4))
    assert locked.reason.startswith(f"5 wrong passwords for card {CARD}")
