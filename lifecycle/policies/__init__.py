"""The rules, as pure functions of (profile, patron, item, request, now), by subject.

| module | subject |
|---|---|
| `placing.py` | reservations and requests (`can_place`, limits, blocks, pickup and contact), home-delivery holds, university partner requests, changing a request; `decide_placing`, `decide_partner_request`, `decide_change` |
| `shelf.py` | the hold shelf's deadline in open days (`shelf_deadline`) |
| `loans.py` | check-out (`can_check_out`, the kiosk, delivery, reading-group sets, the mobile library's terms) and renewal (`can_renew`); `decide_check_out`, `decide_renewal` |
| `cancelling.py` | who may cancel what (`can_cancel`), what a cancellation records, how long a closed request stays visible; `decide_cancel` |
| `returns.py` | return points, drop points, partner counters, return dates; `decide_check_in` |
| `login.py` | password rules and lockout |
| `cards.py` | card validity and extension, group and school grade cards, the mobile library's card, proxies, the home-delivery registration |
| `common.py` | what several subjects share: live requests, areas, expired cards, overdue days |

Each operation of ``circulation/`` loads what its decision reads and asks one function
(the ``decide_*`` ones above, or a ``can_*`` rule directly where that is the whole
decision); the answer is a :class:`~lifecycle.model.Decision` (code and messages from
:mod:`lifecycle.reasons`), never an exception for a rule's refusal. Functions raise only
for programming or configuration errors, and :class:`~lifecycle.policies.loans.UnknownStop`
for a stop of the mobile library that is not in its schedule.

This package is the rules' public face: callers use ``from lifecycle import policies``
and ``policies.can_place(...)``; the subject modules are where each rule is written.
"""
from __future__ import annotations

from .cancelling import CLOSED_VISIBLE, can_cancel, cancelled_visible, decide_cancel, purge_cutoff, recorded_reason
from .cards import (
    DELIVERY_REVOCATION_REASONS,
    add_years,
    can_lend_to_proxy,
    can_register_delivery,
    can_register_group,
    card_expiry,
    card_extension,
    card_usable_at,
    card_valid,
    is_mobile_branch,
    is_mobile_card,
    is_mobile_loan,
    mobile_card_placing,
    pickup_ok,
    proxy_name_key,
)
from .common import LIVE_REQUEST_STATES, PATRON_CHANNELS, card_expired, is_overdue, overdue_days
from .loans import (
    SCHOOL_VISIT,
    CheckOut,
    UnknownStop,
    can_check_out,
    can_check_out_delivery,
    can_check_out_set,
    can_renew,
    can_use_kiosk,
    decide_check_out,
    decide_renewal,
    due_date,
    mobile_loan_terms,
    mobile_terms_at_stop,
    renewal_rule,
)
from .login import login_locked, password_acceptable
from .placing import (
    CHANGEABLE_STATES,
    branch_material_rule,
    can_place,
    can_place_delivery,
    can_request_partner_item,
    contact_method_ok,
    decide_change,
    decide_partner_request,
    decide_placing,
    keeps_pickup,
    kind_of,
    partner_copy_on_its_shelf,
    pickup_for,
    representative,
    request_lapsed,
    settings_ok,
)
from .returns import can_return_at, decide_check_in, mobile_return_refused, return_date
from .shelf import shelf_deadline

__all__ = [
    # placing
    "CHANGEABLE_STATES", "branch_material_rule", "can_place", "can_place_delivery", "can_request_partner_item",
    "contact_method_ok", "decide_change", "decide_partner_request", "decide_placing", "keeps_pickup", "kind_of",
    "partner_copy_on_its_shelf", "pickup_for", "representative", "request_lapsed", "settings_ok",
    # hold shelf
    "shelf_deadline",
    # loans and renewals
    "SCHOOL_VISIT", "CheckOut", "UnknownStop", "can_check_out", "can_check_out_delivery", "can_check_out_set",
    "can_renew", "can_use_kiosk", "decide_check_out", "decide_renewal", "due_date", "mobile_loan_terms",
    "mobile_terms_at_stop", "renewal_rule",
    # cancelling
    "CLOSED_VISIBLE", "can_cancel", "cancelled_visible", "decide_cancel", "purge_cutoff", "recorded_reason",
    # returns
    "can_return_at", "decide_check_in", "mobile_return_refused", "return_date",
    # login
    "login_locked", "password_acceptable",
    # cards
    "DELIVERY_REVOCATION_REASONS", "add_years", "can_lend_to_proxy", "can_register_delivery",
    "can_register_group", "card_expiry", "card_extension", "card_usable_at", "card_valid", "is_mobile_branch",
    "is_mobile_card", "is_mobile_loan", "mobile_card_placing", "pickup_ok", "proxy_name_key",
    # shared
    "LIVE_REQUEST_STATES", "PATRON_CHANNELS", "card_expired", "is_overdue", "overdue_days",
]
