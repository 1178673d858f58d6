"""Admitting one incoming ISO 18626 message: read it, tell which partner sent it,
check its credential and that it is addressed to us.  Pure: bytes and a header in,
``(message, partner)`` or the ERROR confirmation to answer with out.

Who sent a message: the requesting agency of a ``request`` or
``requestingAgencyMessage``, the supplying agency of a ``supplyingAgencyMessage``;
the other agency of the header must be ours.  The credential is the partner's
``accept_token``, given as ``Authorization: Bearer <token>`` or, for peers that use
the header's own field, as ``requestingAgencyAuthentication/securityCode``.
Confirmations are answers and are never admitted as messages.
"""
from __future__ import annotations

from datetime import datetime

from . import model as m
from .build import confirm, confirm_protocol_error
from .codec import decode
from .config import IllConfig, Partner
from .model import ErrorType, ProtocolError


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def admit(body: bytes, authorization: str | None, config: IllConfig, *, now: datetime
          ) -> tuple[m.Request | m.SupplyingAgencyMessage | m.RequestingAgencyMessage, Partner] | m.Confirmation:
    try:
        message = decode(body)
    except ProtocolError as e:
        return confirm_protocol_error(e, now=now)
    if not isinstance(message, (m.Request, m.SupplyingAgencyMessage, m.RequestingAgencyMessage)):  # answers
        err = ProtocolError(ErrorType.UNRECOGNISED_DATA_ELEMENT,
                            f"{m.ELEMENT[type(message)]} is an answer, not a message", kind=m.Request)
        return confirm_protocol_error(err, now=now)
    h = message.header
    if isinstance(message, m.SupplyingAgencyMessage):
        sender, recipient = h.supplying_agency_id, h.requesting_agency_id
    else:
        sender, recipient = h.requesting_agency_id, h.supplying_agency_id
    if recipient.key != config.agency.key:
        return confirm(message, now=now, error=(ErrorType.UNRECOGNISED_DATA_VALUE,
                                                f"this is agency {config.agency}, not {recipient}"))
    partner = config.partner(sender)
    if partner is None:
        return confirm(message, now=now, error=(ErrorType.UNRECOGNISED_DATA_VALUE,
                                                f"unknown agency {sender}"))
    token = _bearer(authorization)
    if token is None and h.requesting_agency_authentication is not None:
        token = h.requesting_agency_authentication.security_code
    if not partner.accepts(token):
        return confirm(message, now=now, error=(ErrorType.UNRECOGNISED_DATA_VALUE,
                                                f"authentication failed for agency {sender}"))
    return message, partner
