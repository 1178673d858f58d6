"""Admitting one incoming NCIP message: read it and tell which configured client sent
it.  Pure: bytes and an ``Authorization`` header in, ``(message, client)`` or the
response to answer with out.

The credential is the client's token, given as ``Authorization: Bearer <token>`` or,
for peers that use the header's own field, as ``InitiationHeader/FromAgencyAuthentication``.
With an InitiationHeader the client is the one its ``FromAgencyId`` names (unknown:
Unknown Agency) and the token must be that client's; the ``ToAgencyId`` must be ours
(Unknown Agency).  Without one (the header is optional in NCIP) the client is the one
whose token was given.  A wrong or missing token: Agency Authentication Failed.
Responses are answers and are never admitted as messages (Protocol Error).
"""
from __future__ import annotations

from . import model as m
from .build import problem, problem_response, refusal, response_header
from .codec import decode
from .config import NcipClient, NcipConfig
from .model import General, Messaging, ProtocolError


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def admit(body: bytes, authorization: str | None, config: NcipConfig
          ) -> tuple[m.Initiation, NcipClient] | m.Response:
    try:
        message = decode(body)
    except ProtocolError as e:
        return refusal(e)
    if not isinstance(message, m.INITIATIONS):
        return problem_response(None, (problem(Messaging.PROTOCOL_ERROR, "a response is not a request",
                                               element=m.service_of(message) or "Problem"),))
    service = type(message).__name__
    h = message.initiation_header
    us = m.SchemeValue(config.agency)
    answer = response_header(h, us)

    def refuse(problem_type, detail, element=None, value=None) -> m.Response:
        return problem_response(service, (problem(problem_type, detail, element=element, value=value),), answer)

    token = bearer(authorization)
    if token is None and h is not None:
        token = h.from_agency_authentication or None
    if h is None:
        client = config.client_with(token)
        if client is None:
            return refuse(General.AGENCY_AUTHENTICATION_FAILED, "no valid credential", "Authorization")
        return message, client
    to = h.to_agency_id.agency_id.text
    if to != config.agency:
        return refuse(General.UNKNOWN_AGENCY, f"this is agency {config.agency}", "ToAgencyId", to)
    sender = h.from_agency_id.agency_id.text
    client = config.client(sender)
    if client is None:
        return refuse(General.UNKNOWN_AGENCY, "not a client of this responder", "FromAgencyId", sender)
    if not client.accepts(token):
        return refuse(General.AGENCY_AUTHENTICATION_FAILED, f"no valid credential for agency {sender}",
                      "Authorization")
    return message, client
