"""Bytes to SIP2 messages and back, with the error-detection trailer: the sequence
number (AY, one digit) and the checksum (AZ, four hex digits). No I/O.

Framing: a message ends with a carriage return (0x0D). :class:`Framer` cuts a byte
stream into messages at the byte level, which is safe for UTF-8, Shift_JIS (cp932) and
EUC-JP alike: 0x0D never occurs inside a multi-byte character of any of them. The
fields are split only *after* the message is decoded to text, because ``|`` (0x7C)
*does* occur as the second byte of Shift_JIS characters (ポ is 0x83 0x7C): a reader
that splits bytes on ``|`` breaks Japanese in cp932.

Checksum: the standard's "binary sum of the characters", from the first byte up to and
including ``AZ``; the low 16 bits negated, as four upper-case hex digits. It is
computed over the *bytes sent*. Reading, two deviations of real clients are accepted
(see docs/sip2.md): a sum over the decoded characters' code points instead of bytes
(the PyPI ``sip2`` client sums ``ord()`` of a Python string, which differs from the
byte sum as soon as a field is not ASCII), and fewer than four hex digits (the same
client drops leading zeros, so one message in sixteen has three).

A message that cannot be read raises :class:`Malformed`, never anything else (the
property tests feed random bytes): its ``kind`` says whether the standard's answer is
"send it again" (96: a checksum that does not verify, a message that is not one) or a
refusal of a known request (a message cut short, a missing field, bytes that are not
the connection's encoding).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .messages import FIELD_NAMES, MAX_FIELD_BYTES, SPECS, Message

CR, LF = 0x0D, 0x0A

# kinds of Malformed
CHECKSUM = "checksum"            # answered 96
UNREADABLE = "unreadable"        # not a message we know: answered 96
OVERSIZED = "oversized"          # no CR within the length limit: answered 96
CUT_SHORT = "cut_short"          # a known message without all its fixed fields: refused
MISSING_FIELD = "missing_field"  # a field the server needs is absent: refused
BAD_ENCODING = "bad_encoding"    # bytes that are not the connection's encoding: refused
RESEND_KINDS = frozenset({CHECKSUM, UNREADABLE, OVERSIZED})

_TRAILER = re.compile(rb"(?:AY([0-9])\|?)?AZ([0-9A-Fa-f]{1,4})\Z")
_SEQ_ONLY = re.compile(rb"AY([0-9])\|?\Z")


class Malformed(Exception):
    """A message that cannot be read. ``code``: the request code when the message got
    that far; ``message``: what could be read of it (for echoing identifiers in the
    refusal); ``detail``: why, in English, for the screen message and the log."""

    def __init__(self, kind: str, detail: str, *, code: str | None = None, message: Message | None = None,
                 sequence: int | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.code, self.message, self.sequence = kind, detail, code, message, sequence


@dataclass(frozen=True)
class Decoded:
    message: Message
    sequence: int | None          # AY, when the SC sent one
    checksummed: bool             # the SC sent AZ (and it verified)


def checksum(data: bytes) -> str:
    """The AZ value for ``data`` (every byte from the first up to and including "AZ")."""
    return f"{(-sum(data)) & 0xFFFF:04X}"


def _verifies(prefix: bytes, value: int, encoding: str) -> bool:
    if (sum(prefix) + value) & 0xFFFF == 0:
        return True
    try:            # the deviation of clients that sum characters, not bytes
        return (sum(map(ord, prefix.decode(encoding))) + value) & 0xFFFF == 0
    except (UnicodeDecodeError, LookupError):
        return False


def split_trailer(frame: bytes, encoding: str = "utf-8") -> tuple[bytes, int | None, bool]:
    """(the message without its trailer, the sequence number or None, whether it had a
    checksum). Raises Malformed(CHECKSUM) when the checksum does not verify."""
    m = _TRAILER.search(frame)
    if m is not None:
        az = m.start(2) - 2                                  # where "AZ" starts
        if not _verifies(frame[:az + 2], int(m.group(2), 16), encoding):
            seq = int(m.group(1)) if m.group(1) is not None else None
            raise Malformed(CHECKSUM, f"the checksum AZ{m.group(2).decode()} does not verify",
                            code=_code_of(frame), sequence=seq)
        return frame[:m.start()], (int(m.group(1)) if m.group(1) is not None else None), True
    m = _SEQ_ONLY.search(frame)
    if m is not None:
        return frame[:m.start()], int(m.group(1)), False
    return frame, None, False


def has_sequence(frame: bytes) -> bool:
    """Whether a message (without its CR) ends with a sequence number (AY), checksum or not."""
    m = _TRAILER.search(frame)
    return (m.group(1) is not None) if m is not None else _SEQ_ONLY.search(frame) is not None


def _code_of(frame: bytes) -> str | None:
    code = frame[:2]
    return code.decode("ascii") if len(code) == 2 and code.isdigit() else None


def decode(frame: bytes, encoding: str = "utf-8") -> Decoded:
    """One message (without its CR) read by the message table. Raises Malformed."""
    body, sequence, checksummed = split_trailer(frame, encoding)
    code = _code_of(body)
    if code is None or code not in SPECS:
        shown = body[:2].decode("ascii", "replace") if body else "nothing"
        raise Malformed(UNREADABLE, f"not a SIP2 message (it starts with {shown!r})", sequence=sequence)
    spec = SPECS[code]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as e:
        partial = _partial(code, body.decode(encoding, "replace"))
        raise Malformed(BAD_ENCODING, f"byte 0x{body[e.start]:02X} at offset {e.start} is not {encoding}",
                        code=code, message=partial, sequence=sequence) from None
    need = 2 + spec.fixed_length
    if len(text) < need:
        raise Malformed(CUT_SHORT, f"{spec.name} ({code}) needs {spec.fixed_length} characters of fixed "
                        f"fields, it has {max(0, len(text) - 2)}", code=code, message=Message(code),
                        sequence=sequence)
    fixed, pos = {}, 2
    for name, width in spec.fixed:
        fixed[name] = text[pos:pos + width]
        pos += width
    fields: list[tuple[str, str]] = []
    for part in text[pos:].split("|"):
        if not part:
            continue                      # "||", or the end after the last "|"
        if len(part) < 2:
            raise Malformed(CUT_SHORT, f"a field identifier is cut short ({part!r})", code=code,
                            message=Message(code, fixed, tuple(fields)), sequence=sequence)
        fields.append((part[:2], part[2:]))
    message = Message(code, fixed, tuple(fields))
    missing = [f for f in sorted(spec.required) if not message.has(f)]
    if missing:
        names = ", ".join(f"{f} ({FIELD_NAMES.get(f, f)})" for f in missing)
        raise Malformed(MISSING_FIELD, f"{spec.name} ({code}) needs {names}", code=code, message=message,
                        sequence=sequence)
    return Decoded(message, sequence, checksummed)


def _partial(code: str, text: str) -> Message:
    """What can be read of a message whose bytes are not all of the encoding (for the
    identifiers a refusal echoes)."""
    spec = SPECS[code]
    pos = 2 + spec.fixed_length
    if len(text) < pos:
        return Message(code)
    fields = tuple((p[:2], p[2:]) for p in text[pos:].split("|") if len(p) >= 2 and "\ufffd" not in p)
    return Message(code, {n: "" for n, _ in spec.fixed}, fields)


# --------------------------------------------------------------------------- writing

_BAR = "\uff5c"       # FULLWIDTH VERTICAL LINE: a "|" in a value would end the field


def clean(value: str) -> str:
    """A value as it may be sent: "|" becomes "｜" (U+FF5C), CR and LF a space."""
    return value.replace("|", _BAR).replace("\r", " ").replace("\n", " ")


def _cut(data: bytes, encoding: str, limit: int) -> list[bytes]:
    """``data`` (a value in ``encoding``) in pieces of at most ``limit`` bytes, cut
    between characters."""
    if len(data) <= limit:
        return [data]
    text = data.decode(encoding)
    pieces, cur = [], b""
    for ch in text:
        b = ch.encode(encoding, "replace")
        if len(cur) + len(b) > limit:
            pieces.append(cur)
            cur = b""
        cur += b
    pieces.append(cur)
    return pieces


def encode(message: Message, *, encoding: str = "utf-8", sequence: int | None = None,
           with_checksum: bool = False) -> bytes:
    """The message's bytes, CR included. Values are written in ``encoding``; a character
    it cannot hold becomes "?" (a title in a kiosk's legacy code page). A value longer
    than 255 bytes is cut between characters; a screen message or print line (AF, AG)
    that long continues in another AF / AG. With ``sequence`` the trailer is
    ``AY<n>AZ<checksum>``, with ``with_checksum`` alone ``AZ<checksum>``."""
    spec = SPECS[message.code]
    out = bytearray(message.code.encode("ascii"))
    for name, width in spec.fixed:
        value = message.fixed[name]
        data = value.encode(encoding, "replace")
        if len(value) != width or len(data) != width:
            raise ValueError(f"{message.code}: fixed field {name} must be {width} characters: {value!r}")
        out += data
    for fid, value in message.fields:
        data = clean(value).encode(encoding, "replace")
        pieces = _cut(data, encoding, MAX_FIELD_BYTES)
        if fid not in ("AF", "AG"):
            pieces = pieces[:1]
        for piece in pieces:
            out += fid.encode("ascii") + piece + b"|"
    if sequence is not None:
        out += b"AY" + str(sequence % 10).encode("ascii") + b"AZ"
        out += checksum(bytes(out)).encode("ascii")
    elif with_checksum:
        out += b"AZ"
        out += checksum(bytes(out)).encode("ascii")
    return bytes(out) + b"\r"


# --------------------------------------------------------------------------- framing

@dataclass(frozen=True)
class TooLong:
    """A message longer than the limit: its bytes up to the next CR were dropped."""
    length: int


class Framer:
    """Cuts a byte stream into messages (the bytes before each CR). A line feed at the
    start of a message is dropped (SCs that end messages with CR LF); an empty message
    is none. Beyond ``max_length`` bytes without a CR the message is dropped up to the
    next CR and reported once as :class:`TooLong`, so a flood cannot fill memory."""

    def __init__(self, max_length: int = 8192):
        self.max_length = max_length
        self._buf = bytearray()
        self._dropping = 0            # bytes dropped of the current overlong message

    def feed(self, data: bytes) -> list[bytes | TooLong]:
        out: list[bytes | TooLong] = []
        self._buf += data
        while True:
            i = self._buf.find(b"\r")
            if i < 0:
                if self._dropping or len(self._buf) > self.max_length:
                    self._dropping += len(self._buf)
                    self._buf.clear()
                return out
            frame = bytes(self._buf[:i])
            del self._buf[:i + 1]
            if self._dropping or len(frame) > self.max_length:
                out.append(TooLong(self._dropping + len(frame)))
                self._dropping = 0
                continue
            frame = frame.lstrip(b"\n")
            if frame:
                out.append(frame)

    @property
    def pending(self) -> int:
        """Bytes received of a message not yet ended."""
        return len(self._buf) + self._dropping
