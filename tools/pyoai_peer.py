#!/usr/bin/env python3
"""An OAI-PMH 2.0 provider built with PyPI's ``pyoai`` (the ``oaipmh`` package, its
``BatchingServer``), serving MARCXML (``marc21``) and ``oai_dc`` records from memory
with deleted records, sets and small pages (so resumption tokens are used) -- a
provider others wrote, for the harvester's tests and benchmark.

    peer = PyoaiPeer(batch_size=7)
    peer.put("oai:peer:1", marcxml_bytes, sets=("books",))   # add or change (datestamp: the peer's clock)
    peer.delete("oai:peer:1")                                 # a deleted header from now on
    peer.start()      # http://127.0.0.1:<port>/oai, in a thread
    peer.die_after(3)   # answer 3 more ListRecords requests, then stop listening (a provider that dies)
    peer.revive()     # listen again on the same port
    peer.stop()

Only 127.0.0.1.  The clock is injected (``clock``), so datestamps are the test's.

pyoai 2.5.0 (its last release) decodes resumption tokens with ``cgi.parse_qs``,
which Python removed in 3.8 (it moved to ``urllib.parse`` long before): every
token then fails inside pyoai.  The one shim below gives ``cgi`` that function
back, with the same signature; nothing else of pyoai is touched.
"""
from __future__ import annotations

import cgi
import datetime as dt
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lxml import etree
from oaipmh import common, error
from oaipmh.metadata import MetadataRegistry
from oaipmh.server import BatchingServer, oai_dc_writer

from server_process import free_port as _free_port

if not hasattr(cgi, "parse_qs"):
    cgi.parse_qs = urllib.parse.parse_qs    # type: ignore[attr-defined]  # pyoai 2.5.0 on Python >= 3.8


def free_port() -> int:
    return _free_port()


def _marc21_writer(element, metadata) -> None:
    element.append(etree.fromstring(metadata["xml"]))


class _Repository:
    """pyoai's IBatchingOAIPMH over the peer's records."""

    def __init__(self, peer: "PyoaiPeer"):
        self.peer = peer

    def identify(self):
        return common.Identify(repositoryName="pyoai test peer", baseURL=self.peer.base_url,
                               protocolVersion="2.0", adminEmails=["peer@example.org"],
                               earliestDatestamp=dt.datetime(2000, 1, 1), deletedRecord="persistent",
                               granularity=self.peer.granularity, compression=["identity"],
                               toolkit_description=False)

    def listMetadataFormats(self, identifier=None):
        return [("marc21", "http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd",
                 "http://www.loc.gov/MARC21/slim"),
                ("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
                 "http://www.openarchives.org/OAI/2.0/oai_dc/")]

    def listSets(self, cursor=0, batch_size=10):
        sets = sorted({s for r in self.peer.records.values() for s in r["sets"]})
        return [(s, s, "") for s in sets][cursor: cursor + batch_size]

    def _selected(self, metadataPrefix, set=None, from_=None, until=None):
        if metadataPrefix not in ("marc21", "oai_dc"):
            raise error.CannotDisseminateFormatError(metadataPrefix)
        out = []
        for ident, r in sorted(self.peer.records.items(), key=lambda kv: (kv[1]["stamp"], kv[0])):
            if set and set not in r["sets"]:
                continue
            if from_ and r["stamp"] < from_:
                continue
            if until and r["stamp"] > until:
                continue
            out.append((ident, r))
        if not out:
            raise error.NoRecordsMatchError("no records match")
        return out

    def _header(self, ident, r):
        return common.Header(None, ident, r["stamp"], list(r["sets"]), r["xml"] is None)

    def _metadata(self, r, prefix):
        if r["xml"] is None:
            return None
        if prefix == "oai_dc":
            return common.Metadata(None, {"title": [r.get("title", "")], "identifier": [r.get("title", "")]})
        return {"xml": r["xml"]}

    def listIdentifiers(self, metadataPrefix, set=None, from_=None, until=None, cursor=0, batch_size=10):
        self.peer._count("ListIdentifiers")
        rows = self._selected(metadataPrefix, set, from_, until)[cursor: cursor + batch_size]
        return [self._header(i, r) for i, r in rows]

    def listRecords(self, metadataPrefix, set=None, from_=None, until=None, cursor=0, batch_size=10):
        self.peer._count("ListRecords")
        rows = self._selected(metadataPrefix, set, from_, until)[cursor: cursor + batch_size]
        return [(self._header(i, r), self._metadata(r, metadataPrefix), None) for i, r in rows]

    def getRecord(self, metadataPrefix, identifier):
        r = self.peer.records.get(identifier)
        if r is None:
            raise error.IdDoesNotExistError(identifier)
        return self._header(identifier, r), self._metadata(r, metadataPrefix), None


class PyoaiPeer:
    def __init__(self, *, batch_size: int = 10, granularity: str = "YYYY-MM-DDThh:mm:ssZ", port: int | None = None,
                 clock=None):
        self.batch_size = batch_size
        self.granularity = granularity
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/oai"
        self.records: dict[str, dict] = {}
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0))
        self.requests: dict[str, int] = {}
        self.queries: list[str] = []            # every query string received, in order
        self._left: int | None = None           # ListRecords answers before dying
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        registry = MetadataRegistry()
        registry.registerWriter("marc21", _marc21_writer)
        registry.registerWriter("oai_dc", oai_dc_writer)
        self.server = BatchingServer(_Repository(self), registry, resumption_batch_size=batch_size)

    # -- records
    def put(self, identifier: str, xml: bytes, sets=(), title: str = "") -> None:
        self.records[identifier] = {"xml": xml, "sets": tuple(sets), "stamp": self.clock(), "title": title}

    def delete(self, identifier: str) -> None:
        r = self.records.get(identifier)
        self.records[identifier] = {"xml": None, "sets": r["sets"] if r else (), "stamp": self.clock()}

    def _count(self, verb: str) -> None:
        with self._lock:
            self.requests[verb] = self.requests.get(verb, 0) + 1

    # -- serving
    def handle(self, query: str) -> bytes:
        self.queries.append(query)
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        body = self.server.handleRequest(params)
        # pyoai writes responseDate from the machine's clock; the datestamps are the peer's
        # (injected) clock, and a real provider has one clock for both
        stamp = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        return re.sub(rb"<responseDate>[^<]*</responseDate>", b"<responseDate>" + stamp + b"</responseDate>",
                      body, count=1)

    def die_after(self, n: int) -> None:
        """Answer ``n`` more ListRecords requests, then stop listening."""
        self._left = n

    def start(self) -> "PyoaiPeer":
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = urllib.parse.urlsplit(self.path).query
                if "verb=ListRecords" in query and peer._left is not None:
                    if peer._left <= 0:
                        self.close_connection = True
                        threading.Thread(target=peer._die, daemon=True).start()
                        self.connection.shutdown(socket.SHUT_RDWR)   # the answer never comes
                        return
                    peer._left -= 1
                body = peer.handle(query)
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _die(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def revive(self) -> None:
        self._left = None
        if self._thread is not None:
            self._thread.join(5)
        self.start()

    def stop(self) -> None:
        self._die()
        if self._thread is not None:
            self._thread.join(5)
