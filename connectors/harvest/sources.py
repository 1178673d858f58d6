"""One page fetcher per protocol.  ``fetch(cursor)`` returns the next ``Page``:
its items (records read with the ingest's own MARC readers, deleted identifiers)
and the cursor after it, which the runner commits with the page's records.  Each
request is retried on transient failures (connection refused or reset, a timeout,
HTTP 429/5xx, a response cut short) with exponential backoff (tenacity); a failure
that stays, or one that is not transient (HTTP 4xx, an OAI-PMH error), raises
``HarvestError``.

* OAI-PMH: Identify once (granularity), then ListRecords with the ``Listing``
  cursor of connectors/oai/protocol.py (tokens; an expired token restarts from the
  last datestamp reached).  Deleted headers are deletions.
* SRU: searchRetrieve pages (``startRecord``), MARCXML records; no deletions.
* Z39.50: one association; search once, then present ``page_size`` records a
  request from the cursor's position; after a lost connection the association is
  opened again and the search repeated.  No deletions.
"""
from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Callable

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from connectors.oai import protocol as oai
from connectors.sru_client import SRUProtocolError, parse_search_response, search_params
from indexers.marc_reader import BadRecord, read_marc

from .config import Source


class HarvestError(Exception):
    """The harvest cannot go on (said in one line); what was committed stays."""


class Transient(Exception):
    """A failure worth another try."""


@dataclass
class Item:
    kind: str                         # "record" | "deleted"
    where: str                        # identifier, or address and position
    record: object = None             # ReadRecord | BadRecord for "record"
    identifier: str | None = None


@dataclass
class Page:
    items: list[Item]
    cursor: dict
    done: bool
    total: int | None = None


@dataclass
class Retrying:
    """How requests are retried (tests give a zero backoff), and what happened."""

    attempts: int = 5
    backoff: float = 1.0              # first wait, seconds; doubles each time
    backoff_max: float = 60.0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    sleep: Callable | None = None     # tenacity's sleep (tests: no real waiting)

    async def run(self, what: str, fn):
        def note(state) -> None:
            self.retries += 1
            self.errors.append(f"{what}: {state.outcome.exception()} (retrying)")

        kw = {"sleep": self.sleep} if self.sleep is not None else {}
        retrying = AsyncRetrying(stop=stop_after_attempt(self.attempts),
                                 wait=wait_exponential(multiplier=self.backoff, max=self.backoff_max),
                                 retry=retry_if_exception(lambda e: isinstance(e, Transient)),
                                 before_sleep=note, reraise=True, **kw)
        try:
            async for attempt in retrying:
                with attempt:
                    return await fn()
        except Transient as e:
            raise HarvestError(f"{what}: {e} (after {self.attempts} attempts)") from None
        raise AssertionError("unreachable")


def marc_items(where: str, data: bytes, fmt: str, identifier: str | None = None) -> list[Item]:
    """A harvested record's bytes read by the ingest's MARC reader (the same checks
    as a file); something that holds no MARC record at all is a bad record."""
    got = [Item("record", where, r, identifier) for r in read_marc(io.BytesIO(data), fmt=fmt)]
    if not got:
        head = data[:80].decode("utf-8", "replace")
        got = [Item("record", where, BadRecord(-1, 0, f"not a {fmt.upper()} record: {head!r}", data), identifier)]
    return got


# --------------------------------------------------------------------------- HTTP

class _Http:
    def __init__(self, source: Source, retrying: Retrying):
        self.source = source
        self.retrying = retrying
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the event loop that runs the requests."""
        if self.session is None:
            auth = None
            if self.source.username:
                auth = aiohttp.BasicAuth(self.source.username, self.source.password() or "")
            self.session = aiohttp.ClientSession(auth=auth,
                                                 timeout=aiohttp.ClientTimeout(total=self.source.timeout),
                                                 headers={"User-Agent": "unioncat-harvester"})
        return self.session

    async def get(self, params: dict[str, str], what: str) -> bytes:
        async def once() -> bytes:
            try:
                async with self._session().get(self.source.url, params=params) as r:
                    body = await r.read()
                    if r.status == 429 or r.status >= 500:
                        raise Transient(f"HTTP {r.status} from {self.source.url}")
                    if r.status >= 400:
                        raise HarvestError(f"{what}: HTTP {r.status} from {self.source.url}")
                    return body
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                raise Transient(f"{type(e).__name__}: {e or 'no answer'}") from None

        return await self.retrying.run(what, once)

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


class OaiFetcher:
    def __init__(self, source: Source, retrying: Retrying):
        self.source = source
        self.http = _Http(source, retrying)
        self.retrying = retrying

    async def identify(self) -> oai.Identify:
        body = await self.http.get({"verb": "Identify"}, "Identify")
        try:
            return oai.parse_identify(body)
        except oai.OAIProtocolError as e:
            raise HarvestError(f"Identify: {e}") from None

    def start(self, granularity: str, from_: str | None) -> dict:
        listing = oai.Listing(self.source.format, self.source.set_spec, from_, None, granularity)
        return {"listing": listing.state()}

    async def fetch(self, cursor: dict) -> Page:
        listing = oai.Listing.from_state(cursor["listing"])
        if listing.done:
            return Page([], cursor, True)

        async def once():
            body = await self.http.get(listing.request(), "ListRecords")
            try:
                return oai.parse_response(body)
            except oai.OAIProtocolError as e:
                raise Transient(str(e)) from None

        response = await self.retrying.run("ListRecords", once)
        try:
            records = listing.advance(response)
        except oai.OAIListError as e:
            raise HarvestError(f"ListRecords: {e}") from None
        if listing.restarts and not records and not listing.done:
            self.retrying.errors.append(f"ListRecords: the resumption token was refused; starting again "
                                        f"from {listing.from_ or 'the beginning'}")
        items: list[Item] = []
        for rec in records:
            h = rec.header
            if h.deleted:
                items.append(Item("deleted", h.identifier, identifier=h.identifier))
            elif rec.metadata is None:
                items.append(Item("record", h.identifier, BadRecord(-1, 0, rec.problem or "no metadata", b""),
                                  h.identifier))
            else:
                items.extend(marc_items(h.identifier, rec.metadata, "marcxml", h.identifier))
        total = response.token.complete_list_size if response.token else None
        return Page(items, {"listing": listing.state()}, listing.done, total)

    def next_from(self, cursor: dict) -> str | None:
        """Where the next incremental harvest starts: the provider's time when this
        listing began (records changed since then come in the next one)."""
        listing = oai.Listing.from_state(cursor["listing"])
        return listing.first_response_date or listing.reached

    async def aclose(self) -> None:
        await self.http.aclose()


class SruFetcher:
    def __init__(self, source: Source, retrying: Retrying):
        self.source = source
        self.http = _Http(source, retrying)
        self.retrying = retrying

    def start(self, from_: str | None) -> dict:
        query = self.source.query
        if from_ and self.source.incremental_query:
            query = f"({query}) and {self.source.incremental_query.replace('{from}', from_)}"
        return {"query": query, "next": 1}

    async def fetch(self, cursor: dict) -> Page:
        start = cursor["next"]
        if start is None:
            return Page([], cursor, True)
        params = search_params(cursor["query"], start=start, maximum=self.source.page_size,
                               schema=self.source.format)

        async def once():
            body = await self.http.get(params, "searchRetrieve")
            try:
                resp = parse_search_response(body)
            except SRUProtocolError as e:
                raise Transient(str(e)) from None
            if resp.diagnostics and not resp.records:
                d = resp.diagnostics[0]
                if d.number == 1:             # temporary system error
                    raise Transient(str(d))
                raise HarvestError(f"searchRetrieve: {d}")
            return resp

        resp = await self.retrying.run("searchRetrieve", once)
        items = []
        for i, rec in enumerate(resp.records):
            pos = rec.position or start + i
            where = f"{self.source.url} record {pos}"
            if rec.diagnostic is not None or rec.data is None:
                items.append(Item("record", where, BadRecord(-1, pos, f"the target sent {rec.diagnostic}", b"")))
            else:
                items.extend(marc_items(where, rec.data, "marcxml"))
        nxt = resp.next_position
        if nxt is None and resp.records and start + len(resp.records) <= resp.total:
            nxt = start + len(resp.records)
        if not resp.records:
            nxt = None
        return Page(items, {**cursor, "next": nxt}, nxt is None, resp.total)

    async def aclose(self) -> None:
        await self.http.aclose()


class Z3950Fetcher:
    def __init__(self, source: Source, retrying: Retrying):
        self.source = source
        self.retrying = retrying
        self.client = None
        self.hits: int | None = None

    def start(self) -> dict:
        return {"next": 1}

    async def _connect(self):
        from connectors.z3950_client import Z3950Client

        if self.client is None:
            self.client = Z3950Client(self.source.host, self.source.port, database=self.source.database,
                                      user=self.source.username, password=self.source.password(),
                                      timeout=self.source.timeout, connect_retries=0)
        if not self.client.usable:
            await self.client.reconnect()
            self.hits = None
        if self.hits is None:
            self.hits = await self.client.search(self.source.query)

    async def fetch(self, cursor: dict) -> Page:
        from connectors.z3950_client import Z3950Closed, Z3950ConnectionError, Z3950Diagnostic, Z3950Error

        start = cursor["next"]
        if start is None:
            return Page([], cursor, True)
        syntax = self.source.format

        async def once():
            try:
                await self._connect()
                assert self.client is not None and self.hits is not None
                if start > self.hits:
                    return []
                return await self.client.present(start, min(self.source.page_size, self.hits - start + 1),
                                                 syntax=syntax)
            except Z3950Diagnostic as e:
                raise HarvestError(f"Z39.50: {e}") from None
            except (Z3950ConnectionError, TimeoutError) as e:
                if isinstance(e, Z3950Closed) and e.reason not in (1, 2, 4, 7, 8):
                    raise HarvestError(f"Z39.50: {e}") from None
                self.hits = None
                raise Transient(str(e)) from None
            except Z3950Error as e:
                raise HarvestError(f"Z39.50: {e}") from None

        records = await self.retrying.run("Z39.50 present", once)
        items: list[Item] = []
        fmt = "iso2709" if syntax.lower() in ("usmarc", "marc21") else "marcxml"
        for i, rec in enumerate(records):
            pos = start + i
            where = f"{self.source.address} record {pos}"
            data = getattr(rec, "data", None)
            if data is None:
                items.append(Item("record", where, BadRecord(-1, pos, f"the target sent diagnostic {rec}", b"")))
            else:
                items.extend(marc_items(where, data, fmt))
        nxt: int | None = start + len(records)
        if not records or self.hits is None or nxt > self.hits:
            nxt = None
        return Page(items, {"next": nxt}, nxt is None, self.hits)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()
