"""CQL index names, context sets, sort keys and facets, from ``config/indexes.toml``.

Front ends (SRU/CQL, later Z39.50) resolve the index names a client writes into
the *canonical* names of the query model (``title`` -> ``dc.title``) here, so that
every backend only ever sees names that exist in the configuration.

Name resolution (:meth:`IndexConfig.resolve`):

* ``None`` is the server choice index (``[defaults].server_choice``).
* Names are case-insensitive: ``DC.Title`` = ``dc.title``; the canonical spelling
  is the one in the configuration (``bath.possessingInstitution``).
* ``prefix.name``: a prefix declared in the query's own prefix map (CQL
  ``> foo = "uri"``) stands for the context set with that URI, so
  ``foo.title`` = ``dc.title`` when ``foo`` is bound to the dc URI; otherwise the
  prefix is a set name of ``[sets]``.
* An unprefixed name is looked up in the query's default context set when the
  query declared one (CQL ``> "uri"``), else in the sets of
  ``[defaults].unprefixed_sets``, first match wins, in that order.
* A name that cannot be resolved raises ``QueryError(16, name)`` ("Unsupported
  index"); a query prefix bound to a URI that is not a configured context set
  raises ``QueryError(15, uri)`` ("Unsupported context set").

The configuration file is an explicit path, else ``indexes.toml`` found by
:func:`config.locate` (``$UNIONCAT_CONFIG_DIR`` first, then the shipped ``config/``).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import config

from .query_model import QueryError

CONFIG_FILE = "indexes.toml"
ENV_CONFIG_DIR = config.ENV

# Key of a query's prefix map that holds the default context set URI (CQL '> "uri"').
DEFAULT_PREFIX = ""

# Sort key that is not an index: ranking (the default order of every search).
RELEVANCE = "relevance"


@dataclass(frozen=True)
class IndexDef:
    name: str  # canonical, e.g. "dc.title"
    fields: tuple[str, ...]
    title: str
    sort: str | None = None  # sort column, or None when the index is not sortable


@dataclass(frozen=True)
class FacetDef:
    name: str
    field: str
    index: str  # canonical index name
    title: str


@dataclass
class IndexConfig:
    sets: dict[str, str]  # prefix -> context set URI
    server_choice: str  # canonical name of the server choice index
    indexes: dict[str, IndexDef]  # canonical name -> definition (file order)
    sort: dict[str, str]  # sort name -> sort column
    facets: dict[str, FacetDef]
    unprefixed_sets: tuple[str, ...] = ()
    _by_lower: dict[str, IndexDef] = field(default_factory=dict, init=False, repr=False)
    _set_by_uri: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.sets = {k.lower(): v for k, v in self.sets.items()}
        for name, idef in self.indexes.items():
            prefix, dot, local = name.partition(".")
            if not dot or not local:
                raise ValueError(f"index {name!r}: canonical names are prefix.name")
            if prefix.lower() not in self.sets:
                raise ValueError(f"index {name!r}: context set {prefix!r} not in [sets]")
            key = name.lower()
            if key in self._by_lower:
                raise ValueError(f"index {name!r} defined twice (names are case-insensitive)")
            self._by_lower[key] = idef
        for prefix, uri in self.sets.items():
            self._set_by_uri.setdefault(uri.strip(), prefix)
        self.unprefixed_sets = tuple(s.lower() for s in self.unprefixed_sets)
        for s in self.unprefixed_sets:
            if s not in self.sets:
                raise ValueError(f"[defaults].unprefixed_sets: {s!r} not in [sets]")
        if self.server_choice.lower() not in self._by_lower:
            raise ValueError(f"server choice index {self.server_choice!r} is not configured")
        for fdef in self.facets.values():
            if fdef.index.lower() not in self._by_lower:
                raise ValueError(f"facet {fdef.name!r}: index {fdef.index!r} is not configured")

    # -- context sets ---------------------------------------------------------
    def set_for_uri(self, uri: str) -> str | None:
        """Short name of the configured context set with this URI, or None."""
        return self._set_by_uri.get(uri.strip())

    def candidates(
        self, index: str, prefixes: Mapping[str, str] | None = None
    ) -> list[str]:
        """Lower-cased ``set.name`` spellings ``index`` may stand for, in order of
        preference (whether configured or not).  Raises QueryError(15) for a query
        prefix bound to an unknown context set URI."""
        name = index.strip()
        prefix, dot, local = name.partition(".")
        if dot:
            prefix = prefix.lower()
            if not prefix or not local:
                return []
            if prefixes and prefix != DEFAULT_PREFIX and prefix in prefixes:
                set_name = self.set_for_uri(prefixes[prefix])
                if set_name is None:
                    raise QueryError(15, prefixes[prefix])
                return [f"{set_name}.{local.lower()}"]
            if prefix in self.sets:
                return [f"{prefix}.{local.lower()}"]
            return []
        if not name:
            return []
        local = name.lower()
        if prefixes and DEFAULT_PREFIX in prefixes:
            set_name = self.set_for_uri(prefixes[DEFAULT_PREFIX])
            if set_name is None:
                raise QueryError(15, prefixes[DEFAULT_PREFIX])
            return [f"{set_name}.{local}"]
        return [f"{s}.{local}" for s in self.unprefixed_sets]

    # -- indexes --------------------------------------------------------------
    def resolve(
        self, index: str | None, prefixes: Mapping[str, str] | None = None
    ) -> IndexDef:
        if index is None:
            return self._by_lower[self.server_choice.lower()]
        for cand in self.candidates(index, prefixes):
            idef = self._by_lower.get(cand)
            if idef is not None:
                return idef
        raise QueryError(16, index)

    def sort_column(
        self, index: str, prefixes: Mapping[str, str] | None = None
    ) -> str:
        """Sort column for a sort key written as an index name.

        ``dc.title`` / ``title`` -> ``"title"``; ``cql.relevance`` (or
        ``relevance``) -> ``"relevance"`` unless configured as an index;
        a name of ``[sort]`` that is not an index -> its column.  An unknown name
        raises QueryError(16, name) ("Unsupported index"); a configured index that
        has no sort column raises QueryError(80, name) ("Sort not supported").
        """
        try:
            idef = self.resolve(index, prefixes)
        except QueryError as err:
            if err.code != 16:
                raise
            if f"cql.{RELEVANCE}" in self.candidates(index, prefixes):
                return RELEVANCE
            column = self.sort.get(index.strip().lower())
            if column is not None:
                return column
            raise
        if idef.sort is None:
            raise QueryError(80, idef.name, f"index {idef.name} cannot be sorted on")
        return idef.sort


def _build(data: dict) -> IndexConfig:
    defaults = data.get("defaults", {})
    sets = dict(data.get("sets", {}))
    indexes: dict[str, IndexDef] = {}
    for name, spec in data.get("index", {}).items():
        indexes[name] = IndexDef(
            name=name,
            fields=tuple(spec.get("fields", ())),
            title=spec.get("title", name),
            sort=spec.get("sort"),
        )
    sort = {k.lower(): v for k, v in data.get("sort", {}).items()}
    for name, idef in indexes.items():
        if idef.sort is not None and idef.sort not in sort.values():
            raise ValueError(f"index {name!r}: sort column {idef.sort!r} not in [sort]")
    facets = {
        name: FacetDef(
            name=name,
            field=spec["field"],
            index=spec["index"],
            title=spec.get("title", name),
        )
        for name, spec in data.get("facet", {}).items()
    }
    return IndexConfig(
        sets=sets,
        server_choice=defaults.get("server_choice", "cql.serverChoice"),
        indexes=indexes,
        sort=sort,
        facets=facets,
        unprefixed_sets=tuple(defaults.get("unprefixed_sets", ())),
    )


def config_path(path: str | os.PathLike | None = None, file_name: str = CONFIG_FILE) -> Path:
    """The config file to read (indexes.toml unless ``file_name`` says another):
    ``path`` (a file, or a directory holding it), else :func:`config.locate` (file_name)."""
    if path is not None:
        p = Path(path)
        return p / file_name if p.is_dir() else p
    return config.locate(file_name)


@lru_cache(maxsize=8)
def _load(resolved: str) -> IndexConfig:
    with open(resolved, "rb") as fh:
        return _build(tomllib.load(fh))


def load_index_config(path: str | os.PathLike | None = None) -> IndexConfig:
    """The index configuration (cached per file)."""
    return _load(str(config_path(path).resolve()))
