"""The harvest sources of a deployment: ``[harvest.<library>]`` tables in the
configuration file (``--config FILE`` or ``DATA_DIR/unioncat.toml``)::

    [harvest.kyoto-u]                      # the member library the records belong to
    protocol = "oai-pmh"                   # oai-pmh | sru | z3950
    url = "https://oai.example.ac.jp/oai"  # oai-pmh and sru; z3950: address = "host:port/Database"
    format = "marc21"                      # oai-pmh metadataPrefix (MARCXML); sru: recordSchema; z3950: syntax
    set = "books"                          # oai-pmh set (optional)
    query = "cql.allRecords=1"             # sru (CQL) and z3950 (PQF)
    incremental_query = "rec.lastModificationDate >= {from}"   # sru, optional
    schedule = "every 6h"                  # or "daily 02:30"; none: only by hand
    timezone = "Asia/Tokyo"                # the zone of a daily time (default: the network's; never the host's)
    page_size = 100                        # sru and z3950 records a request
    username = "harvester"                 # HTTP basic auth, or the Z39.50 idPass user
    password_env = "UNIONCAT_HARVEST_KYOTO_PASSWORD"   # the password from the environment, never the file
    timeout = 60                           # seconds a request may take
    retries = 5                            # attempts a request gets (transient failures back off)
    library = "kyoto-u"                    # the member library (default: the table's name)

Bad configuration is one line saying what and where (``ConfigError``).
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROTOCOLS = ("oai-pmh", "sru", "z3950")
DEFAULT_FORMAT = {"oai-pmh": "marc21", "sru": "marcxml", "z3950": "usmarc"}
DEFAULT_QUERY = {"sru": "cql.allRecords=1", "z3950": '@attr 1=_ALLRECORDS @attr 2=103 ""'}
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class ConfigError(Exception):
    """A harvest table that cannot be used, said in one line."""


@dataclass(frozen=True)
class Schedule:
    every: float | None = None         # seconds between runs
    daily: tuple[int, int] | None = None   # (hour, minute), wall-clock time of ``zone``
    zone: str = "UTC"                  # IANA zone name of the daily time (the source's ``timezone``)

    @classmethod
    def parse(cls, text: str, where: str) -> "Schedule":
        t = text.strip().lower()
        m = re.fullmatch(r"(?:every\s+)?(\d+(?:\.\d+)?)\s*([smhd])", t)
        if m:
            secs = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
            if secs < 60:
                raise ConfigError(f"{where}: schedule {text!r}: at most once a minute")
            return cls(every=secs)
        m = re.fullmatch(r"daily\s+(\d{1,2}):(\d{2})", t)
        if m and int(m.group(1)) < 24 and int(m.group(2)) < 60:
            return cls(daily=(int(m.group(1)), int(m.group(2))))
        raise ConfigError(f"{where}: schedule {text!r}: write \"every 6h\" (s, m, h, d) or \"daily 02:30\"")


@dataclass(frozen=True)
class Source:
    name: str                          # the table's name (also the state's key)
    library: str                       # the member library the records belong to
    protocol: str
    url: str = ""                      # oai-pmh, sru
    host: str = ""                     # z3950
    port: int = 0
    database: str = "Default"
    format: str = ""
    set_spec: str | None = None
    query: str = ""
    incremental_query: str | None = None
    schedule: Schedule | None = None
    page_size: int = 100
    username: str | None = None
    password_env: str | None = None
    timeout: float = 60.0
    retries: int = 5

    @property
    def address(self) -> str:
        return self.url if self.protocol != "z3950" else f"{self.host}:{self.port}/{self.database}"

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


KNOWN = {"protocol", "url", "address", "format", "set", "query", "incremental_query", "schedule", "page_size",
         "username", "password_env", "timeout", "retries", "library", "timezone"}


def parse_source(name: str, table: dict, where: str = "[harvest]", default_zone: str = "UTC") -> Source:
    at = f"{where.rstrip(']')}.{name}]"
    unknown = sorted(set(table) - KNOWN)
    if unknown:
        raise ConfigError(f"{at}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(KNOWN))})")
    proto = str(table.get("protocol", "")).lower()
    if proto not in PROTOCOLS:
        raise ConfigError(f"{at}: protocol must be one of {', '.join(PROTOCOLS)}, not {table.get('protocol')!r}")
    library = str(table.get("library", name))
    if not _CODE.match(library):
        raise ConfigError(f"{at}: library {library!r} is not a library code")
    kw: dict = {"name": name, "library": library, "protocol": proto,
                "format": str(table.get("format", DEFAULT_FORMAT[proto])),
                "query": str(table.get("query", DEFAULT_QUERY.get(proto, "")))}
    if proto == "z3950":
        addr = str(table.get("address", ""))
        m = re.fullmatch(r"(?:tcp:)?([^:/\s]+):(\d+)(?:/(\S+))?", addr)
        if not m:
            raise ConfigError(f"{at}: address {addr!r}: write host:port/Database")
        kw.update(host=m.group(1), port=int(m.group(2)), database=m.group(3) or "Default")
    else:
        url = str(table.get("url", ""))
        if not re.match(r"https?://\S+\Z", url):
            raise ConfigError(f"{at}: url {url!r}: an http:// or https:// URL is needed")
        kw["url"] = url
    if "set" in table:
        if proto != "oai-pmh":
            raise ConfigError(f"{at}: set is an OAI-PMH setting; {proto} selects with query")
        kw["set_spec"] = str(table["set"])
    if "incremental_query" in table:
        iq = str(table["incremental_query"])
        if proto != "sru" or "{from}" not in iq:
            raise ConfigError(f"{at}: incremental_query is for sru and must contain {{from}}")
        kw["incremental_query"] = iq
    if "schedule" in table:
        kw["schedule"] = Schedule.parse(str(table["schedule"]), at)
        zone = str(table.get("timezone", default_zone))
        try:
            ZoneInfo(zone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ConfigError(f"{at}: timezone {zone!r} is not an IANA time zone (Asia/Tokyo, UTC)") from None
        kw["schedule"] = dataclasses.replace(kw["schedule"], zone=zone)
    elif "timezone" in table:
        raise ConfigError(f"{at}: timezone is the zone of a daily schedule; there is no schedule")
    for key, lo, hi in (("page_size", 1, 1000), ("retries", 1, 50)):
        if key in table:
            v = table[key]
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{at}: {key} must be a whole number from {lo} to {hi}")
            kw[key] = v
    if "timeout" in table:
        v = table["timeout"]
        if not isinstance(v, (int, float)) or not 0 < v <= 3600:
            raise ConfigError(f"{at}: timeout must be seconds, more than 0 and at most 3600")
        kw["timeout"] = float(v)
    for key in ("username", "password_env"):
        if key in table:
            kw[key] = str(table[key])
    if kw.get("password_env") and not kw.get("username"):
        raise ConfigError(f"{at}: password_env needs username")
    return Source(**kw)


def parse_sources(data: dict, where: str = "[harvest]", default_zone: str = "UTC") -> dict[str, Source]:
    tables = data.get("harvest", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}: must be a table of sources, [harvest.<library>]")
    out = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {name} must be a table ([harvest.{name}])")
        out[name] = parse_source(name, table, where, default_zone)
    return out


def load_sources(path: Path | None, default_zone: str = "UTC") -> dict[str, Source]:
    """The sources of a configuration file (none when it does not exist); a daily
    schedule without its own ``timezone`` is in ``default_zone`` (serve passes the
    network's, the zone of its profiles)."""
    if path is None or not Path(path).exists():
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    return parse_sources(data, f"{path}: [harvest]", default_zone)
