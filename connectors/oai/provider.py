"""Our OAI-PMH 2.0 provider's core, sans I/O: ``handle(params, repository,
settings, now)`` -> the response document (bytes).  The aiohttp shell is
gateway/oai.py; the repository over the record store is connectors/oai/repository.py.

What it serves: the union records, ``oai:<repository identifier>:<union id>``;
formats ``oai_dc`` and ``marc21`` (MARCXML, the display record with one 852 per
holding); one set per member library (a record is in a library's set while the
library holds it); seconds granularity; deletions persistent (a withdrawn union
record stays a deleted header, and a record a library no longer holds is a deleted
header in that library's set).

Choices the protocol leaves open, as taken here:

* Lists are ordered by (datestamp, id), and a resumption token is the position
  reached in that order with the request's arguments (stateless: it survives a
  restart and never expires, so it carries no expirationDate).  A record changed
  during a listing gets a later datestamp and comes again further on -- a harvest
  never misses it.  ``completeListSize`` is counted when the listing starts.
* ``until`` includes the whole second (or day) it names; ``from`` and ``until``
  must have the same granularity; a day is accepted as well as seconds.
* An unknown set, like any empty selection, is ``noRecordsMatch``.
* Errors (badVerb, badArgument, badResumptionToken, cannotDisseminateFormat,
  idDoesNotExist, noRecordsMatch) answer with ``request`` carrying only the base
  URL for badVerb and badArgument, as the protocol says.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Protocol, Sequence

from lxml import etree

from .protocol import OAI_NS

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC_NS = "http://purl.org/dc/elements/1.1/"
MARC_NS = "http://www.loc.gov/MARC21/slim"
FORMATS = {
    "oai_dc": ("http://www.openarchives.org/OAI/2.0/oai_dc.xsd", OAI_DC_NS),
    "marc21": ("http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd", MARC_NS),
}
VERBS = {
    "Identify": (set(), set()),
    "ListMetadataFormats": (set(), {"identifier"}),
    "ListSets": (set(), {"resumptionToken"}),
    "ListIdentifiers": ({"metadataPrefix"}, {"from", "until", "set", "resumptionToken"}),
    "ListRecords": ({"metadataPrefix"}, {"from", "until", "set", "resumptionToken"}),
    "GetRecord": ({"identifier", "metadataPrefix"}, set()),
}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


@dataclass(frozen=True)
class Settings:
    base_url: str
    repository_name: str = "unioncat union catalog"
    admin_email: str = "admin@unioncat.invalid"     # the protocol wants one; [oai] admin_email sets it
    repository_identifier: str = "unioncat"
    page_size: int = 100


@dataclass(frozen=True)
class Entry:
    id: int
    stamp: float
    deleted: bool
    sets: tuple[str, ...] = ()


class Repository(Protocol):
    def earliest(self) -> float | None: ...
    def sets(self) -> list[tuple[str, str]]: ...
    def list(self, *, from_: float | None, until: float | None, set_spec: str | None,
             after: tuple[float, int] | None, limit: int) -> list[Entry]: ...
    def count(self, *, from_: float | None, until: float | None, set_spec: str | None) -> int: ...
    def entry(self, uid: int) -> Entry | None: ...
    def records(self, ids: Sequence[int]) -> dict[int, object]:
        """Display records (indexers.records.UnionRecord) of live ids."""


class OAIError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def datestamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str, name: str, end: bool) -> float:
    """``from``/``until`` as a time; ``end``: the end of the second or day named."""
    try:
        if _DAY.match(value):
            t = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
            return t.timestamp() + (86400 if end else 0)
        if _SECONDS.match(value):
            t = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
            return t.timestamp() + (1 if end else 0)
    except ValueError:
        pass
    raise OAIError("badArgument", f"{name}={value!r} is not a UTC datestamp (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)")


def _token_encode(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _token_decode(token: str) -> dict:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict) or state.get("v") not in ("ListRecords", "ListIdentifiers"):
            raise ValueError
        after = state["a"]
        if not (isinstance(after, list) and len(after) == 2 and isinstance(after[1], int)):
            raise ValueError
        float(after[0])
        if state["p"] not in FORMATS or not isinstance(state["c"], int) or not isinstance(state["n"], int):
            raise ValueError
        return state
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise OAIError("badResumptionToken", f"the resumption token {token!r} is not one this repository "
                                             "gave") from None


class Provider:
    def __init__(self, repository: Repository, settings: Settings):
        self.repo = repository
        self.settings = settings

    # -- the request
    def handle(self, params: dict[str, list[str]], now: float) -> bytes:
        verb = None
        args: dict[str, str] = {}
        try:
            verbs = params.get("verb", [])
            if len(verbs) != 1:
                raise OAIError("badVerb", "the verb is missing" if not verbs else "the verb is repeated")
            verb = verbs[0]
            if verb not in VERBS:
                raise OAIError("badVerb", f"{verb!r} is not an OAI-PMH verb")
            required, optional = VERBS[verb]
            for k, v in params.items():
                if k == "verb":
                    continue
                if k not in required | optional:
                    raise OAIError("badArgument", f"{verb} has no argument {k!r}")
                if len(v) != 1:
                    raise OAIError("badArgument", f"the argument {k!r} is repeated")
                args[k] = v[0]
            if "resumptionToken" in args:
                if len(args) > 1:
                    raise OAIError("badArgument", "resumptionToken is an exclusive argument")
            else:
                missing = sorted(required - set(args))
                if missing:
                    raise OAIError("badArgument", f"{verb} needs the argument {missing[0]}")
            root, body = self._envelope(now, verb, args)
            getattr(self, "_" + verb)(body, args)
            return self._bytes(root)
        except OAIError as e:
            bare = e.code in ("badVerb", "badArgument")
            root, _ = self._envelope(now, None if bare else verb, {} if bare else args, error=True)
            err = etree.SubElement(root, f"{{{OAI_NS}}}error", code=e.code)
            err.text = e.message
            return self._bytes(root)

    def _envelope(self, now: float, verb: str | None, args: dict[str, str], error: bool = False):
        root = etree.Element(f"{{{OAI_NS}}}OAI-PMH", nsmap={None: OAI_NS, "xsi": XSI_NS})
        root.set(f"{{{XSI_NS}}}schemaLocation",
                 f"{OAI_NS} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd")
        etree.SubElement(root, f"{{{OAI_NS}}}responseDate").text = datestamp(now)
        req = etree.SubElement(root, f"{{{OAI_NS}}}request")
        req.text = self.settings.base_url
        if verb is not None:
            req.set("verb", verb)
            for k, v in args.items():
                req.set(k, v)
        body = None if error else etree.SubElement(root, f"{{{OAI_NS}}}{verb}")
        return root, body

    @staticmethod
    def _bytes(root) -> bytes:
        return etree.tostring(root, encoding="UTF-8", xml_declaration=True)

    # -- identifiers
    def identifier(self, uid: int) -> str:
        return f"oai:{self.settings.repository_identifier}:{uid}"

    def _uid(self, identifier: str) -> int:
        prefix = f"oai:{self.settings.repository_identifier}:"
        tail = identifier[len(prefix):] if identifier.startswith(prefix) else ""
        if not tail.isdigit() or len(tail) > 18:
            raise OAIError("idDoesNotExist", f"{identifier!r} is not an identifier of this repository")
        return int(tail)

    def _entry(self, identifier: str) -> Entry:
        e = self.repo.entry(self._uid(identifier))
        if e is None:
            raise OAIError("idDoesNotExist", f"{identifier!r} does not exist")
        return e

    # -- verbs
    def _Identify(self, body, args) -> None:
        s = self.settings
        for name, value in (("repositoryName", s.repository_name), ("baseURL", s.base_url),
                            ("protocolVersion", "2.0"), ("adminEmail", s.admin_email),
                            ("earliestDatestamp", datestamp(self.repo.earliest() or 0.0)),
                            ("deletedRecord", "persistent"), ("granularity", "YYYY-MM-DDThh:mm:ssZ")):
            etree.SubElement(body, f"{{{OAI_NS}}}{name}").text = value

    def _ListMetadataFormats(self, body, args) -> None:
        if "identifier" in args:
            self._entry(args["identifier"])
        for prefix, (schema, ns) in FORMATS.items():
            f = etree.SubElement(body, f"{{{OAI_NS}}}metadataFormat")
            etree.SubElement(f, f"{{{OAI_NS}}}metadataPrefix").text = prefix
            etree.SubElement(f, f"{{{OAI_NS}}}schema").text = schema
            etree.SubElement(f, f"{{{OAI_NS}}}metadataNamespace").text = ns

    def _ListSets(self, body, args) -> None:
        if "resumptionToken" in args:
            raise OAIError("badResumptionToken", "ListSets is never split: no token was given")
        for spec, name in self.repo.sets():
            s = etree.SubElement(body, f"{{{OAI_NS}}}set")
            etree.SubElement(s, f"{{{OAI_NS}}}setSpec").text = spec
            etree.SubElement(s, f"{{{OAI_NS}}}setName").text = name or spec

    def _GetRecord(self, body, args) -> None:
        prefix = args["metadataPrefix"]
        if prefix not in FORMATS:
            raise OAIError("cannotDisseminateFormat", f"no metadata format {prefix!r} (oai_dc, marc21)")
        e = self._entry(args["identifier"])
        self._records(body, [e], prefix, with_metadata=True)

    def _ListRecords(self, body, args) -> None:
        self._list(body, args, "ListRecords")

    def _ListIdentifiers(self, body, args) -> None:
        self._list(body, args, "ListIdentifiers")

    def _list(self, body, args: dict[str, str], verb: str) -> None:
        if "resumptionToken" in args:
            st = _token_decode(args["resumptionToken"])
            if st["v"] != verb:
                raise OAIError("badResumptionToken", f"the token belongs to {st['v']}, not {verb}")
        else:
            prefix = args["metadataPrefix"]
            if prefix not in FORMATS:
                raise OAIError("cannotDisseminateFormat", f"no metadata format {prefix!r} (oai_dc, marc21)")
            st = {"v": verb, "p": prefix, "s": args.get("set"), "f": args.get("from"), "u": args.get("until"),
                  "a": None, "c": 0, "n": None}
            if st["f"] and st["u"] and len(st["f"]) != len(st["u"]):
                raise OAIError("badArgument", "from and until have different granularities")
        from_ = _parse_time(st["f"], "from", False) if st["f"] else None
        until = _parse_time(st["u"], "until", True) if st["u"] else None
        if from_ is not None and until is not None and from_ >= until:
            raise OAIError("badArgument", "from is later than until")
        after = (float(st["a"][0]), int(st["a"][1])) if st["a"] else None
        size = self.settings.page_size
        entries = self.repo.list(from_=from_, until=until, set_spec=st["s"], after=after, limit=size + 1)
        if not entries and after is None:
            raise OAIError("noRecordsMatch", "no records match the request")
        if st["n"] is None:
            st["n"] = self.repo.count(from_=from_, until=until, set_spec=st["s"])
        more = len(entries) > size
        entries = entries[:size]
        self._records(body, entries, st["p"], with_metadata=verb == "ListRecords")
        if after is not None or more:
            tok = etree.SubElement(body, f"{{{OAI_NS}}}resumptionToken", completeListSize=str(st["n"]),
                                   cursor=str(st["c"]))
            if more:
                last = entries[-1]
                tok.text = _token_encode({**st, "a": [repr(last.stamp), last.id], "c": st["c"] + len(entries)})

    # -- records
    def _header(self, parent, e: Entry) -> None:
        h = etree.SubElement(parent, f"{{{OAI_NS}}}header")
        if e.deleted:
            h.set("status", "deleted")
        etree.SubElement(h, f"{{{OAI_NS}}}identifier").text = self.identifier(e.id)
        etree.SubElement(h, f"{{{OAI_NS}}}datestamp").text = datestamp(e.stamp)
        for s in e.sets:
            etree.SubElement(h, f"{{{OAI_NS}}}setSpec").text = s

    def _records(self, body, entries: list[Entry], prefix: str, with_metadata: bool) -> None:
        if not with_metadata:
            for e in entries:
                self._header(body, e)
            return
        recs = self.repo.records([e.id for e in entries if not e.deleted])
        for e in entries:
            r = etree.SubElement(body, f"{{{OAI_NS}}}record")
            rec = recs.get(e.id)
            if e.deleted or rec is None:      # withdrawn between the list and the fetch: deleted
                self._header(r, Entry(e.id, e.stamp, True, e.sets))
                continue
            self._header(r, e)
            md = etree.SubElement(r, f"{{{OAI_NS}}}metadata")
            md.append(metadata_element(rec, prefix))


def metadata_element(record, prefix: str):
    """A union record as MARCXML (marc21) or oai_dc."""
    from sru.record_schemas import dc_element, marcxml_element

    if prefix == "marc21":
        return marcxml_element(record.marc)
    dc = dc_element(record)
    out = etree.Element(f"{{{OAI_DC_NS}}}dc", nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS, "xsi": XSI_NS})
    out.set(f"{{{XSI_NS}}}schemaLocation", f"{OAI_DC_NS} http://www.openarchives.org/OAI/2.0/oai_dc.xsd")
    for child in dc:
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{DC_NS}}}"):
            out.append(child)
    return out
