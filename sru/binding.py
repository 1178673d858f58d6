"""The SRU HTTP binding's parameters, sans-I/O: a GET query string or a POST
body (application/x-www-form-urlencoded) as bytes in, name -> values out.

SRU parameters are UTF-8 (SRU 1.2 "Encoding"; OASIS SRU 2.0 Part 3,
"HTTP GET"/"HTTP POST").  Clients percent-encode them, or send UTF-8 bytes as
they are (curl with a Japanese term typed into the URL; YAZ and Zebra accept
both): both are read.  A value whose bytes -- raw or percent-escaped -- are not
UTF-8 (``%FF``, an encoded surrogate such as ``%ED%A0%80``) is not guessed at:
the request gets diagnostic 6 (unsupported parameter value), details the
parameter's name, in the version and operation the request asked for where those
two could be read.  ``+`` is a space, as in every form encoding.
"""
from __future__ import annotations

from urllib.parse import unquote_to_bytes

from .diagnostics import UNSUPPORTED_PARAMETER_VALUE, SRUDiagnosticError

SUPPORTED_VERSIONS = ("1.1", "1.2", "2.0")
OPERATIONS = ("searchRetrieve", "scan", "explain")


def _decode(raw: bytes) -> str | None:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lenient(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


def decode_form(raw: bytes) -> dict[str, list[str]]:
    """``name=value&...`` -> {name: [values, in order]}.  A pair without ``=`` has
    the empty value.  Raises SRUDiagnosticError(6) for bytes that are not UTF-8."""
    params: dict[str, list[str]] = {}
    bad: str | None = None
    for pair in raw.split(b"&"):
        if not pair:
            continue
        rname, _, rvalue = pair.partition(b"=")
        name, value = _decode(rname), _decode(rvalue)
        if name is None or value is None:
            if bad is None:
                bad = name if name is not None else _lenient(rname)
            name, value = _lenient(rname), _lenient(rvalue)
        params.setdefault(name, []).append(value)
    if bad is not None:
        version = next((v for v in params.get("version", ()) if v in SUPPORTED_VERSIONS), None)
        operation = next((o for o in params.get("operation", ()) if o in OPERATIONS), None)
        if operation is None and version in (None, "2.0"):
            operation = "searchRetrieve" if "query" in params else "scan" if "scanClause" in params else None
        raise SRUDiagnosticError(UNSUPPORTED_PARAMETER_VALUE, bad,
                                 f"parameter {bad} is not valid UTF-8 (raw bytes and %XX escapes must encode "
                                 "UTF-8 text)", version, operation)
    return params


def merge(*parts: dict[str, list[str]]) -> dict[str, list[str]]:
    """Query-string and body parameters together (values of one name in order)."""
    out: dict[str, list[str]] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).extend(values)
    return out
