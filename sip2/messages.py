"""The SIP2 (3M Standard Interchange Protocol 2.00) message set as data, and the
message model: a two-digit command code, the fixed-length fields in their order,
then the variable-length fields by their two-letter identifiers.

``SPECS`` holds every message of the standard: the requests a self-check (SC) sends,
the responses the circulation system (ACS) answers with. For each: its fixed fields
(name, width), the identifiers it may carry, which of them must be present and which
may repeat, and for a request the code of its response. The codec
(:mod:`sip2.codec`) reads and writes by this table; :func:`refusal` builds the
well-formed "no" any request can be answered with.

Readings and choices
--------------------
* **Required fields.** For a request, ``required`` lists the fields *this server
  needs* to act (a check-out without AB, the item, cannot be done), not every field
  the standard calls required: the institution id (AO), the terminal password (AC)
  and the check-in's current location (AP) are read when present and never demanded,
  since kiosks log in with 93 and act at their account's branch. For a response,
  ``required`` is the standard's list: what a strict SC checks (the PyPI codec
  ``pysip2`` checks exactly these).
* **Unknown identifiers** in a request are kept on the message and ignored (vendors add
  their own, e.g. 3M's extensions); the order of fields is not significant when
  reading.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# --------------------------------------------------------------------------- field names

FIELD_NAMES: dict[str, str] = {
    "AA": "patron identifier", "AB": "item identifier", "AC": "terminal password",
    "AD": "patron password", "AE": "personal name", "AF": "screen message", "AG": "print line",
    "AH": "due date", "AJ": "title identifier", "AL": "blocked card message", "AM": "library name",
    "AN": "terminal location", "AO": "institution id", "AP": "current location",
    "AQ": "permanent location", "AS": "hold items", "AT": "overdue items", "AU": "charged items",
    "AV": "fine items", "AY": "sequence number", "AZ": "checksum", "BD": "home address",
    "BE": "e-mail address", "BF": "home phone number", "BG": "owner", "BH": "currency type",
    "BI": "cancel", "BK": "transaction id", "BL": "valid patron", "BM": "renewed items",
    "BN": "unrenewed items", "BO": "fee acknowledged", "BP": "start item", "BQ": "end item",
    "BR": "queue position", "BS": "pickup location", "BT": "fee type", "BU": "recall items",
    "BV": "fee amount", "BW": "expiration date", "BX": "supported messages", "BY": "hold type",
    "BZ": "hold items limit", "CA": "overdue items limit", "CB": "charged items limit",
    "CC": "fee limit", "CD": "unavailable hold items", "CF": "hold queue length",
    "CG": "fee identifier", "CH": "item properties", "CI": "security inhibit", "CJ": "recall date",
    "CK": "media type", "CL": "sort bin", "CM": "hold pickup date", "CN": "login user id",
    "CO": "login password", "CP": "location code", "CQ": "valid patron password",
}

DATE = 18          # YYYYMMDDZZZZHHMMSS
MAX_FIELD_BYTES = 255     # a variable-length field's value, in the bytes of the connection's encoding


@dataclass(frozen=True)
class Spec:
    code: str
    name: str
    fixed: tuple[tuple[str, int], ...]       # (name, width) in wire order
    fields: tuple[str, ...]                  # identifiers it may carry, in the standard's order
    required: frozenset[str] = frozenset()
    repeatable: frozenset[str] = frozenset()
    response: str | None = None              # a request's response code

    @property
    def fixed_length(self) -> int:
        return sum(w for _, w in self.fixed)

    @property
    def is_request(self) -> bool:
        return self.code in REQUESTS


def _spec(code, name, fixed=(), fields=(), required=(), repeatable=(), response=None) -> Spec:
    return Spec(code, name, tuple(fixed), tuple(fields), frozenset(required), frozenset(repeatable), response)


_SCREEN = ("AF", "AG")
_PATRON_STATUS = (("patron_status", 14), ("language", 3), ("transaction_date", DATE))
_LOAN_RESPONSE = (("ok", 1), ("renewal_ok", 1), ("magnetic_media", 1), ("desensitize", 1),
                  ("transaction_date", DATE))
_LOAN_FIELDS = ("AO", "AA", "AB", "AJ", "AH", "BT", "CI", "BH", "BV", "CK", "CH", "BK") + _SCREEN

_ALL = [
    # ------------------------------------------------------------ requests (SC -> ACS)
    _spec("93", "Login", (("uid_algorithm", 1), ("pwd_algorithm", 1)), ("CN", "CO", "CP"),
          ("CN", "CO"), response="94"),
    _spec("99", "SC Status", (("status_code", 1), ("max_print_width", 3), ("protocol_version", 4)),
          response="98"),
    _spec("97", "Request ACS Resend"),
    _spec("23", "Patron Status Request", (("language", 3), ("transaction_date", DATE)),
          ("AO", "AA", "AC", "AD"), ("AA",), response="24"),
    _spec("63", "Patron Information", (("language", 3), ("transaction_date", DATE), ("summary", 10)),
          ("AO", "AA", "AC", "AD", "BP", "BQ"), ("AA",), response="64"),
    _spec("11", "Checkout", (("sc_renewal_policy", 1), ("no_block", 1), ("transaction_date", DATE),
                             ("nb_due_date", DATE)),
          ("AO", "AA", "AB", "AC", "CH", "AD", "BO", "BI"), ("AA", "AB"), response="12"),
    _spec("09", "Checkin", (("no_block", 1), ("transaction_date", DATE), ("return_date", DATE)),
          ("AP", "AO", "AB", "AC", "CH", "BI"), ("AB",), response="10"),
    _spec("29", "Renew", (("third_party_allowed", 1), ("no_block", 1), ("transaction_date", DATE),
                          ("nb_due_date", DATE)),
          ("AO", "AA", "AD", "AB", "AJ", "AC", "CH", "BO"), ("AA", "AB"), response="30"),
    _spec("17", "Item Information", (("transaction_date", DATE),), ("AO", "AB", "AC"), ("AB",),
          response="18"),
    _spec("35", "End Patron Session", (("transaction_date", DATE),), ("AO", "AA", "AC", "AD"),
          response="36"),
    # requests of the standard this server answers with a refusal (sip2.session.NOT_OFFERED)
    _spec("01", "Block Patron", (("card_retained", 1), ("transaction_date", DATE)),
          ("AO", "AL", "AA", "AC"), response="24"),
    _spec("15", "Hold", (("hold_mode", 1), ("transaction_date", DATE)),
          ("BW", "BS", "BY", "AO", "AA", "AD", "AB", "AJ", "AC", "BO"), response="16"),
    _spec("19", "Item Status Update", (("transaction_date", DATE),), ("AO", "AB", "AC", "CH"),
          response="20"),
    _spec("25", "Patron Enable", (("transaction_date", DATE),), ("AO", "AA", "AC", "AD"), response="26"),
    _spec("37", "Fee Paid", (("transaction_date", DATE), ("fee_type", 2), ("payment_type", 2),
                             ("currency_type", 3)),
          ("BV", "AO", "AA", "AC", "AD", "CG", "BK"), response="38"),
    _spec("65", "Renew All", (("transaction_date", DATE),), ("AO", "AA", "AD", "AC", "BO"), response="66"),
    # ------------------------------------------------------------ responses (ACS -> SC)
    _spec("94", "Login Response", (("ok", 1),)),
    _spec("98", "ACS Status", (("online_status", 1), ("checkin_ok", 1), ("checkout_ok", 1),
                               ("acs_renewal_policy", 1), ("status_update_ok", 1), ("offline_ok", 1),
                               ("timeout_period", 3), ("retries_allowed", 3), ("date_time_sync", DATE),
                               ("protocol_version", 4)),
          ("AO", "AM", "BX", "AN") + _SCREEN, ("AO", "BX"), _SCREEN),
    _spec("96", "Request SC Resend"),
    _spec("24", "Patron Status Response", _PATRON_STATUS,
          ("AO", "AA", "AE", "BL", "CQ", "BH", "BV") + _SCREEN, ("AO", "AA", "AE"), _SCREEN),
    _spec("64", "Patron Information Response",
          _PATRON_STATUS + tuple((f"{n}_count", 4) for n in ("hold_items", "overdue_items", "charged_items",
                                                             "fine_items", "recall_items", "unavailable_holds")),
          ("AO", "AA", "AE", "BZ", "CA", "CB", "BL", "CQ", "BH", "BV", "CC", "AS", "AT", "AU", "AV", "BU", "CD",
           "BD", "BE", "BF") + _SCREEN, ("AO", "AA", "AE"),
          ("AS", "AT", "AU", "AV", "BU", "CD") + _SCREEN),
    _spec("12", "Checkout Response", _LOAN_RESPONSE, _LOAN_FIELDS, ("AO", "AA", "AB", "AJ", "AH"), _SCREEN),
    _spec("10", "Checkin Response", (("ok", 1), ("resensitize", 1), ("magnetic_media", 1), ("alert", 1),
                                     ("transaction_date", DATE)),
          ("AO", "AB", "AQ", "AJ", "CL", "AA", "CK", "CH") + _SCREEN, ("AO", "AB", "AQ"), _SCREEN),
    _spec("30", "Renew Response", _LOAN_RESPONSE, _LOAN_FIELDS, ("AO", "AA", "AB", "AJ", "AH"), _SCREEN),
    _spec("18", "Item Information Response", (("circulation_status", 2), ("security_marker", 2),
                                              ("fee_type", 2), ("transaction_date", DATE)),
          ("CF", "AH", "CJ", "CM", "AB", "AJ", "BG", "BH", "BV", "CK", "AQ", "AP", "CH") + _SCREEN,
          ("AB", "AJ"), _SCREEN),
    _spec("36", "End Session Response", (("end_session", 1), ("transaction_date", DATE)),
          ("AO", "AA") + _SCREEN, ("AO", "AA"), _SCREEN),
    _spec("26", "Patron Enable Response", _PATRON_STATUS, ("AO", "AA", "AE", "BL", "CQ") + _SCREEN,
          ("AO", "AA", "AE"), _SCREEN),
    _spec("16", "Hold Response", (("ok", 1), ("available", 1), ("transaction_date", DATE)),
          ("BW", "BR", "BS", "AO", "AA", "AB", "AJ") + _SCREEN, ("AO", "AA"), _SCREEN),
    _spec("20", "Item Status Update Response", (("item_properties_ok", 1), ("transaction_date", DATE)),
          ("AB", "AJ", "CH") + _SCREEN, ("AB",), _SCREEN),
    _spec("38", "Fee Paid Response", (("payment_accepted", 1), ("transaction_date", DATE)),
          ("AO", "AA", "BK") + _SCREEN, ("AO", "AA"), _SCREEN),
    _spec("66", "Renew All Response", (("ok", 1), ("renewed_count", 4), ("unrenewed_count", 4),
                                       ("transaction_date", DATE)),
          ("AO", "BM", "BN") + _SCREEN, ("AO",), ("BM", "BN") + _SCREEN),
]

SPECS: dict[str, Spec] = {s.code: s for s in _ALL}
REQUESTS = frozenset(s.code for s in _ALL if s.response is not None or s.code == "97")
RESPONSES = frozenset(SPECS) - REQUESTS

# Named codes (the ones the server handles; the rest are in SPECS).
LOGIN, SC_STATUS, ACS_RESEND = "93", "99", "97"
PATRON_STATUS, PATRON_INFORMATION = "23", "63"
CHECKOUT, CHECKIN, RENEW, ITEM_INFORMATION, END_PATRON_SESSION = "11", "09", "29", "17", "35"
LOGIN_RESPONSE, ACS_STATUS, SC_RESEND = "94", "98", "96"
PATRON_STATUS_RESPONSE, PATRON_INFORMATION_RESPONSE = "24", "64"
CHECKOUT_RESPONSE, CHECKIN_RESPONSE, RENEW_RESPONSE = "12", "10", "30"
ITEM_INFORMATION_RESPONSE, END_SESSION_RESPONSE = "18", "36"

# The 16 positions of the ACS Status "supported messages" field (BX), in order.
BX_ORDER = ("23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15", "29", "65")

# Languages (the 3-digit fixed field of 23, 63 and their responses) this server speaks.
LANGUAGE_CODES = {"ja": "014", "en": "001"}


def supported_messages(codes) -> str:
    """The BX value for the request codes in ``codes``."""
    return "".join("Y" if c in codes else "N" for c in BX_ORDER)


# --------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class Message:
    """One SIP2 message: ``fixed`` maps the spec's fixed-field names to their values;
    ``fields`` are the variable-length fields as (identifier, value) in wire order
    (repeatable identifiers appear once per value). The error-detection trailer (AY,
    AZ) is the codec's, never a field here."""
    code: str
    fixed: dict[str, str] = field(default_factory=dict)
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def spec(self) -> Spec:
        return SPECS[self.code]

    def get(self, fid: str, default: str | None = None) -> str | None:
        """The first value of field ``fid`` (``default`` when absent)."""
        for k, v in self.fields:
            if k == fid:
                return v
        return default

    def all(self, fid: str) -> list[str]:
        return [v for k, v in self.fields if k == fid]

    def has(self, fid: str) -> bool:
        return any(k == fid for k, _ in self.fields)

    def __getitem__(self, name: str) -> str:
        """A fixed field by name."""
        return self.fixed[name]


def make(code: str, fixed: dict[str, str] | None = None, fields=(), **more_fixed: str) -> Message:
    """A message checked against its spec: every fixed field present with its exact
    width, only the spec's identifiers (None values and unset optional fields are left
    out; a list value repeats a repeatable field). Raises ValueError: building a wrong
    message is a bug of the caller, not input to be answered."""
    spec = SPECS[code]
    values = dict(fixed or {}, **more_fixed)
    names = [n for n, _ in spec.fixed]
    if set(values) != set(names):
        raise ValueError(f"{code} {spec.name}: fixed fields {names}, got {sorted(values)}")
    for name, width in spec.fixed:
        if len(values[name]) != width:
            raise ValueError(f"{code} {spec.name}: {name} must be {width} characters, got {values[name]!r}")
    out: list[tuple[str, str]] = []
    for fid, value in (fields.items() if isinstance(fields, dict) else fields):
        if fid not in spec.fields:
            raise ValueError(f"{code} {spec.name} has no field {fid}")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if fid not in spec.repeatable and len(value) > 1:
                raise ValueError(f"{code} {spec.name}: {fid} does not repeat")
            out.extend((fid, str(v)) for v in value)
        else:
            out.append((fid, str(value)))
    missing = [f for f in sorted(spec.required) if not any(k == f for k, _ in out)]
    if missing:
        raise ValueError(f"{code} {spec.name}: required fields missing: {', '.join(missing)}")
    return Message(code, {n: values[n] for n in names}, tuple(out))


# --------------------------------------------------------------------------- refusals

def refusal(request_code: str, request: Message | None, *, when: str, screen: list[str] | tuple[str, ...],
            language: str = "000", supported: str = "N" * 16) -> Message:
    """The well-formed "no" to a request: its response with every ok/valid flag false,
    the identifiers the SC needs to match it echoed from ``request`` (empty when the
    request could not be read that far), and ``screen`` as screen messages (AF).
    ``when``: the transaction date (18 characters). For a Login (93) the answer is
    ``940``: the Login Response has no field to say why in.
    ``supported``: the BX of a refused SC Status (98)."""
    spec = SPECS[request_code]
    code = spec.response
    if code is None:
        raise ValueError(f"{request_code} has no response of its own")
    req = request if request is not None else Message(request_code)

    def echo(fid: str) -> str:
        return req.get(fid, "") or ""

    af = list(screen)
    if code == LOGIN_RESPONSE:
        return make(code, ok="0")
    if code == ACS_STATUS:
        return make(code, online_status="N", checkin_ok="N", checkout_ok="N", acs_renewal_policy="N",
                    status_update_ok="N", offline_ok="N", timeout_period="999", retries_allowed="999",
                    date_time_sync=when, protocol_version="2.00",
                    fields=[("AO", echo("AO")), ("BX", supported), ("AF", af)])
    lang = req.fixed.get("language") if req.fixed.get("language", "").isdigit() else None
    lang = lang if lang is not None and len(lang) == 3 else language
    if code in (PATRON_STATUS_RESPONSE, "26"):
        return make(code, patron_status="YYYY" + " " * 10, language=lang, transaction_date=when,
                    fields=[("AO", echo("AO")), ("AA", echo("AA")), ("AE", ""), ("BL", "N"), ("CQ", "N"),
                            ("AF", af)])
    if code == PATRON_INFORMATION_RESPONSE:
        counts = {n: "0000" for n, w in spec_of(code).fixed if n.endswith("_count")}
        return make(code, {**counts, "patron_status": "YYYY" + " " * 10, "language": lang,
                           "transaction_date": when},
                    fields=[("AO", echo("AO")), ("AA", echo("AA")), ("AE", ""), ("BL", "N"), ("CQ", "N"),
                            ("AF", af)])
    if code in (CHECKOUT_RESPONSE, RENEW_RESPONSE):
        return make(code, ok="0", renewal_ok="N", magnetic_media="U", desensitize="N", transaction_date=when,
                    fields=[("AO", echo("AO")), ("AA", echo("AA")), ("AB", echo("AB")), ("AJ", echo("AJ")),
                            ("AH", ""), ("AF", af)])
    if code == CHECKIN_RESPONSE:
        return make(code, ok="0", resensitize="N", magnetic_media="U", alert="Y", transaction_date=when,
                    fields=[("AO", echo("AO")), ("AB", echo("AB")), ("AQ", ""), ("AF", af)])
    if code == ITEM_INFORMATION_RESPONSE:
        return make(code, circulation_status="01", security_marker="00", fee_type="01", transaction_date=when,
                    fields=[("AB", echo("AB")), ("AJ", ""), ("AF", af)])
    if code == END_SESSION_RESPONSE:
        return make(code, end_session="N", transaction_date=when,
                    fields=[("AO", echo("AO")), ("AA", echo("AA")), ("AF", af)])
    if code == "16":
        return make(code, ok="0", available="N", transaction_date=when,
                    fields=[("AO", echo("AO")), ("AA", echo("AA")), ("AB", req.get("AB")),
                            ("AJ", req.get("AJ")), ("AF", af)])
    if code == "20":
        return make(code, item_properties_ok="0", transaction_date=when,
                    fields=[("AB", echo("AB")), ("AF", af)])
    if code == "38":
        return make(code, payment_accepted="N", transaction_date=when,
                    fields=[("AO", echo("AO")), ("AA", echo("AA")), ("AF", af)])
    if code == "66":
        return make(code, ok="0", renewed_count="0000", unrenewed_count="0000", transaction_date=when,
                    fields=[("AO", echo("AO")), ("AF", af)])
    raise ValueError(f"no refusal for {request_code}")     # pragma: no cover - every request is above


def spec_of(code: str) -> Spec:
    return SPECS[code]


def sip_date(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
             zone: str = "    ") -> str:
    """A SIP2 date: YYYYMMDDZZZZHHMMSS; ``zone`` four blanks for local time (the
    standard's preferred form), ``"   Z"`` for UTC."""
    return f"{year:04d}{month:02d}{day:02d}{zone:>4}{hour:02d}{minute:02d}{second:02d}"


def date_of(value) -> str:
    """A ``datetime`` or ``date`` as a SIP2 date. A naive datetime is local time (the
    circulation database keeps naive local times: blanks in ZZZZ); an aware one is
    given in UTC ("   Z"); a ``date`` is the end of that day (a due date: the item may
    be returned until the library closes)."""
    from datetime import datetime, timezone

    if isinstance(value, datetime):
        if value.tzinfo is not None:
            u = value.astimezone(timezone.utc)
            return sip_date(u.year, u.month, u.day, u.hour, u.minute, u.second, "   Z")
        return sip_date(value.year, value.month, value.day, value.hour, value.minute, value.second)
    return sip_date(value.year, value.month, value.day, 23, 59, 59)
