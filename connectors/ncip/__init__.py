"""NCIP 2.02 (NISO Z39.83-1-2012), the responder side, sans I/O: an external ILL broker
drives our circulation with LookupUser, AcceptItem, CheckOutItem, CheckInItem,
RequestItem and CancelRequestItem.

| module | holds |
|---|---|
| `model.py` | the six services, their responses and Problems as frozen dataclasses (only the elements they need), the schema's choices as rules, the published scheme values (problem types, requested action, request type and scope, user element types) |
| `codec.py` | `encode(message) -> bytes`, `decode(bytes) -> message` (by namespace; what the schema allows and what peers send; every refusal a `ProtocolError` carrying its Problem) |
| `build.py` | response headers, Problems, the response of a refused message |
| `admit.py` | reading one incoming message and telling which configured client sent it (bearer token) |
| `config.py` | the `[ncip]` section: our agency and the clients, their tokens and library systems |

The services on the circulation database are :mod:`circulation.ncip`; the HTTP shell is
``gateway/ncip_endpoint.py`` (``POST /ncip``).
"""
from .admit import admit
from .build import problem, problem_response, refusal, response_header
from .codec import decode, encode
from .config import ConfigError, NcipClient, NcipConfig, load
from .model import NS, VERSION, ProtocolError, SchemeValue

__all__ = ["NS", "VERSION", "ConfigError", "NcipClient", "NcipConfig", "ProtocolError", "SchemeValue", "admit",
           "decode", "encode", "load", "problem", "problem_response", "refusal", "response_header"]
