"""What the lists, pages and mails call states, channels and contact methods: the
presentation's labels, in one place (pure data, no database).

The lists (:mod:`circulation.lists`, the partner desk's list) show the Japanese
labels; the notices (:mod:`circulation.notices`) pick Japanese or English by the
patron's locale. Refusal messages are not here: they are reasons, in
:mod:`lifecycle.reasons`.
"""
from __future__ import annotations

from lifecycle.table import State

S = State

# A request's state as the patron's list shows it (予約中, 貸出準備完了 ...).
STATUS_JA: dict[State, str] = {
    S.NEW: "受付中", S.VALIDATED: "受付中",
    S.QUEUED: "予約中", S.SUSPENDED: "保留中",
    S.PURCHASE_REVIEW: "リクエスト検討中",
    S.SENT: "他館から取寄中", S.WILL_SUPPLY: "他館から取寄中", S.CONDITION_PENDING: "他館から取寄中",
    S.CANCEL_PENDING: "取消依頼中", S.SHIPPED: "他館から取寄中",
    S.IN_TRANSIT: "搬送中", S.ON_HOLD_SHELF: "貸出準備完了",
    S.ON_LOAN: "貸出中", S.OVERDUE: "貸出中", S.RECALLED: "貸出中", S.RETURNED: "返却済",
    S.AWAITING_LOAN_COMPLETED: "返却済", S.COMPLETED: "完了",
    S.CANCELLED: "取消済", S.SHELF_EXPIRED: "取置期限切れ", S.REJECTED: "お断り",
    S.UNFILLED: "入手不可", S.LOST: "紛失",
}
# Where a request came in or was cancelled (the lists).
CHANNEL_JA = {"web": "Web", "opac": "OPAC", "counter": "窓口", "phone": "電話", "fax": "FAX",
              "form": "申込書", "system": "システム"}
# How the patron is told (the lists, the settings page).
CONTACT_JA = {"email": "E-Mail", "phone": "電話", "fax": "FAX", "postcard": "はがき", "none": "連絡不要"}

# The same for the mails, in (Japanese, English).
CHANNEL_LABELS = {
    "web": ("Web", "web"), "opac": ("OPAC", "library catalogue terminal (OPAC)"),
    "counter": ("窓口", "library counter"), "phone": ("電話", "phone"), "fax": ("FAX", "fax"),
    "form": ("申込書", "form"), "system": ("図書館（自動処理）", "the library (automatic)"),
    "staff": ("図書館", "library staff"),
}
CONTACT_LABELS = {
    "email": ("E-Mail", "e-mail"), "phone": ("電話", "phone"), "fax": ("FAX", "fax"),
    "postcard": ("はがき", "postcard"), "none": ("連絡不要", "no contact"),
}

# The university partnership desk's list (circulation/partners.py): the states of a
# partner request in the order of the flow, and what the counter does next in those
# still in progress.
PARTNER_STATE_ORDER = (S.SENT, S.WILL_SUPPLY, S.CONDITION_PENDING, S.CANCEL_PENDING, S.SHIPPED, S.IN_TRANSIT,
                       S.ON_HOLD_SHELF, S.ON_LOAN, S.OVERDUE, S.RECALLED, S.RETURNED,
                       S.AWAITING_LOAN_COMPLETED, S.COMPLETED, S.CANCELLED, S.SHELF_EXPIRED, S.UNFILLED,
                       S.REJECTED, S.LOST)
PARTNER_NEXT_STEP: dict[State, str] = {
    S.SENT: "大学図書館の発送待ち", S.WILL_SUPPLY: "大学図書館の発送待ち",
    S.CONDITION_PENDING: "条件の回答待ち", S.CANCEL_PENDING: "取消の回答待ち",
    S.SHIPPED: "到着したら受入", S.IN_TRANSIT: "申込館へ搬送中", S.ON_HOLD_SHELF: "取置中（窓口で貸出）",
    S.ON_LOAN: "貸出中", S.OVERDUE: "延滞中", S.RECALLED: "返却請求中",
    S.RETURNED: "大学図書館へ返送", S.AWAITING_LOAN_COMPLETED: "大学図書館の受領待ち",
}

# A copy's availability as the catalogue shows it (circulation/availability_view.py): the
# status keys of ``availability_view.CopyStatus.status``, in (Japanese, English).
AVAILABILITY_LABELS = {
    "available": ("在架", "Available"),
    "on_loan": ("貸出中", "On loan"),
    "on_hold_shelf": ("取置中", "On hold shelf"),
    "in_transit": ("移送中", "In transit"),
    "not_for_loan": ("館内のみ", "Library use only"),
    "lost": ("所在不明", "Missing"),
}
# A title's live reservations, "予約 n 件" ({n}: the count).
RESERVATIONS_LABEL = ("予約 {n} 件", "{n} reservation(s)")
# A holding whose status nobody knows (no circulation database, or a copy it does not have).
UNKNOWN_AVAILABILITY_LABEL = ("貸出状況不明", "Availability unknown")
