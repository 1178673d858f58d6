"""The NCIP responder's configuration: the ``[ncip]`` section of the deployment's TOML
file (``--config`` or ``DATA_DIR/unioncat.toml``), beside ``[ill]``.

    [ncip]
    agency_id = "JP-1000000"              # our agency as NCIP peers address it (ToAgencyId);
                                          # default: the value of [ill].agency_id

    [ncip.clients."RS-HIROSHIMA"]         # the client's agency id (its FromAgencyId)
    name = "ReShare broker"
    token_env = "UNIONCAT_NCIP_TOKEN_RS"  # the bearer token it must send (or token = "...")
    systems = ["hiroshima"]               # the library systems it may act on (required)
    library = "ill-broker"                # library code of the copies it brings in (AcceptItem);
                                          # default "ill-<agency id>"

Every key is checked as in ``[ill]`` (:mod:`connectors.iso18626.config`): an unknown
key, a wrong type or a missing value is a :class:`ConfigError` naming where; secrets
may come from the environment (``*_env`` keys) so that the file can be shared.
"""
from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.iso18626.config import ConfigError, Section

__all__ = ["ConfigError", "NcipClient", "NcipConfig", "load"]


@dataclass(frozen=True)
class NcipClient:
    """An external system allowed to drive our circulation over NCIP (an ILL broker)."""
    agency: str                                   # its agency id value
    token: str = field(repr=False)
    systems: frozenset[str]
    name: str = ""
    library: str | None = None

    @property
    def code(self) -> str:
        return self.agency

    @property
    def actor(self) -> str:
        """How the audit trail names what it did (role staff)."""
        return f"ncip:{self.agency}"

    def accepts(self, token: str | None) -> bool:
        """``token`` is this client's credential (constant time)."""
        if not token:
            return False
        return hmac.compare_digest(self.token.encode(), token.encode())


@dataclass(frozen=True)
class NcipConfig:
    agency: str                                   # our agency id value
    clients: dict[str, NcipClient]

    def client(self, agency: str | None) -> NcipClient | None:
        return self.clients.get((agency or "").strip())

    def client_with(self, token: str | None) -> NcipClient | None:
        """The client whose credential ``token`` is (every one is compared)."""
        found = None
        for c in self.clients.values():
            if c.accepts(token):
                found = found or c
        return found


def load(data: dict, *, env: Mapping[str, str] | None = None) -> NcipConfig | None:
    """The NCIP configuration of a parsed TOML document (None without an ``[ncip]`` section)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if "ncip" not in data:
        return None
    top = Section(data["ncip"], "ncip")
    agency = top.get("agency_id", str, None)
    if agency is None:
        ill = data.get("ill")
        ill_agency = ill.get("agency_id") if isinstance(ill, dict) else None
        if not isinstance(ill_agency, str) or ":" not in ill_agency:
            raise ConfigError("ncip.agency_id: required (or an [ill] agency_id to take it from)")
        agency = ill_agency.split(":", 1)[1]
    agency = agency.strip()
    if not agency:
        raise ConfigError("ncip.agency_id: must not be empty")
    clients: dict[str, NcipClient] = {}
    for value, table in top.get("clients", dict, {}).items():
        sec = Section(table, f"ncip.clients.{value}")
        if not value.strip() or value != value.strip():
            raise ConfigError(f"{sec.where}: an agency id without surrounding spaces")
        token = sec.secret("token", environ)
        if not token:
            raise ConfigError(f"{sec.where}: token (or token_env) is required: a client is accepted only "
                              f"with its credential")
        systems = sec.words("systems")
        if not systems:
            raise ConfigError(f"{sec.where}.systems: name the library systems this client may act on")
        clients[value] = NcipClient(agency=value, token=token, systems=systems, name=sec.get("name", str, value),
                                    library=sec.get("library", str, None))
        sec.done()
        if value == agency:
            raise ConfigError(f"{sec.where}: a client cannot be our own agency")
    top.done()
    tokens = [c.token for c in clients.values()]
    if len(set(tokens)) != len(tokens):
        raise ConfigError("ncip.clients: every client needs its own token")
    return NcipConfig(agency=agency, clients=clients)
