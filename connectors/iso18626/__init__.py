"""ISO 18626:2017 inter-library loan messages (schema v1.2), sans I/O.

| module | holds |
|---|---|
| `model.py` | every message and element as frozen dataclasses; the closed code lists as enums, values of the open ones as constants; `ProtocolError` |
| `codec.py` | `encode(message) -> bytes`, `decode(bytes) -> message` (by namespace; what the schema allows and what real peers send; every refusal a `ProtocolError` with its ISO error type) |
| `build.py` | headers, the supplying/requesting agency messages we send, `confirm()` and `confirm_protocol_error()` |
| `dialects.py` | what each partner's implementation accepts (ExpectToSupply, conditions in notes) |

The leg state tables (which message moves which state, which are refused) are
:mod:`lifecycle.ill`; the HTTP shells are in ``gateway/`` (the ``POST /iso18626``
endpoint) and :mod:`connectors.iso18626_client` (sending, with retries).
"""
from .build import confirm, confirm_protocol_error, header, requesting_message, supplying_message
from .codec import decode, encode
from .dialects import Dialect, dialect
from .model import (
    NS,
    Action,
    AgencyId,
    ErrorType,
    MessageStatus,
    ProtocolError,
    ReasonForMessage,
    Status,
)

__all__ = [
    "NS", "Action", "AgencyId", "Dialect", "ErrorType", "MessageStatus", "ProtocolError",
    "ReasonForMessage", "Status", "confirm", "confirm_protocol_error", "decode", "dialect",
    "encode", "header", "requesting_message", "supplying_message",
]
