"""SIP2 (3M Standard Interchange Protocol 2.00), the self-check kiosks' protocol: the
ACS (circulation system) side, sans I/O.

==================  ==============================================================
``messages.py``     the message set as data (``SPECS``), the model (:class:`Message`,
                    :func:`make`), the refusal of any request, SIP2 dates
``codec.py``        bytes ⇄ messages: framing at CR, the AY/AZ trailer and its
                    checksum, :class:`Malformed` for what cannot be read
``session.py``      one connection as a state table (awaiting login → logged in →
                    patron session), what is answered how, the patron session
``config.py``       the ``[sip2]`` configuration: encodings and languages per kiosk
==================  ==============================================================

The engine adapter is :mod:`circulation.sip2`, the TCP shell
``gateway/sip2_server.py``; docs/sip2.md says which messages and fields are used and
why. Nothing here imports the gateway, the circulation engine or a socket.
"""
from .codec import Decoded, Framer, Malformed, checksum, decode, encode
from .config import KioskOptions, Sip2Config, load
from .messages import SPECS, Message, date_of, make, refusal
from .session import (
    AWAITING_LOGIN,
    LOGGED_IN,
    PATRON_SESSION,
    Close,
    ConnectionClosed,
    NeedData,
    Reply,
    Request,
    Session,
)

__all__ = [
    "AWAITING_LOGIN", "Close", "ConnectionClosed", "Decoded", "Framer", "KioskOptions", "LOGGED_IN", "Malformed",
    "Message", "NeedData", "PATRON_SESSION", "Reply", "Request", "SPECS", "Session", "Sip2Config", "checksum",
    "date_of", "decode", "encode", "load", "make", "refusal",
]
