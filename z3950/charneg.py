"""Character-set and language negotiation (Z39.50-2003 Appendix 14, definition
charsetNeg-3, OID 1.2.840.10003.15.3), carried in the Init otherInfo:

    OtherInformation ::= [201] IMPLICIT SEQUENCE OF SEQUENCE {
        category [1] IMPLICIT InfoCategory OPTIONAL,
        information CHOICE { characterInfo [2] ..., binaryInfo [3] ...,
                             externallyDefinedInfo [4] IMPLICIT EXTERNAL, oid [5] ... } }
    CharSetandLanguageNegotiation ::= CHOICE { proposal [1] IMPLICIT OriginProposal,
                                               response [2] IMPLICIT TargetResponse }
    OriginProposal ::= SEQUENCE { proposedCharSets [1] IMPLICIT SEQUENCE OF CHOICE {
            iso2022 [1] Iso2022, iso10646 [2] IMPLICIT Iso10646, private [3] PrivateCharacterSet } OPTIONAL,
        proposedlanguages [2] IMPLICIT SEQUENCE OF LanguageCode OPTIONAL,
        recordsInSelectedCharSets [3] IMPLICIT BOOLEAN OPTIONAL }
    TargetResponse ::= SEQUENCE { selectedCharSets [1] CHOICE { iso2022 [1] ..., iso10646 [2] IMPLICIT
            Iso10646, private [3] ..., none [4] IMPLICIT NULL } OPTIONAL,
        selectedLanguage [2] IMPLICIT LanguageCode OPTIONAL, recordsInSelectedCharSets [3] IMPLICIT BOOLEAN OPTIONAL }
    Iso10646 ::= SEQUENCE { collections [1] IMPLICIT OBJECT IDENTIFIER OPTIONAL,
                            encodingLevel [2] IMPLICIT OBJECT IDENTIFIER }
    PrivateCharacterSet ::= CHOICE { viaOid [1] IMPLICIT SEQUENCE OF OBJECT IDENTIFIER,
        externallySpecified [2] EXTERNAL, previouslyAgreedUpon [3] IMPLICIT NULL }

Charsets are reported by name: the ISO 10646 encoding levels UTF-8 and UTF-16
by their OIDs, and the names YAZ sends as a private externallySpecified octet
string (OID 1.2.840.10003.15.1000.81.1).  The gateway only ever speaks UTF-8:
it selects UTF-8 when the client offers it and otherwise answers without a
selection (the client keeps its default, and the gateway still sends UTF-8).
"""
from __future__ import annotations

from dataclasses import dataclass

from .ber import (
    CONTEXT,
    EXTERNAL,
    GENERAL_STRING,
    OBJECT_IDENTIFIER,
    UNIVERSAL,
    BERError,
    Element,
    decode_all,
    enc_bool,
    enc_explicit,
    enc_null,
    enc_oid,
    enc_seq,
    enc_str,
)

CHARNEG_OID = "1.2.840.10003.15.3"
YAZ_CHARSET_NAME_OID = "1.2.840.10003.15.1000.81.1"
ENCODING_LEVELS = {"1.0.10646.1.0.8": "UTF-8", "1.0.10646.1.0.5": "UTF-16", "1.0.10646.1.0.4": "UCS-4"}
_LEVEL_OIDS = {name: oid for oid, name in ENCODING_LEVELS.items()}
_OTHER_INFO = 201


@dataclass(frozen=True)
class Proposal:
    charsets: tuple[str, ...] = ()          # names ("UTF-8") or "oid:<dotted>" for unknown ones
    languages: tuple[str, ...] = ()
    records_in_selected_charsets: bool | None = None


@dataclass(frozen=True)
class Selection:
    charset: str | None = None              # None: the target selected nothing
    language: str | None = None
    records_in_selected_charsets: bool | None = None


def _charneg_choice(other_info: Element | None) -> Element | None:
    """The CharSetandLanguageNegotiation choice inside an otherInfo, if any."""
    if other_info is None:
        return None
    for unit in other_info.children:
        for item in unit.children:
            if item.is_(CONTEXT, 4) and item.constructed:             # externallyDefinedInfo
                parts = item.children
                if parts and parts[0].is_(UNIVERSAL, OBJECT_IDENTIFIER) and parts[0].as_oid() == CHARNEG_OID:
                    enc = parts[-1]
                    if not enc.is_(CONTEXT, 0) or len(enc.children) != 1:
                        raise BERError("charset negotiation not encoded as single-ASN1-type", enc.offset)
                    return enc.children[0]
    return None


def _charset_name(choice: Element) -> str:
    if choice.is_(CONTEXT, 2):                                        # iso10646
        for part in choice.children:
            if part.is_(CONTEXT, 2):
                oid = part.as_oid()
                return ENCODING_LEVELS.get(oid, f"oid:{oid}")
        raise BERError("Iso10646 without encodingLevel", choice.offset)
    if choice.is_(CONTEXT, 3):                                        # private
        inner = choice.children[0] if choice.children else None
        if inner is not None and inner.is_(CONTEXT, 2) and inner.children:   # externallySpecified EXTERNAL
            # explicit [2] around an EXTERNAL, or (as YAZ sends it) [2] IMPLICIT EXTERNAL
            ext = inner.children[0] if inner.children[0].is_(UNIVERSAL, EXTERNAL) else inner
            if len(ext.children) >= 2 and ext.children[0].is_(UNIVERSAL, OBJECT_IDENTIFIER):
                enc = ext.children[-1]
                raw = enc.children[0].octets() if enc.constructed and enc.children else enc.octets()
                return raw.decode("ascii", "replace")
        return "private"
    if choice.is_(CONTEXT, 1):
        return "iso2022"
    return "unknown"


def parse_proposal(other_info: Element | None) -> Proposal | None:
    """The origin's proposal in an InitializeRequest's otherInfo (None if it made none)."""
    choice = _charneg_choice(other_info)
    if choice is None or not choice.is_(CONTEXT, 1):
        return None
    charsets: list[str] = []
    languages: list[str] = []
    records = None
    for part in choice.children:
        if part.is_(CONTEXT, 1):
            charsets.extend(_charset_name(c) for c in part.children)
        elif part.is_(CONTEXT, 2):
            languages.extend(c.as_text("utf-8") for c in part.children)
        elif part.is_(CONTEXT, 3):
            records = part.as_bool()
    return Proposal(tuple(charsets), tuple(languages), records)


def parse_selection(other_info: Element | None) -> Selection | None:
    """The target's answer in an InitializeResponse's otherInfo (None if it gave none)."""
    choice = _charneg_choice(other_info)
    if choice is None or not choice.is_(CONTEXT, 2):
        return None
    charset = language = records = None
    for part in choice.children:
        if part.is_(CONTEXT, 1) and part.children:
            inner = part.children[0]
            charset = None if inner.is_(CONTEXT, 4) else _charset_name(inner)
        elif part.is_(CONTEXT, 2):
            language = part.as_text("utf-8")
        elif part.is_(CONTEXT, 3):
            records = part.as_bool()
    return Selection(charset, language, records)


def _other_info(negotiation: bytes) -> Element:
    ext = enc_seq(4, [enc_oid(OBJECT_IDENTIFIER, CHARNEG_OID, UNIVERSAL), enc_explicit(0, negotiation)])
    data = enc_seq(_OTHER_INFO, [enc_seq(16, [ext], UNIVERSAL)])
    return decode_all(data, max_length=len(data))


def _iso10646(name: str) -> bytes:
    return enc_seq(2, [enc_oid(2, _LEVEL_OIDS[name])])


def proposal_other_info(charsets: tuple[str, ...] = ("UTF-8",), languages: tuple[str, ...] = (),
                        records_in_selected_charsets: bool | None = True) -> Element:
    """otherInfo for an InitializeRequest proposing ``charsets`` (ISO 10646
    levels by OID, other names as YAZ-style private names)."""
    sets = []
    for name in charsets:
        if name.upper() in _LEVEL_OIDS:
            sets.append(_iso10646(name.upper()))
        else:
            ext = enc_seq(2, [enc_oid(OBJECT_IDENTIFIER, YAZ_CHARSET_NAME_OID, UNIVERSAL),
                              enc_str(1, name.encode("ascii"))])          # [2] IMPLICIT EXTERNAL, as YAZ
            sets.append(enc_explicit(3, ext))
    parts = [enc_seq(1, sets)]
    if languages:
        parts.append(enc_seq(2, [enc_str(GENERAL_STRING, lang, UNIVERSAL) for lang in languages]))
    if records_in_selected_charsets is not None:
        parts.append(enc_bool(3, records_in_selected_charsets))
    return _other_info(enc_seq(1, parts))


def selection_other_info(charset: str | None, records_in_selected_charsets: bool | None = None) -> Element:
    """otherInfo for an InitializeResponse selecting ``charset`` (an ISO 10646
    level name) or nothing (``none``)."""
    selected = _iso10646(charset) if charset is not None else enc_null(4)
    parts = [enc_explicit(1, selected)]
    if records_in_selected_charsets is not None:
        parts.append(enc_bool(3, records_in_selected_charsets))
    return _other_info(enc_seq(2, parts))


def negotiate(proposal: Proposal | None) -> Selection | None:
    """The gateway's answer: UTF-8 when offered, else an explicit 'none'."""
    if proposal is None:
        return None
    if "UTF-8" in (c.upper().replace("UTF8", "UTF-8") for c in proposal.charsets):
        return Selection("UTF-8", None, proposal.records_in_selected_charsets)
    return Selection(None, None, None)
