"""Whether a partner has a copy on its shelf now, as its catalog tells it: an SRU
searchRetrieveResponse whose records are YAZ's OPAC XML (``recordSchema=opac``; the
schema is ../shared/standards/marcxml/opacxml.xsd), read sans I/O by :func:`copies`;
:func:`ask` is the thin HTTP shell around it.

A partner that says it has no copy in now is still asked, only later in the rota: a
catalog is a hint, not an answer (the copy may be back by the time the Request
arrives, and the partner's own staff decide)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class Copies:
    total: int          # circulation entries the records list
    available: int      # of them with availableNow value="1"

    @property
    def any_in(self) -> bool:
        return self.available > 0


def copies(body: bytes) -> Copies | None:
    """The copies an SRU response's OPAC records list (None: not such a response, or no
    record: the catalog does not know the title)."""
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if etree.QName(root).localname != "searchRetrieveResponse":
        return None
    records = [r for r in root.iter() if isinstance(r.tag, str) and etree.QName(r).localname == "opacRecord"]
    if not records:
        return None
    total = available = 0
    for rec in records:
        for now in rec.iter():
            if isinstance(now.tag, str) and etree.QName(now).localname == "availableNow":
                total += 1
                available += (now.get("value") or "").strip() in ("1", "true", "yes")
    return Copies(total, available)


def query_url(base: str, isbn: str) -> str:
    return base + ("&" if "?" in base else "?") + urlencode({
        "version": "1.2", "operation": "searchRetrieve", "query": f'bath.isbn="{isbn}"',
        "recordSchema": "opac", "maximumRecords": "5"})


async def ask(session: aiohttp.ClientSession, base: str, isbn: str, timeout: float = 3.0) -> Copies | None:
    """The partner's answer, or None when it cannot be had within ``timeout`` seconds."""
    try:
        async with session.get(query_url(base, isbn), timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            if r.status != 200:
                return None
            return copies(await r.content.read(1 << 20))
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None
