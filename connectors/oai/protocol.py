"""The harvester's half of OAI-PMH 2.0, sans I/O.

``list_request`` builds the parameters of a ListRecords request (the first one
of a listing, or the next one from a resumption token); ``parse_response`` reads
any response into a ``Response`` (records with their headers, the resumption
token, the OAI-PMH errors); ``parse_identify`` reads Identify.  ``Listing`` is
the cursor of one harvest: what to ask next, what it reached, and where to start
again when a token has expired.  Nothing here opens a socket or reads a clock.

Choices the protocol leaves open, as taken here:

* A ``badResumptionToken`` error (a token the provider no longer knows, e.g.
  after a restart) restarts the listing with ``from`` = the last datestamp
  reached when the records came in datestamp order so far (so nothing before it
  can have been missed), else from the listing's own ``from``; either way,
  records read again are recognised as unchanged by the ingest, never duplicated.
  A provider that refuses its tokens again and again without the listing getting
  any further (MAX_STALLED restarts in a row) ends the listing with that error,
  never an endless loop.
* ``noRecordsMatch`` is an empty listing, not an error.
* Datestamps are compared as the provider writes them; ``from`` is sent at the
  granularity the provider announces in Identify (day or seconds).
* A record whose metadata is missing or not one element is still returned (the
  ingest quarantines it with the reason).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lxml import etree

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
DAY = "YYYY-MM-DD"
SECONDS = "YYYY-MM-DDThh:mm:ssZ"
_N = f"{{{OAI_NS}}}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=False)


class OAIProtocolError(Exception):
    """The response is not an OAI-PMH response (not XML, another root, no request)."""


@dataclass(frozen=True)
class OAIError:
    code: str        # badArgument, badResumptionToken, noRecordsMatch, cannotDisseminateFormat, ...
    message: str = ""


@dataclass(frozen=True)
class Header:
    identifier: str
    datestamp: str
    sets: tuple[str, ...] = ()
    deleted: bool = False


@dataclass
class Record:
    header: Header
    metadata: bytes | None = None     # the metadata's one element, serialized (None: deleted, or none sent)
    problem: str | None = None        # why the metadata cannot be read as one element


@dataclass(frozen=True)
class Token:
    value: str                        # "" ends the list
    complete_list_size: int | None = None
    cursor: int | None = None
    expiration: str | None = None


@dataclass
class Response:
    response_date: str
    verb: str
    records: list[Record] = field(default_factory=list)
    token: Token | None = None
    errors: list[OAIError] = field(default_factory=list)

    def error(self, code: str) -> OAIError | None:
        return next((e for e in self.errors if e.code == code), None)


@dataclass(frozen=True)
class Identify:
    repository_name: str
    base_url: str
    earliest_datestamp: str
    deleted_record: str              # no | transient | persistent
    granularity: str                 # DAY or SECONDS
    protocol_version: str = "2.0"


def _text(el, name: str) -> str:
    child = el.find(_N + name)
    return (child.text or "").strip() if child is not None else ""


def _root(body: bytes):
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as e:
        raise OAIProtocolError(f"not XML: {e}") from None
    if root.tag != _N + "OAI-PMH":
        raise OAIProtocolError(f"not an OAI-PMH response (root element {root.tag!r})")
    return root


def parse_response(body: bytes) -> Response:
    """Any OAI-PMH response: its records (ListRecords, ListIdentifiers, GetRecord),
    resumption token and errors."""
    root = _root(body)
    request = root.find(_N + "request")
    verb = request.get("verb", "") if request is not None else ""
    out = Response(_text(root, "responseDate"), verb)
    for err in root.findall(_N + "error"):
        out.errors.append(OAIError(err.get("code", ""), (err.text or "").strip()))
    for container in root:
        if not isinstance(container.tag, str) or container.tag in (_N + "responseDate", _N + "request",
                                                                     _N + "error"):
            continue
        for child in container:
            if child.tag == _N + "record":
                out.records.append(_record(child))
            elif child.tag == _N + "header":          # ListIdentifiers
                out.records.append(Record(_header(child)))
            elif child.tag == _N + "resumptionToken":
                out.token = _token(child)
    return out


def _header(h) -> Header:
    return Header(_text(h, "identifier"), _text(h, "datestamp"),
                  tuple((s.text or "").strip() for s in h.findall(_N + "setSpec")),
                  h.get("status") == "deleted")


def _record(r) -> Record:
    h = r.find(_N + "header")
    header = _header(h) if h is not None else Header("", "")
    md = r.find(_N + "metadata")
    if header.deleted:
        return Record(header)
    if md is None:
        return Record(header, None, "the record has no metadata")
    elements = [c for c in md if isinstance(c.tag, str)]
    if len(elements) != 1:
        return Record(header, None, f"the metadata holds {len(elements)} elements, not one")
    return Record(header, etree.tostring(elements[0], encoding="utf-8"))


def _token(t) -> Token:
    def num(name):
        v = t.get(name)
        return int(v) if v is not None and v.strip().isdigit() else None

    return Token((t.text or "").strip(), num("completeListSize"), num("cursor"), t.get("expirationDate"))


def parse_identify(body: bytes) -> Identify:
    root = _root(body)
    errors = [OAIError(e.get("code", ""), (e.text or "").strip()) for e in root.findall(_N + "error")]
    ident = root.find(_N + "Identify")
    if ident is None:
        raise OAIProtocolError("Identify: " + ("; ".join(f"{e.code}: {e.message}" for e in errors)
                                               or "no Identify element"))
    gran = _text(ident, "granularity") or DAY
    return Identify(_text(ident, "repositoryName"), _text(ident, "baseURL"), _text(ident, "earliestDatestamp"),
                    _text(ident, "deletedRecord") or "no", SECONDS if gran == SECONDS else DAY,
                    _text(ident, "protocolVersion") or "2.0")


# --------------------------------------------------------------------------- datestamps

def parse_datestamp(text: str) -> dt.datetime:
    """A UTC datestamp at either granularity (ValueError if it is neither)."""
    text = text.strip()
    if len(text) == 10:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def format_datestamp(when: dt.datetime | float, granularity: str = SECONDS) -> str:
    if not isinstance(when, dt.datetime):
        when = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    when = when.astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%d") if granularity == DAY else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def at_granularity(datestamp: str, granularity: str) -> str:
    """A datestamp as a provider of that granularity accepts it in ``from``."""
    return datestamp[:10] if granularity == DAY else (datestamp if len(datestamp) > 10
                                                     else datestamp + "T00:00:00Z")


# --------------------------------------------------------------------------- the listing cursor

MAX_STALLED = 3          # restarts in a row without progress before a listing is given up


@dataclass
class Listing:
    """One ListRecords harvest: the parameters of the next request, and what a
    restart needs.  ``from_`` and ``until``: the window asked for (None: open);
    ``token``: the resumption token to send next (None: the first request);
    ``reached``: the greatest datestamp read so far; ``ordered``: the datestamps
    came in non-decreasing order so far; ``done``: the list is complete.  Its
    ``state()`` is what a harvester saves with each committed page."""

    metadata_prefix: str
    set_spec: str | None = None
    from_: str | None = None
    until: str | None = None
    granularity: str = SECONDS
    token: str | None = None
    reached: str | None = None
    ordered: bool = True
    done: bool = False
    first_response_date: str | None = None
    restarts: int = 0
    stalled: int = 0                       # restarts in a row that got no further (given up at MAX_STALLED)
    restarted_at: str | None = None        # ``reached`` at the last restart

    def request(self) -> dict[str, str]:
        """The next request's parameters."""
        if self.token:
            return {"verb": "ListRecords", "resumptionToken": self.token}
        params = {"verb": "ListRecords", "metadataPrefix": self.metadata_prefix}
        if self.set_spec:
            params["set"] = self.set_spec
        if self.from_:
            params["from"] = at_granularity(self.from_, self.granularity)
        if self.until:
            params["until"] = at_granularity(self.until, self.granularity)
        return params

    def advance(self, response: Response) -> list[Record]:
        """Take a response in: its records (to be ingested), the cursor moved on.
        A badResumptionToken restarts the listing (see the module doc); any other
        error but noRecordsMatch raises OAIListError."""
        if self.first_response_date is None:
            self.first_response_date = response.response_date
        if response.error("badResumptionToken") and self.token:
            self.restart()
            return []
        if response.error("noRecordsMatch"):
            self.token, self.done = None, True
            return []
        if response.errors:
            raise OAIListError(response.errors)
        for r in response.records:
            d = r.header.datestamp
            if self.reached is not None and d < self.reached:
                self.ordered = False
            if self.reached is None or d > self.reached:
                self.reached = d
        tok = response.token
        if tok is None or not tok.value:
            self.token, self.done = None, True
        else:
            self.token = tok.value
        return response.records

    def restart(self) -> None:
        """Start the listing again without its token: from the last datestamp reached
        when the datestamps came in order, else from the window's start."""
        self.restarts += 1
        if self.restarts > 1 and self.reached == self.restarted_at:
            self.stalled += 1
            if self.stalled >= MAX_STALLED:   # a provider that refuses every token it gives: never a loop
                raise OAIListError([OAIError("badResumptionToken", (
                    f"the provider refused its own resumption tokens {self.stalled + 1} times in a row "
                    f"without the listing getting past {self.reached or 'its first page'}"))])
        else:
            self.stalled = 0
        self.restarted_at = self.reached
        if self.ordered and self.reached is not None:
            self.from_ = self.reached
        self.token = None

    def state(self) -> dict:
        return {k: getattr(self, k) for k in ("metadata_prefix", "set_spec", "from_", "until", "granularity",
                                              "token", "reached", "ordered", "done", "first_response_date",
                                              "restarts", "stalled", "restarted_at")}

    @classmethod
    def from_state(cls, state: dict) -> "Listing":
        return cls(**state)


class OAIListError(Exception):
    def __init__(self, errors: list[OAIError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.code}: {e.message}" if e.message else e.code for e in errors))
