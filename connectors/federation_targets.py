"""The partner targets of a federation (search/federation.py: the fan-out, merge and
paging; this module: the SRU and Z39.50 clients as targets) and the ``[federation.<name>]``
tables that configure them::

    [federation.partners]                    # the database name: /sru/partners, Z39.50 "partners"
    records = 50                             # records asked of each target (the pages there are)
    [federation.partners.targets.union]      # the local union catalog
    protocol = "local"
    timeout = 5
    [federation.partners.targets.zebra]      # a partner's Z39.50 target
    protocol = "z3950"
    address = "z.example.ac.jp:210/Default"
    syntax = "usmarc"                        # or "xml" (MARCXML)
    timeout = 3                              # seconds; over that it is left out, named in a diagnostic
    label = "Zebra Univ."                    # how its holdings are shown (852 $a; default: the name)
    indexes = { "dc.title" = "1=4", "dc.creator" = "1=1003" }   # ours -> its Bib-1 attributes
    [federation.partners.targets.nagoya]     # a partner's SRU target
    protocol = "sru"
    url = "https://sru.example.ac.jp/sru"
    schema = "marcxml"
    indexes = { "dc.title" = "title" }       # ours -> its CQL index names (default: ours)

The targets are asked in the order they are written (the first one's record shows
for a merged record).  Z39.50 targets get a new association per search (no state
kept with a partner between searches); an index without a mapping falls back to the
Bib-1 use attribute config/bib1.toml gives it.  Bad configuration is one line
saying what and where (``FederationConfigError``).
"""
from __future__ import annotations

import io
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pymarc

from connectors.sru_client import SRUProtocolError, parse_search_response, search_params
from indexers.marc_reader import read_marc
from indexers.query_model import Query
from indexers.records import UnionRecord
from search.federation import LocalTarget, Target, TargetHits, remote_record
from search.federation_query import Unmappable, default_use_attributes, to_cql, to_pqf

PROTOCOLS = ("local", "sru", "z3950")
KNOWN = {"protocol", "url", "address", "syntax", "schema", "timeout", "label", "indexes", "database"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]*\Z")


class FederationConfigError(Exception):
    """A ``[federation.*]`` table that cannot be used, said in one line."""


class TargetError(Exception):
    """A target answered, but not with records (its diagnostic, a broken response)."""


def _marc(data: bytes, fmt: str) -> list[pymarc.Record]:
    return [r.record for r in read_marc(io.BytesIO(data), fmt=fmt) if hasattr(r, "record")]


@dataclass
class SruTarget:
    name: str
    url: str
    timeout: float = 5.0
    label: str = ""
    schema: str = "marcxml"
    indexes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.label = self.label or self.name

    async def search(self, query: Query, count: int) -> TargetHits:
        try:
            cql = to_cql(query, self.indexes)
        except Unmappable as e:
            raise TargetError(f"cannot be asked this query: {e}") from None
        params = search_params(cql, start=1, maximum=count, schema=self.schema)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                         headers={"User-Agent": "unioncat-federation"}) as http:
            async with http.get(self.url, params=params) as resp:
                if resp.status != 200:
                    raise TargetError(f"HTTP {resp.status}")
                body = await resp.read()
        try:
            answer = parse_search_response(body)
        except SRUProtocolError as e:
            raise TargetError(f"not an SRU response: {e}") from None
        if answer.diagnostics and not answer.records and answer.total == 0:
            raise TargetError(str(answer.diagnostics[0]))
        records: list[UnionRecord] = []
        for rec in answer.records:
            if rec.data is not None:
                records.extend(remote_record(m, self.label) for m in _marc(rec.data, "marcxml"))
        return TargetHits(answer.total, records)


@dataclass
class Z3950Target:
    name: str
    host: str
    port: int
    database: str = "Default"
    timeout: float = 5.0
    label: str = ""
    syntax: str = "usmarc"
    indexes: dict[str, str] = field(default_factory=dict)   # ours (lower case) -> Bib-1 attributes

    def __post_init__(self):
        self.label = self.label or self.name

    async def search(self, query: Query, count: int) -> TargetHits:
        from connectors.z3950_client import Z3950Client, Z3950Diagnostic

        try:
            pqf = to_pqf(query, self.indexes)
        except Unmappable as e:
            raise TargetError(f"cannot be asked this query: {e}") from None
        fmt = "iso2709" if self.syntax.lower() in ("usmarc", "marc21") else "marcxml"
        client = Z3950Client(self.host, self.port, database=self.database, timeout=self.timeout,
                             connect_retries=0)
        try:
            await client.reconnect()
            try:
                got = await client.search_and_present(pqf, count, attempts=1, syntax=self.syntax)
            except Z3950Diagnostic as e:
                raise TargetError(f"Z39.50 {e}") from None
        except BaseException:
            await client.close(timeout=0)          # failed or cancelled (its timeout): no waiting for a Close
            raise
        await client.close(timeout=min(self.timeout, 1.0))
        records: list[UnionRecord] = []
        for rec in got.records:
            data = getattr(rec, "data", None)
            if data is not None:
                records.extend(remote_record(m, self.label) for m in _marc(data, fmt))
        return TargetHits(got.hits, records)


# --------------------------------------------------------------------------- configuration

@dataclass
class FederationSpec:
    name: str
    records: int
    targets: list[dict]


def parse_federations(data: Mapping, where: str = "[federation]", reserved=()) -> dict[str, FederationSpec]:
    """The ``[federation.<name>]`` tables of a parsed configuration file, checked;
    ``reserved``: database names a federation may not take (the member libraries')."""
    taken = {"default"} | {r.lower() for r in reserved}
    tables = data.get("federation", {})
    if not isinstance(tables, dict):
        raise FederationConfigError(f"{where}: must be a table of groups, [federation.<name>]")
    out = {}
    for name, table in tables.items():
        at = f"{where.rstrip(']')}.{name}]"
        if not _NAME.match(name):
            raise FederationConfigError(f"{at}: the name must start with a letter (a database name)")
        if name.lower() in taken:
            raise FederationConfigError(f"{at}: {name} is already a database (the union or a member library)")
        if not isinstance(table, dict):
            raise FederationConfigError(f"{at}: must be a table")
        unknown = sorted(set(table) - {"records", "targets"})
        if unknown:
            raise FederationConfigError(f"{at}: unknown setting {unknown[0]!r} (known: records, targets)")
        records = table.get("records", 50)
        if not isinstance(records, int) or not 1 <= records <= 500:
            raise FederationConfigError(f"{at}: records must be a whole number from 1 to 500")
        targets = table.get("targets", {})
        if not isinstance(targets, dict) or not targets:
            raise FederationConfigError(f"{at}: needs targets ([federation.{name}.targets.<target>])")
        specs = []
        for tname, t in targets.items():
            specs.append(_check_target(f"{at.rstrip(']')}.targets.{tname}]", tname, t))
        if sum(1 for s in specs if s["protocol"] == "local") > 1:
            raise FederationConfigError(f"{at}: the local union catalog is one target at most")
        out[name] = FederationSpec(name, records, specs)
    return out


def _check_target(at: str, name: str, t) -> dict:
    if not isinstance(t, dict):
        raise FederationConfigError(f"{at}: must be a table")
    unknown = sorted(set(t) - KNOWN)
    if unknown:
        raise FederationConfigError(f"{at}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(KNOWN))})")
    proto = str(t.get("protocol", "")).lower()
    if proto not in PROTOCOLS:
        raise FederationConfigError(f"{at}: protocol must be one of {', '.join(PROTOCOLS)}, "
                                    f"not {t.get('protocol')!r}")
    timeout = t.get("timeout", 5.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 300:
        raise FederationConfigError(f"{at}: timeout must be seconds, more than 0 and at most 300")
    spec: dict = {"name": name, "protocol": proto, "timeout": float(timeout), "label": str(t.get("label", ""))}
    indexes = t.get("indexes", {})
    if not isinstance(indexes, dict) or not all(isinstance(v, str) for v in indexes.values()):
        raise FederationConfigError(f"{at}: indexes must be a table of our index = its index (strings)")
    spec["indexes"] = {k.lower(): v for k, v in indexes.items()}
    if proto == "z3950":
        m = re.fullmatch(r"(?:tcp:)?([^:/\s]+):(\d+)(?:/(\S+))?", str(t.get("address", "")))
        if not m:
            raise FederationConfigError(f"{at}: address {t.get('address')!r}: write host:port/Database")
        spec.update(host=m.group(1), port=int(m.group(2)), database=m.group(3) or "Default",
                    syntax=str(t.get("syntax", "usmarc")))
    elif proto == "sru":
        url = str(t.get("url", ""))
        if not re.match(r"https?://\S+\Z", url):
            raise FederationConfigError(f"{at}: url {url!r}: an http:// or https:// URL is needed")
        spec.update(url=url, schema=str(t.get("schema", "marcxml")))
    return spec


def load_federations(path: Path | None, reserved=()) -> dict[str, FederationSpec]:
    """The federations of a configuration file (none when it does not exist)."""
    if path is None or not Path(path).exists():
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise FederationConfigError(f"{path}: {e}") from None
    return parse_federations(data, f"{path}: [federation]", reserved)


def build_targets(spec: FederationSpec, local, bib1_use: Mapping[int, object] | None = None) -> list[Target]:
    """The targets of a federation; ``local``: the union catalog (its Catalog);
    ``bib1_use``: config/bib1.toml's use attributes (the Z39.50 defaults)."""
    defaults = default_use_attributes(bib1_use or {})
    out: list[Target] = []
    for t in spec.targets:
        if t["protocol"] == "local":
            out.append(LocalTarget(local, t["name"], t["timeout"], t["label"]))
        elif t["protocol"] == "sru":
            out.append(SruTarget(t["name"], t["url"], t["timeout"], t["label"], t["schema"], t["indexes"]))
        else:
            out.append(Z3950Target(t["name"], t["host"], t["port"], t["database"], t["timeout"], t["label"],
                                   t["syntax"], {**defaults, **t["indexes"]}))
    return out


def federation_catalogs(specs: Mapping[str, FederationSpec], local, bib1_use: Mapping[int, object]) -> dict:
    """name -> FederatedCatalog over ``local`` (the union catalog) and the partners;
    ``bib1_use``: config/bib1.toml's use attributes (z3950.rpn.load_bib1_mapping().use)."""
    from search.federation import FederatedCatalog

    return {name: FederatedCatalog(name, local, build_targets(spec, local, bib1_use), records=spec.records)
            for name, spec in specs.items()}


def add_to_route(route, specs: Mapping[str, FederationSpec], bib1_use: Mapping[int, object]) -> None:
    """Each federation a database of ``route`` (search/route.py), over the route's catalog."""
    for name, fed in federation_catalogs(specs, route.catalog, bib1_use).items():
        route.databases.add_federation(name, fed)
