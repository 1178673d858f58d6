"""YAZ's prefix query format (PQF): parser and printer for type-1 queries.
Sans-I/O, pure functions.

PQF
===

The grammar of YAZ's pquery module::

    query      ::= ['@attrset' set] struct
    struct     ::= '@attr' [set] type'='value struct | '@term' termtype struct
                 | ('@and' | '@or' | '@not') struct struct
                 | '@prox' exclusion distance ordered relation which unit struct struct
                 | '@set' name | term

* Tokens are separated by white space; ``"..."`` and ``{...}`` quote a token;
  a backslash escapes the next character (also in unquoted tokens).  In terms,
  string attribute values and result set names the escapes ``\\t \\n \\r \\f``,
  ``\\xHH`` and ``\\ooo`` (octal, first digit 0-3) give those characters or
  bytes (escaped bytes must form UTF-8); ``\\c`` gives ``c``.
* ``@attr`` applies to every term of the structure that follows; as in YAZ, an
  inner attribute of a type overrides an outer one, and the attribute list is
  built last-written first (so ``@attr 1=4 @attr 4=1 x`` encodes 4=1 before
  1=4, byte for byte what yaz-client sends).  ``@1=4`` is short for
  ``@attr 1=4``.  An attribute value of digits is numeric, anything else is a
  string (complex) value; ``-123`` is numeric here (YAZ would send a string).
* ``@term general|numeric|string|oid|datetime|null`` sets the term type of the
  following terms, as in YAZ (the setting is not scoped).
* Set names: ``bib-1``, ``exp-1``, ``gils`` ... (case and hyphens ignored) or a
  dotted OID.  ``@attrset`` only at the start.  Query default: Bib-1.
* Deliberate differences from YAZ: an unknown ``@word`` is a syntax error
  (YAZ takes it as a term); an attribute written without a set has no set (YAZ
  gives it the set of the previous attribute); escapes are processed in ``@set``
  names too; ``@attr ... @set name`` keeps the attributes (a resultAttr operand).
* ``to_pqf`` raises ValueError for what PQF cannot express: two attributes of
  one type in one list, complex lists and semantic actions, an empty string
  attribute value, external / integerAndUnit terms, byte terms.

"""
from __future__ import annotations

from dataclasses import dataclass

from ..ber import oid_content
from .model import (
    _INT_MAX,
    _INT_MIN,
    _INT_RE,
    _SET_BY_KEY,
    _SET_NAME,
    APT,
    BIB1,
    MAX_PQF_ATTRIBUTES,
    MAX_RPN_DEPTH,
    AttributeElement,
    ProxSpec,
    ResultSetRef,
    RPNNode,
    RPNOp,
    RPNQuery,
    _check_int,
)

# ---------------------------------------------------------------------------
# PQF

class PQFError(ValueError):
    """A PQF syntax error; ``pos`` is the 0-based character position."""

    def __init__(self, reason: str, pos: int):
        super().__init__(f"{reason} (at position {pos})")
        self.reason = reason
        self.pos = pos


_PQF_OPERATORS = frozenset({"attrset", "attr", "term", "set", "and", "or", "not", "prox"})
_PQF_TERM_TYPES = {"general": "general", "numeric": "numeric", "string": "characterString",
                   "oid": "oid", "datetime": "dateTime", "null": "null"}
_PQF_TERM_NAMES = {v: k for k, v in _PQF_TERM_TYPES.items()}
_PQF_OPERATOR_NAMES = {"and": "and", "or": "or", "and-not": "not", "prox": "prox"}
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


@dataclass(frozen=True)
class _Tok:
    kind: str       # "op" (text: operator name) | "word"
    text: str       # for words: the raw text, quotes removed, escapes not processed
    pos: int        # position of the token (its opening quote)
    quoted: bool = False

    @property
    def body(self) -> int:
        """Position of the first character of ``text``."""
        return self.pos + (1 if self.quoted else 0)


def _pqf_tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return toks
        c = text[i]
        if c in '"{':
            close = '"' if c == '"' else "}"
            j = i + 1
            while j < n and text[j] != close:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise PQFError("unterminated quoted string", i)
            toks.append(_Tok("word", text[i + 1:j], i, True))
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 2 if text[j] == "\\" and j + 1 < n else 1
        raw = text[i:j]
        if raw.startswith("@"):
            if len(raw) > 1 and raw[1] in "0123456789":          # @1=4 is @attr 1=4 (as in YAZ)
                toks.append(_Tok("op", "attr", i))
                toks.append(_Tok("word", raw[1:], i + 1))
            elif raw[1:].lower() in _PQF_OPERATORS:
                toks.append(_Tok("op", raw[1:].lower(), i))
            else:
                raise PQFError(f"unknown operator {raw!r}", i)
        else:
            toks.append(_Tok("word", raw, i))
        i = j


def _pqf_unescape(raw: str, pos: int) -> str:
    """Process the escapes of a term, string attribute value or set name."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    pending = bytearray()
    start = 0           # where the escaped bytes in ``pending`` began

    def flush() -> None:
        if pending:
            try:
                out.append(pending.decode("utf-8"))
            except UnicodeDecodeError:
                raise PQFError("escaped bytes are not UTF-8", pos + start) from None
            pending.clear()

    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != "\\" or i + 1 >= n:
            flush()
            out.append(c)
            i += 1
            continue
        d = raw[i + 1]
        if d in "x0123" and not pending:
            start = i
        if d == "x":
            digits = raw[i + 2:i + 4]
            if len(digits) != 2 or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
                raise PQFError("\\x needs two hexadecimal digits", pos + i)
            pending.append(int(digits, 16))
            i += 4
        elif d in "0123":
            digits = raw[i + 1:i + 4]
            if len(digits) != 3 or any(ch not in "01234567" for ch in digits):
                raise PQFError("an octal escape needs three octal digits", pos + i)
            pending.append(int(digits, 8))
            i += 4
        else:
            flush()
            out.append(_SIMPLE_ESCAPES.get(d, d))
            i += 2
    flush()
    return "".join(out)


def _pqf_int(tok: _Tok, what: str) -> int:
    if not _INT_RE.fullmatch(tok.text):
        raise PQFError(f"{what} must be an integer, found {tok.text!r}", tok.pos)
    n = int(tok.text)
    if not _INT_MIN <= n <= _INT_MAX:
        raise PQFError(f"{what} {tok.text} does not fit in 64 bits", tok.pos)
    return n


def _pqf_set(tok: _Tok) -> str:
    name = tok.text
    oid = _SET_BY_KEY.get(name.lower().replace("-", "").replace("_", ""))
    if oid is not None:
        return oid
    try:
        oid_content(name)
    except ValueError:
        raise PQFError(f"unknown attribute set {name!r}", tok.pos) from None
    return name


def _effective(attrs: list[AttributeElement]) -> tuple[AttributeElement, ...]:
    """YAZ's attribute list: for each type the last written wins; last first."""
    seen: set[int] = set()
    out = []
    for a in reversed(attrs):
        if a.type not in seen:
            seen.add(a.type)
            out.append(a)
    return tuple(out)


class _PQFParser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _pqf_tokens(text)
        self.i = 0
        self.term_type = "general"

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, what: str) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise PQFError(f"missing {what}", len(self.text))
        self.i += 1
        return tok

    def word(self, what: str) -> _Tok:
        tok = self.take(what)
        if tok.kind != "word":
            raise PQFError(f"expected {what}, found @{tok.text}", tok.pos)
        return tok

    def top_set(self) -> str:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "attrset":
            self.i += 1
            return _pqf_set(self.word("attribute set name"))
        return BIB1

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise PQFError("extra token after the query", tok.pos)

    def query(self) -> RPNQuery:
        attribute_set = self.top_set()
        root = self.struct([], 1)
        self.done()
        return RPNQuery(attribute_set, root)

    def scan(self) -> tuple[str, APT]:
        attribute_set = self.top_set()
        attrs: list[AttributeElement] = []
        while True:
            tok = self.take("scan term")
            if tok.kind == "op" and tok.text in ("attr", "term"):
                self.prefix(tok, attrs)
            elif tok.kind == "word":
                apt = APT(_effective(attrs), self.term(tok), self.term_type)
                self.done()
                return attribute_set, apt
            else:
                raise PQFError(f"@{tok.text} not allowed in a scan term", tok.pos)

    def prefix(self, tok: _Tok, attrs: list[AttributeElement]) -> None:
        if tok.text == "attr":
            if len(attrs) >= MAX_PQF_ATTRIBUTES:
                raise PQFError(f"more than {MAX_PQF_ATTRIBUTES} attributes", tok.pos)
            attrs.append(self.attribute())
        else:
            name = self.word("term type")
            kind = _PQF_TERM_TYPES.get(name.text.lower())
            if kind is None:
                raise PQFError(f"unknown term type {name.text!r}", name.pos)
            self.term_type = kind

    def struct(self, attrs: list[AttributeElement], depth: int) -> RPNNode:
        attrs = list(attrs)
        while True:
            tok = self.take("operand")
            if depth > MAX_RPN_DEPTH:
                raise PQFError(f"query nested deeper than {MAX_RPN_DEPTH} levels", tok.pos)
            if tok.kind == "word":
                return APT(_effective(attrs), self.term(tok), self.term_type)
            if tok.text in ("attr", "term"):
                self.prefix(tok, attrs)
            elif tok.text == "set":
                name = self.word("result set name")
                return ResultSetRef(_pqf_unescape(name.text, name.body), _effective(attrs))
            elif tok.text in ("and", "or", "not", "prox"):
                prox = self.prox() if tok.text == "prox" else None
                left = self.struct(attrs, depth + 1)
                right = self.struct(attrs, depth + 1)
                return RPNOp("and-not" if tok.text == "not" else tok.text, left, right, prox)
            else:
                raise PQFError("@attrset is only allowed at the start of the query", tok.pos)

    def attribute(self) -> AttributeElement:
        tok = self.word("attribute")
        attribute_set = None
        if "=" not in tok.text:
            attribute_set = _pqf_set(tok)
            tok = self.word("attribute type=value")
            if "=" not in tok.text:
                raise PQFError(f"expected attribute type=value, found {tok.text!r}", tok.pos)
        type_text, _, value_text = tok.text.partition("=")
        atype = _pqf_int(_Tok("word", type_text, tok.body), "attribute type")
        value_pos = tok.body + len(type_text) + 1
        if not value_text:
            raise PQFError("missing attribute value after '='", value_pos)
        if _INT_RE.fullmatch(value_text):
            value: int | str = _pqf_int(_Tok("word", value_text, value_pos), "attribute value")
        else:
            value = _pqf_unescape(value_text, value_pos)
        return AttributeElement(atype, value, attribute_set)

    def term(self, tok: _Tok):
        kind = self.term_type
        if kind == "null":
            return None
        if kind == "numeric":
            return _pqf_int(tok, "numeric term")
        text = _pqf_unescape(tok.text, tok.body)
        if kind == "oid":
            try:
                oid_content(text)
            except ValueError:
                raise PQFError(f"not an OBJECT IDENTIFIER: {text!r}", tok.pos) from None
        return text

    def prox(self) -> ProxSpec:
        tok = self.word("proximity exclusion")
        flag = tok.text.lower()
        if flag in ("0", "1"):
            exclusion: bool | None = flag == "1"
        elif flag in ("void", "null", "v", "n"):
            exclusion = None
        else:
            raise PQFError(f"proximity exclusion must be 0, 1 or void, found {tok.text!r}", tok.pos)
        distance = _pqf_int(self.word("proximity distance"), "proximity distance")
        tok = self.word("proximity ordered flag")
        if tok.text not in ("0", "1"):
            raise PQFError(f"proximity ordered flag must be 0 or 1, found {tok.text!r}", tok.pos)
        ordered = tok.text == "1"
        relation = _pqf_int(self.word("proximity relation"), "proximity relation")
        tok = self.word("proximity unit kind")
        which = tok.text.lower()
        if which in ("k", "known", "1"):
            private = False
        elif which in ("p", "private", "2"):
            private = True
        else:
            raise PQFError(f"proximity unit kind must be known or private, found {tok.text!r}", tok.pos)
        unit = _pqf_int(self.word("proximity unit"), "proximity unit")
        return ProxSpec(exclusion, distance, ordered, relation, unit, private)


def parse_pqf(text: str) -> RPNQuery:
    """Parse a YAZ PQF query (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError("PQF text must be a str")
    return _PQFParser(text).query()


def parse_pqf_scan(text: str) -> tuple[str, APT]:
    """Parse a PQF scan term (``[@attrset set] {@attr ...} term``, as YAZ's
    yaz_pqf_scan): the attribute set and the APT."""
    if not isinstance(text, str):
        raise TypeError("PQF text must be a str")
    return _PQFParser(text).scan()


def _pqf_word(s: str) -> str:
    if s and s[0] not in '"{@' and "\\" not in s and not any(c.isspace() for c in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pqf_set_name(oid: str) -> str:
    name = _SET_NAME.get(oid)
    if name is not None:
        return name
    oid_content(oid)            # ValueError for a malformed OID
    return oid


def _pqf_attributes(attrs: tuple[AttributeElement, ...], out: list[str]) -> None:
    types = [a.type for a in attrs]
    if len(set(types)) != len(types):
        raise ValueError("PQF cannot express two attributes of one type in one list")
    for a in reversed(attrs):
        if a.semantic_action is not None or isinstance(a.value, tuple):
            raise ValueError(f"PQF cannot express the complex attribute value {a.value!r}")
        out.append("@attr")
        if a.attribute_set is not None:
            out.append(_pqf_set_name(a.attribute_set))
        value = a.value
        if isinstance(value, int):
            out.append(f"{int(_check_int(a.type, 'attribute type'))}={int(_check_int(value, 'attribute value'))}")
            continue
        if not isinstance(value, str):
            raise TypeError(f"attribute value must be int, str or tuple, not {value!r}")
        if not value:
            raise ValueError("PQF cannot express an empty string attribute value")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        if _INT_RE.fullmatch(value):        # would read as a number: escape its first character
            escaped = f"\\x{ord(value[0]):02x}" + escaped[1:]
        token = f"{int(_check_int(a.type, 'attribute type'))}={escaped}"
        out.append(f'"{token}"' if any(c.isspace() for c in token) else token)


def to_pqf(q: RPNQuery) -> str:
    """The query in PQF; ``parse_pqf(to_pqf(q)) == q``.  ValueError for what PQF
    cannot express (see the module docstring)."""
    if not isinstance(q, RPNQuery):
        raise TypeError(f"not an RPNQuery: {q!r}")
    out: list[str] = []
    if q.attribute_set != BIB1:
        out += ["@attrset", _pqf_set_name(q.attribute_set)]
    state = {"term_type": "general"}

    def node(n, depth: int) -> None:
        if depth > MAX_RPN_DEPTH:
            raise ValueError(f"RPN tree deeper than {MAX_RPN_DEPTH} levels")
        if isinstance(n, RPNOp):
            if n.op not in _PQF_OPERATOR_NAMES:
                raise ValueError(f"unknown RPN operator {n.op!r}")
            out.append("@" + _PQF_OPERATOR_NAMES[n.op])
            if n.op == "prox":
                p = n.prox
                if not isinstance(p, ProxSpec):
                    raise TypeError(f"a prox operator needs a ProxSpec, not {p!r}")
                out.extend(["void" if p.exclusion is None else str(int(bool(p.exclusion))),
                        str(int(_check_int(p.distance, "distance"))), str(int(bool(p.ordered))),
                        str(int(_check_int(p.relation, "proximity relation"))), "p" if p.unit_private else "k",
                        str(int(_check_int(p.unit, "proximity unit")))])
            elif n.prox is not None:
                raise ValueError(f"operator {n.op!r} takes no ProxSpec")
            node(n.left, depth + 1)
            node(n.right, depth + 1)
        elif isinstance(n, APT):
            _pqf_attributes(n.attributes, out)
            kind = n.term_type
            if kind not in _PQF_TERM_NAMES:
                raise ValueError(f"PQF cannot express a {kind} term")
            if kind != state["term_type"]:
                out.extend(["@term", _PQF_TERM_NAMES[kind]])
                state["term_type"] = kind
            term = n.term
            if kind == "null":
                if term is not None:
                    raise TypeError("a null term must be None")
                out.append('""')
            elif kind == "numeric":
                out.append(str(int(_check_int(term, "numeric term"))))
            elif isinstance(term, str):
                if kind == "oid":
                    oid_content(term)
                out.append(_pqf_word(term))
            else:
                raise ValueError(f"PQF cannot express the {kind} term {term!r}")
        elif isinstance(n, ResultSetRef):
            _pqf_attributes(n.attributes, out)
            out.extend(["@set", _pqf_word(n.name)])
        else:
            raise TypeError(f"not an RPN node: {n!r}")

    node(q.root, 1)
    return " ".join(out)


