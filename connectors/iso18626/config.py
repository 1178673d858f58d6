"""Our ILL agency and its partners, as data: the ``[ill]`` section of the
deployment's TOML file (``--config`` or ``DATA_DIR/unioncat.toml``).

    [ill]
    agency_id = "ISIL:JP-1000000"          # type:value
    name = "広島市立図書館"
    callback_url = "https://ill.example.jp/iso18626"   # where partners send messages
    systems = ["hiroshima"]                # our library systems in ILL (default: every one)
    answer_days = 7                        # a supplier silent this long: next in the rota
    due_days = 28                          # our loans to partners
    shelf_days = 7                         # how long a partner's copy waits on our hold shelf

    [ill.partners."JP-1002345"]            # the partner's agency id value
    agency_type = "ISIL"
    name = "広島大学図書館"
    library = "hiroshima-u"                # its library code in the union catalog (holdings)
    url = "https://ill.hiroshima-u.ac.jp/iso18626"
    token_env = "UNIONCAT_ILL_TOKEN_HU"    # the bearer token we send (or token = "...")
    accept_token_env = "UNIONCAT_ILL_ACCEPT_HU"  # the one it must send us (or accept_token)
    lends = true                           # we may borrow from it
    borrows = true                         # it may borrow from us
    materials = ["book"]                   # what it lends (empty: everything)
    rota = 1                               # its place in the rota (lower first)
    available = true                       # false: skipped by the rota for now
    dialect = "standard"                   # see dialects.py
    availability_sru = "https://…/sru"     # optional: its catalog's SRU (recordSchema opac), asked
                                           # whether a copy is in before the rota is ordered

Every key is checked; an unknown key, a wrong type or a missing required value is a
:class:`ConfigError` naming where.  Secrets may come from the environment
(``*_env`` keys) so that the file can be shared.
"""
from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .dialects import DIALECTS, Dialect
from .model import AgencyId


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Partner:
    agency: AgencyId
    name: str
    url: str
    library: str | None = None
    token: str | None = field(default=None, repr=False)
    accept_token: str | None = field(default=None, repr=False)
    lends: bool = True
    borrows: bool = True
    materials: frozenset[str] = frozenset()
    rota: int = 100
    available: bool = True
    dialect: Dialect = DIALECTS["standard"]
    availability_sru: str | None = None    # its catalog's SRU base, answering the `opac` schema

    @property
    def code(self) -> str:
        """How staff and the API name the partner: its agency id value."""
        return self.agency.agency_id_value

    def lends_material(self, material_type: str | None) -> bool:
        return not self.materials or (material_type or "book") in self.materials

    def accepts(self, token: str | None) -> bool:
        """``token`` is this partner's credential (constant time)."""
        if not self.accept_token or not token:
            return False
        return hmac.compare_digest(self.accept_token.encode(), token.encode())


@dataclass(frozen=True)
class IllConfig:
    agency: AgencyId
    name: str
    callback_url: str
    partners: dict[str, Partner]
    systems: frozenset[str] = frozenset()   # empty: every system of the network
    answer_days: int = 7
    due_days: int = 28
    shelf_days: int = 7

    def partner(self, agency: AgencyId | None) -> Partner | None:
        """The partner of that agency id (type compared without case)."""
        if agency is None:
            return None
        p = self.partners.get(agency.agency_id_value)
        return p if p is not None and p.agency.key == agency.key else None

    def serves(self, system: str) -> bool:
        return not self.systems or system in self.systems

    def rota(self, *, libraries: set[str] | None = None, material_type: str | None = None,
             only: str | None = None) -> list[Partner]:
        """The partners to ask, in rota order: those that lend, are available, lend this
        material and (when ``libraries`` is given) hold the title in the union catalog."""
        out = []
        for p in sorted(self.partners.values(), key=lambda p: (p.rota, p.code)):
            if only is not None and p.code != only:
                continue
            if not (p.lends and p.available and p.lends_material(material_type)):
                continue
            if libraries is not None and (p.library is None or p.library not in libraries):
                continue
            out.append(p)
        return out


def parse_agency(text: str, where: str) -> AgencyId:
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{where}: an agency id is written TYPE:VALUE (e.g. ISIL:JP-1000000)")
    t, v = (p.strip() for p in text.split(":", 1))
    if not t or not v:
        raise ConfigError(f"{where}: an agency id is written TYPE:VALUE (e.g. ISIL:JP-1000000)")
    return AgencyId.of(t, v)


class _Section:
    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table")
        self.data, self.where, self.used = data, where, set[str]()

    def get(self, key: str, typ, default=..., *, env: dict | None = None):
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ConfigError(f"{self.where}.{key}: required")
            return default
        value = self.data[key]
        if typ is int and isinstance(value, bool) or not isinstance(value, typ):
            raise ConfigError(f"{self.where}.{key}: expected {getattr(typ, '__name__', typ)}")
        return value

    def secret(self, key: str, env: Mapping[str, str]) -> str | None:
        value = self.get(key, str, None)
        var = self.get(f"{key}_env", str, None)
        if value is not None and var is not None:
            raise ConfigError(f"{self.where}: give {key} or {key}_env, not both")
        if var is not None:
            value = env.get(var)
            if not value:
                raise ConfigError(f"{self.where}.{key}_env: the environment variable {var} is not set")
        return value

    def words(self, key: str) -> frozenset[str]:
        value = self.get(key, list, [])
        if not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.where}.{key}: expected a list of names")
        return frozenset(value)

    def done(self) -> None:
        unknown = set(self.data) - self.used
        if unknown:
            raise ConfigError(f"{self.where}: unknown key(s) {', '.join(sorted(unknown))}")


Section = _Section   # the same checked reading for the [ncip] section (connectors/ncip/config.py)


def _url(value: str, where: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: expected an http(s) URL")
    return value


def load(data: dict, *, env: Mapping[str, str] | None = None) -> IllConfig | None:
    """The ILL configuration of a parsed TOML document (None without an ``[ill]`` section)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if "ill" not in data:
        return None
    top = _Section(data["ill"], "ill")
    agency = parse_agency(top.get("agency_id", str), "ill.agency_id")
    partners: dict[str, Partner] = {}
    raw = top.get("partners", dict, {})
    for value, table in raw.items():
        sec = _Section(table, f"ill.partners.{value}")
        dialect_name = sec.get("dialect", str, "standard")
        if dialect_name not in DIALECTS:
            raise ConfigError(f"{sec.where}.dialect: one of {', '.join(sorted(DIALECTS))}")
        p = Partner(
            agency=AgencyId.of(sec.get("agency_type", str, "ISIL"), value),
            name=sec.get("name", str, value),
            url=_url(sec.get("url", str), f"{sec.where}.url"),
            library=sec.get("library", str, None),
            token=sec.secret("token", environ),
            accept_token=sec.secret("accept_token", environ),
            lends=sec.get("lends", bool, True),
            borrows=sec.get("borrows", bool, True),
            materials=sec.words("materials"),
            rota=sec.get("rota", int, 100),
            available=sec.get("available", bool, True),
            dialect=DIALECTS[dialect_name],
            availability_sru=_url(v, f"{sec.where}.availability_sru") if (v := sec.get(
                "availability_sru", str, None)) else None)
        sec.done()
        if p.agency.key == agency.key:
            raise ConfigError(f"{sec.where}: a partner cannot be our own agency")
        if not p.accept_token:
            raise ConfigError(f"{sec.where}: accept_token (or accept_token_env) is required: "
                              f"a partner's messages are accepted only with its credential")
        partners[value] = p
    cfg = IllConfig(
        agency=agency, name=top.get("name", str, agency.agency_id_value),
        callback_url=_url(top.get("callback_url", str), "ill.callback_url"), partners=partners,
        systems=top.words("systems"),
        answer_days=_positive(top, "answer_days", 7), due_days=_positive(top, "due_days", 28),
        shelf_days=_positive(top, "shelf_days", 7))
    top.done()
    return cfg


def _positive(sec: _Section, key: str, default: int) -> int:
    value = sec.get(key, int, default)
    if value < 1:
        raise ConfigError(f"{sec.where}.{key}: must be at least 1")
    return value
