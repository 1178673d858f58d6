"""The explain record: a ZeeRex 2.0 description (namespace
http://explain.z3950.org/dtd/2.0/) of the database, its CQL indexes, record
schemas and configuration, built from the index configuration
(indexers.index_config.IndexConfig) and the SRU settings.

Element order follows the ZeeRex 2.0 record structure: explain = serverInfo,
databaseInfo, indexInfo, schemaInfo, configInfo; indexInfo = set*, index*;
index = title, map (name with its context set), configInfo (the relations
that index really supports); configInfo = default*, setting*, supports*.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from lxml import etree

from indexers.query_model import RELATIONS

from .record_schemas import SCHEMAS, RecordSchema, resolve_schema, xml_safe

ZEEREX_NS = "http://explain.z3950.org/dtd/2.0/"
_Z = f"{{{ZEEREX_NS}}}"

# Relations in the order clients usually list them.
RELATION_ORDER = ("=", "==", "exact", "adj", "all", "any", "<", "<=", ">", ">=", "<>",
                  "within")
RELATION_MODIFIERS = ("ignoreCase", "respectCase")
PROX_MODIFIERS = ("distance", "unit=word", "ordered", "unordered")
MASKING_CHARACTERS = ("*", "?")


def _el(parent, _tag: str, text=None, **attrib):
    e = etree.SubElement(parent, _Z + _tag, {k: str(v) for k, v in attrib.items()
                                             if v is not None})
    if text is not None:
        e.text = xml_safe(str(text))
    return e


def _split_index(name: str) -> tuple[str, str]:
    prefix, dot, rest = name.partition(".")
    return (prefix, rest) if dot else ("", name)


def explain_record(
    config,
    settings,
    *,
    relations_by_index: Mapping[str, Iterable[str]] | None = None,
    schemas: Iterable[RecordSchema | str] | None = None,
    sort_indexes: Iterable[str] | None = None,
    facets: Mapping | None = None,
    version: str = "1.2",
) -> etree._Element:
    """The ZeeRex ``explain`` element.

    config: an IndexConfig (.indexes name -> IndexDef(name, fields, title, sort),
        .sets prefix -> URI, .facets name -> FacetDef).
    settings: sru.protocol.SRUSettings.
    relations_by_index: canonical index name -> relations that work on it
        (default: every CQL relation of SEARCH_SEMANTICS.md on every index).
    schemas: record schemas offered (default: all of sru.record_schemas).
    sort_indexes: indexes usable in sortby/sortKeys (default: those with a sort
        column in the config).
    facets: facets offered through SRU 2.0 facetLimit (default: config.facets).
    version: the SRU version written in serverInfo.
    """
    indexes = getattr(config, "indexes", {}) or {}
    sets = getattr(config, "sets", {}) or {}
    if schemas is None:
        schemas = list(SCHEMAS.values())
    offered = [resolve_schema(s) if isinstance(s, str) else s for s in schemas]
    if sort_indexes is None:
        sort_indexes = [n for n, d in indexes.items() if getattr(d, "sort", None)]
    sort_indexes = set(sort_indexes)
    if facets is None:
        facets = getattr(config, "facets", {}) or {}
    all_relations = [r for r in RELATION_ORDER if r in RELATIONS]

    root = etree.Element(_Z + "explain", nsmap={None: ZEEREX_NS}, authoritative="true")

    # serverInfo: where and how to reach the service
    si = _el(root, "serverInfo", protocol="SRU", version=version, transport="http",
             method="GET POST")
    _el(si, "host", settings.host)
    _el(si, "port", settings.port)
    _el(si, "database", settings.path.lstrip("/") or settings.database)

    # databaseInfo
    di = _el(root, "databaseInfo")
    _el(di, "title", settings.database_title, lang="en", primary="true")
    if settings.database_description:
        _el(di, "description", settings.database_description, lang="en", primary="true")

    # indexInfo: context sets, then one index per configured CQL index
    ii = _el(root, "indexInfo")
    used_sets = {_split_index(n)[0] for n in indexes}
    for prefix, uri in sets.items():
        if prefix in used_sets:
            _el(ii, "set", name=prefix, identifier=uri)
    for name, idef in indexes.items():
        prefix, short = _split_index(name)
        ix = _el(ii, "index", search="true", scan="true",
                 sort="true" if name in sort_indexes else "false", id=name)
        _el(ix, "title", getattr(idef, "title", None) or name, lang="en")
        m = _el(ix, "map", primary="true")
        _el(m, "name", short, set=prefix or None)
        rels = all_relations
        if relations_by_index is not None and name in relations_by_index:
            wanted = set(relations_by_index[name])
            rels = [r for r in RELATION_ORDER if r in wanted]
        if rels != all_relations:
            ci = _el(ix, "configInfo")
            for r in rels:
                _el(ci, "supports", r, type="relation")

    # schemaInfo
    sc = _el(root, "schemaInfo")
    for s in offered:
        e = _el(sc, "schema", identifier=s.uri, location=s.location, sort="false",
                retrieve="true", name=s.name)
        _el(e, "title", s.title, lang="en")

    # configInfo
    ci = _el(root, "configInfo")
    _el(ci, "default", settings.default_maximum_records, type="numberOfRecords")
    _el(ci, "default", settings.default_record_schema, type="retrieveSchema")
    _el(ci, "default", getattr(config, "server_choice", None) or "cql.serverChoice",
        type="index")
    _el(ci, "default", "=", type="relation")
    _el(ci, "default", settings.default_result_set_ttl, type="resultSetTTL")
    _el(ci, "default", settings.default_maximum_terms, type="numberOfTerms")
    _el(ci, "setting", settings.max_maximum_records, type="maximumRecords")
    _el(ci, "setting", settings.max_result_set_ttl, type="maximumResultSetTTL")
    _el(ci, "setting", settings.max_maximum_terms, type="maximumTerms")
    used = set(all_relations)
    if relations_by_index:
        used = set()
        for name in indexes:
            used.update(relations_by_index.get(name, all_relations))
    for r in RELATION_ORDER:
        if r in used:
            _el(ci, "supports", r, type="relation")
    for m in RELATION_MODIFIERS:
        _el(ci, "supports", m, type="relationModifier")
    _el(ci, "supports", "prox", type="proximity")
    for m in PROX_MODIFIERS:
        _el(ci, "supports", m, type="booleanModifier")
    for ch in MASKING_CHARACTERS:
        _el(ci, "supports", ch, type="maskingCharacter")
    _el(ci, "supports", "sortby", type="sort")
    _el(ci, "supports", "sortKeys", type="sort")
    _el(ci, "supports", "true", type="resultSets")
    for name, fdef in facets.items():
        _el(ci, "supports", getattr(fdef, "index", None) or name, type="facet")
    return root


def explain_bytes(*args, **kw) -> bytes:
    return etree.tostring(explain_record(*args, **kw), encoding="UTF-8")
