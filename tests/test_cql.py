"""CQL 1.2 parser (sru.cql) and index configuration (indexers.index_config)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from indexers.index_config import (  # noqa: E402
    IndexConfig,
    IndexDef,
    load_index_config,
)
from indexers.query_model import (  # noqa: E402
    COMPARISONS,
    RELATION_MODIFIERS,
    RELATIONS,
    Boolean,
    Clause,
    Modifier,
    Prox,
    Query,
    QueryError,
    SortKey,
    walk,
)
from sru.cql import MAX_BOOLEAN_OPERATORS, MAX_NESTING, parse_cql, to_cql  # noqa: E402

DC = "info:srw/cql-context-set/1/dc-v1.1"
BATH = "http://zing.z3950.org/cql/bath/2.0/"
REC = "info:srw/cql-context-set/2/rec-1.1"
CQLSET = "info:srw/cql-context-set/1/cql-v1.2"
SORTSET = "info:srw/cql-context-set/1/sort-v1.0"
SC = "cql.serverChoice"


def T(term, index=SC, relation="=", *mods):
    return Clause(index, relation, term, tuple(Modifier(m) for m in mods))


def Q(root, *sort):
    return Query(root, tuple(sort))


def AND(a, b):
    return Boolean("and", a, b)


def OR(a, b):
    return Boolean("or", a, b)


def NOT(a, b):
    return Boolean("not", a, b)


@pytest.fixture(scope="module")
def cfg() -> IndexConfig:
    return load_index_config()


# --------------------------------------------------------------------------- grammar
GRAMMAR = [
    # single terms -> server choice with "="
    ("fossil", Q(T("fossil"))),
    ('"fossil record"', Q(T("fossil record"))),
    ("  fossil  ", Q(T("fossil"))),
    ("京都", Q(T("京都"))),
    ('"日本の 図書館"', Q(T("日本の 図書館"))),
    # index relation term
    ("title = fossil", Q(T("fossil", "dc.title"))),
    ("title=fossil", Q(T("fossil", "dc.title"))),
    ('dc.title = "the fossil hunters"', Q(T("the fossil hunters", "dc.title"))),
    ("dc.title == whales", Q(T("whales", "dc.title", "=="))),
    ('dc.title exact "whales of the world"', Q(T("whales of the world", "dc.title", "exact"))),
    ('creator any "darwin wallace"', Q(T("darwin wallace", "dc.creator", "any"))),
    ('creator all "charles darwin"', Q(T("charles darwin", "dc.creator", "all"))),
    ('title adj "origin species"', Q(T("origin species", "dc.title", "adj"))),
    ("date > 1990", Q(T("1990", "dc.date", ">"))),
    ("date >= 1990", Q(T("1990", "dc.date", ">="))),
    ("date<1990", Q(T("1990", "dc.date", "<"))),
    ("date <= 1990", Q(T("1990", "dc.date", "<="))),
    ("date <> 1990", Q(T("1990", "dc.date", "<>"))),
    ('date within "1990 1999"', Q(T("1990 1999", "dc.date", "within"))),
    # named relations are case-insensitive and may carry the cql prefix
    ("title ADJ whales", Q(T("whales", "dc.title", "adj"))),
    ("title cql.adj whales", Q(T("whales", "dc.title", "adj"))),
    ("title CQL.Any whales", Q(T("whales", "dc.title", "any"))),
    ("title Exact whales", Q(T("whales", "dc.title", "exact"))),
    ("title scr whales", Q(T("whales", "dc.title", "="))),
    # index names: unprefixed sets in order, any case, quoted
    ("TITLE = a", Q(T("a", "dc.title"))),
    ("Dc.Title = a", Q(T("a", "dc.title"))),
    ('"dc.title" = a', Q(T("a", "dc.title"))),
    ("name = a", Q(T("a", "bath.name"))),
    ("isbn = 4000000000", Q(T("4000000000", "bath.isbn"))),
    ("identifier = x1", Q(T("x1", "dc.identifier"))),
    ("rec.identifier = x1", Q(T("x1", "rec.identifier"))),
    ("ndc = 010", Q(T("010", "local.ndc"))),
    ("anywhere = a", Q(T("a", "dc.anywhere"))),
    ("cql.anywhere = a", Q(T("a", "cql.anywhere"))),
    ("possessinginstitution = LIB1", Q(T("LIB1", "bath.possessingInstitution"))),
    ("serverChoice = a", Q(T("a"))),
    ("cql.serverchoice any a", Q(T("a", SC, "any"))),
    # keywords are ordinary words where a term is expected
    ("title = and", Q(T("and", "dc.title"))),
    ("title any sortby", Q(T("sortby", "dc.title", "any"))),
    ("and", Q(T("and"))),
    ('"and" and "or"', Q(AND(T("and"), T("or")))),
    ("prox prox prox", Q(Prox(T("prox"), T("prox")))),
    # relation modifiers
    ("title =/ignoreCase whales", Q(T("whales", "dc.title", "=", "ignorecase"))),
    ("title =/respectcase whales", Q(T("whales", "dc.title", "=", "respectcase"))),
    ("title =/cql.ignoreCase whales", Q(T("whales", "dc.title", "=", "ignorecase"))),
    ("title any/ignoreCase/ignoreCase whales", Q(T("whales", "dc.title", "any", "ignorecase"))),
    ("title any/relevant whales", Q(T("whales", "dc.title", "any"))),
    ("title =/masked wha*", Q(T("wha*", "dc.title"))),
    ("title =/word whales", Q(T("whales", "dc.title"))),
    ("title =/ignoreAccents whales", Q(T("whales", "dc.title"))),
    ("title = / ignoreCase whales", Q(T("whales", "dc.title", "=", "ignorecase"))),
    # parentheses
    ("(whales)", Q(T("whales"))),
    ("((whales))", Q(T("whales"))),
    ("(title = whales)", Q(T("whales", "dc.title"))),
    # special indexes
    ("cql.allRecords = 1", Q(Clause("cql.allRecords", "=", "1"))),
    ("cql.allrecords = yes", Q(Clause("cql.allRecords", "=", "1"))),
    ("allRecords = 1", Q(Clause("cql.allRecords", "=", "1"))),
    (
        "cql.allRecords = 1 not title = whales",
        Q(NOT(Clause("cql.allRecords", "=", "1"), T("whales", "dc.title"))),
    ),
    ('cql.resultSetId = "rs-0042"', Q(Clause("cql.resultSetId", "=", "rs-0042"))),
    (
        "cql.resultSetId = rs1 and title = whales",
        Q(AND(Clause("cql.resultSetId", "=", "rs1"), T("whales", "dc.title"))),
    ),
]


@pytest.mark.parametrize("text,expected", GRAMMAR, ids=[g[0] for g in GRAMMAR])
def test_grammar(text, expected, cfg):
    assert parse_cql(text, cfg) == expected


def test_default_config_is_loaded():
    assert parse_cql("title = x") == Q(T("x", "dc.title"))


# ------------------------------------------------------- precedence and associativity
a, b, c, d = T("a"), T("b"), T("c"), T("d")
PRECEDENCE = [
    ("a and b", AND(a, b)),
    ("a AND b", AND(a, b)),
    ("a And b", AND(a, b)),
    ("a or b and c", AND(OR(a, b), c)),
    ("a and b or c", OR(AND(a, b), c)),
    ("a not b or c", OR(NOT(a, b), c)),
    ("a or b not c", NOT(OR(a, b), c)),
    ("a and b and c and d", AND(AND(AND(a, b), c), d)),
    ("a and (b or c)", AND(a, OR(b, c))),
    ("(a and b) or (c and d)", OR(AND(a, b), AND(c, d))),
    ("a or (b and (c not d))", OR(a, AND(b, NOT(c, d)))),
    ("a prox b and c", AND(Prox(a, b), c)),
    ("a and b prox c", Prox(AND(a, b), c)),
    ("a or b prox/distance<3 c", Prox(OR(a, b), c, distance=3, comparison="<")),
]


@pytest.mark.parametrize("text,expected", PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
def test_precedence_left_associative_equal(text, expected, cfg):
    assert parse_cql(text, cfg) == Q(expected)


# --------------------------------------------------------------------------- prox
PROX = [
    ("a prox b", Prox(a, b)),
    ("a PROX b", Prox(a, b)),
    ("a prox/distance<3 b", Prox(a, b, distance=3, comparison="<")),
    ("a prox/distance=0/unit=word b", Prox(a, b, distance=0, comparison="=")),
    ("a prox/unit=WORD/distance>=2 b", Prox(a, b, distance=2, comparison=">=")),
    ("a prox/distance<>1 b", Prox(a, b, distance=1, comparison="<>")),
    ("a prox/ordered b", Prox(a, b, ordered=True)),
    ("a prox/unordered b", Prox(a, b, ordered=False)),
    ("a prox/cql.distance<=5/cql.unit=word/cql.ordered b", Prox(a, b, distance=5, ordered=True)),
    ("a prox/distance>2/ordered/ordered b", Prox(a, b, distance=2, comparison=">", ordered=True)),
    ('a prox/unit="word" b', Prox(a, b)),
]


@pytest.mark.parametrize("text,expected", PROX, ids=[p[0] for p in PROX])
def test_prox(text, expected, cfg):
    assert parse_cql(text, cfg) == Q(expected)


# ---------------------------------------------------------------------------- escapes
ESCAPES = [
    # escapes are kept as written, only the quotes go
    (r'"a\*b"', r"a\*b"),
    (r"a\*b", r"a\*b"),
    (r'"what\?"', r"what\?"),
    (r'"say \"hello\""', r"say \"hello\""),
    (r'"back\\slash"', r"back\\slash"),
    (r'"back\\"', "back\\\\"),
    ("wha*", "wha*"),
    ("wh?le", "wh?le"),
    ("^whale", "^whale"),
    # a backslash escapes the next character in unquoted words too
    (r"a\ b", r"a\ b"),
    (r"a\(b\)", r"a\(b\)"),
    (r"a\"b", r"a\"b"),
    ('"a(b)c=d<e>f/g"', "a(b)c=d<e>f/g"),
    ('"  spaced  "', "  spaced  "),
]


@pytest.mark.parametrize("text,term", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_terms_keep_escapes(text, term, cfg):
    assert parse_cql(text, cfg) == Q(T(term))
    assert parse_cql(f"title = {text}", cfg) == Q(T(term, "dc.title"))


# ------------------------------------------------------------------------ prefix maps
def test_prefix_map_renames_set(cfg):
    q = parse_cql(f'> foo = "{DC}" foo.title = whales', cfg)
    assert q == Q(T("whales", "dc.title"))


def test_prefix_map_several_and_case(cfg):
    q = parse_cql(f'> F="{DC}" > B = "{BATH}" f.TITLE = x and B.isbn = y', cfg)
    assert q == Q(AND(T("x", "dc.title"), T("y", "bath.isbn")))


def test_prefix_map_shadows_configured_name(cfg):
    # "dc" now means the rec set
    q = parse_cql(f'> dc = "{REC}" dc.identifier = 123', cfg)
    assert q == Q(T("123", "rec.identifier"))


def test_default_context_set(cfg):
    assert parse_cql(f'> "{REC}" identifier = 123', cfg) == Q(T("123", "rec.identifier"))
    assert parse_cql(f'> "{BATH}" title = x', cfg) == Q(T("x", "bath.title"))
    # the default set is strict: subject is not in rec
    with pytest.raises(QueryError) as e:
        parse_cql(f'> "{REC}" subject = x', cfg)
    assert e.value.code == 16


def test_default_context_set_and_prefixed_names(cfg):
    q = parse_cql(f'> "{REC}" identifier = 1 and dc.identifier = 2', cfg)
    assert q == Q(AND(T("1", "rec.identifier"), T("2", "dc.identifier")))


def test_prefix_scope_is_the_subquery(cfg):
    q = parse_cql(f'(> x = "{DC}" x.title = a) and title = b', cfg)
    assert q == Q(AND(T("a", "dc.title"), T("b", "dc.title")))
    with pytest.raises(QueryError) as e:
        parse_cql(f'(> x = "{DC}" x.title = a) and x.title = b', cfg)
    assert (e.value.code, e.value.details) == (16, "x.title")


def test_inner_prefix_overrides_outer(cfg):
    q = parse_cql(f'> x = "{DC}" x.identifier = 1 and (> x = "{REC}" x.identifier = 2) or x.identifier = 3', cfg)
    assert q == Q(
        OR(AND(T("1", "dc.identifier"), T("2", "rec.identifier")), T("3", "dc.identifier"))
    )


def test_inner_default_set_scoped(cfg):
    q = parse_cql(f'identifier = 1 and (> "{REC}" identifier = 2)', cfg)
    assert q == Q(AND(T("1", "dc.identifier"), T("2", "rec.identifier")))


def test_top_prefix_applies_to_sortby(cfg):
    q = parse_cql(f'> x = "{DC}" whales sortby x.date/sort.descending', cfg)
    assert q.sort == (SortKey("date", ascending=False),)


def test_prefix_for_modifier_sets(cfg):
    q = parse_cql(f'> c = "{CQLSET}" > s = "{SORTSET}" title c.any/c.ignoreCase x sortby title/s.descending', cfg)
    assert q == Q(T("x", "dc.title", "any", "ignorecase"), SortKey("title", ascending=False))


def test_unknown_context_set_uri_is_15(cfg):
    with pytest.raises(QueryError) as e:
        parse_cql('> x = "info:example/unknown" x.title = a', cfg)
    assert (e.value.code, e.value.details) == (15, "info:example/unknown")
    with pytest.raises(QueryError) as e:
        parse_cql('> "info:example/unknown" title = a', cfg)
    assert e.value.code == 15
    # an unused binding is harmless
    assert parse_cql('> x = "info:example/unknown" title = a', cfg) == Q(T("a", "dc.title"))


# ----------------------------------------------------------------------------- sortby
SORTS = [
    ("whales sortby title", (SortKey("title"),)),
    ("whales SORTBY dc.title/sort.descending", (SortKey("title", ascending=False),)),
    (
        "whales sortby dc.title/sort.descending dc.date/sort.ascending",
        (SortKey("title", ascending=False), SortKey("date")),
    ),
    ("whales sortby creator", (SortKey("creator"),)),
    ("whales sortby bath.name/sort.ascending", (SortKey("creator"),)),
    ("whales sortby date/descending", (SortKey("date", ascending=False),)),
    ("whales sortby date/sort.missingLow", (SortKey("date", missing_value="lowValue"),)),
    ("whales sortby date/sort.missingHigh", (SortKey("date", missing_value="highValue"),)),
    ("whales sortby date/sort.missingOmit/sort.descending", (SortKey("date", False, "omit"),)),
    ("whales sortby title/sort.ignoreCase", (SortKey("title"),)),
    ("whales sortby title/sort.respectCase", (SortKey("title"),)),
    ("whales sortby title/sort.ignoreAccents", (SortKey("title"),)),
    ("whales sortby cql.relevance", (SortKey("relevance"),)),
    ("whales sortby relevance/sort.descending", (SortKey("relevance", ascending=False),)),
    ('whales sortby "dc.title"', (SortKey("title"),)),
    ("(a or b) sortby title", (SortKey("title"),)),
]


@pytest.mark.parametrize("text,sort", SORTS, ids=[s[0] for s in SORTS])
def test_sortby(text, sort, cfg):
    assert parse_cql(text, cfg).sort == sort


def test_sortby_root_is_whole_query(cfg):
    q = parse_cql("a or b sortby title", cfg)
    assert q == Q(OR(a, b), SortKey("title"))


# ------------------------------------------------------------------------ diagnostics
DIAGNOSTICS = [
    # 10 Query syntax error
    ("", 10, "empty query"),
    ("   ", 10, "empty query"),
    ("(", 10, None),
    ("()", 10, None),
    ("(a", 10, "expected ')'"),
    ("a)", 10, "unbalanced ')'"),
    ("a and", 10, "end of query"),
    ("and and", 10, None),
    ("a and or b", 10, None),
    ("title =", 10, None),
    ("title = (a)", 10, None),
    ("= a", 10, None),
    ("a b", 10, None),
    ("title = a b", 10, "position 10"),
    ('"unterminated', 10, "unterminated quoted string starting at position 0"),
    ('title = "a\\"', 10, "unterminated"),
    ("a\\", 10, "backslash"),
    ("a sortby", 10, "sort key"),
    ("a sortby title b = c", 10, None),
    ("(a sortby title)", 10, None),
    ("a sortby title and b", 16, "and"),  # sort keys are terms, keywords included
    ("> dc", 10, None),
    (">", 10, None),
    ('> = "x" a', 10, None),
    (f'> a.b = "{DC}" a.b.title = x', 10, "prefix"),
    ('> x = "" title = a', 10, "URI"),
    ("a and > x = y b", 10, None),
    ("title =/ a", 10, None),
    ("title = /", 10, "modifier name"),
    ("title =/locale= a", 10, None),
    ("a prox/ b", 10, None),
    ("not a", 10, None),
    ("a not", 10, None),
    ("title = a / b", 10, None),
    # 15 Unsupported context set
    ('> x = "urn:nothing" x.title = a', 15, "urn:nothing"),
    # 16 Unsupported index
    ("femurlength > 2", 16, "femurlength"),
    ("foo.title = a", 16, "foo.title"),
    ("dc.nothing = a", 16, "dc.nothing"),
    ("dc. = a", 16, "dc."),
    (".title = a", 16, ".title"),
    ("and = a", 16, "and"),
    ("cql.relevance = a", 16, "cql.relevance"),
    # 19 Unsupported relation
    ("title encloses a", 19, "encloses"),
    ("title cql.encloses a", 19, "encloses"),
    ("title near a", 19, "near"),
    ("title dc.any a", 19, "dc.any"),
    ("title foo.adj a", 19, "foo.adj"),
    # 20 Unsupported relation modifier
    ("title =/fuzzy a", 20, "fuzzy"),
    ("title =/stem a", 20, "stem"),
    ("title =/phonetic a", 20, "phonetic"),
    ("title =/unmasked a", 20, "unmasked"),
    ("title =/regexp a", 20, "regexp"),
    ("title =/locale=ja a", 20, "locale=ja"),
    ("title =/string a", 20, "string"),
    ("date =/isoDate 2001", 20, "isoDate"),
    ("date =/number 2001", 20, "number"),
    ("title =/uri a", 20, "uri"),
    ("title =/respectAccents a", 20, "respectAccents"),
    ("title =/ignoreCase=1 a", 20, "ignoreCase=1"),
    ("title =/rel.algorithm=cori a", 20, "rel.algorithm=cori"),
    ("title =/dc.ignoreCase a", 20, "dc.ignoreCase"),
    ("cql.allRecords =/ignoreCase 1", 20, "ignoreCase"),
    ("cql.resultSetId =/ignoreCase r1", 20, "ignoreCase"),
    # 21 Unsupported combination of relation modifiers
    ("title =/ignoreCase/respectCase a", 21, "ignorecase/respectcase"),
    # 22 Unsupported combination of relation and index
    ("cql.allRecords <> 1", 22, "cql.allRecords <>"),
    ("cql.resultSetId any r1", 22, "cql.resultSetId any"),
    # 27 Empty term unsupported
    ('""', 27, None),
    ('title = ""', 27, None),
    ('title any "   "', 27, None),
    ('cql.resultSetId = ""', 27, None),
    # 40-46 proximity and boolean modifiers
    ("a prox/distance==2 b", 40, "=="),
    ("a prox/distance<two b", 41, "two"),
    ("a prox/distance<-1 b", 41, "-1"),
    ("a prox/distance<1.5 b", 41, "1.5"),
    ("a prox/distance<99999999999999 b", 41, None),
    ("a prox/distance b", 41, "distance"),
    ("a prox/unit=sentence b", 42, "sentence"),
    ("a prox/unit=paragraph b", 42, "paragraph"),
    ("a prox/unit=element b", 42, "element"),
    ("a prox/unit<word b", 42, None),
    ("a prox/ordered=yes b", 43, "ordered=yes"),
    ("a prox/distance<2/distance<3 b", 44, None),
    ("a prox/unit=word/unit=word b", 44, None),
    ("a prox/ordered/unordered b", 44, None),
    ("a and/rel.combine=sum b", 46, "rel.combine=sum"),
    ("a or/foo b", 46, "foo"),
    ("a not/distance<2 b", 46, "distance<2"),
    ("a prox/window=3 b", 46, "window=3"),
    ("a prox/dc.distance<3 b", 46, "dc.distance<3"),
    # sort diagnostics
    ("a sortby nothing", 16, "nothing"),
    ("a sortby foo.title", 16, "foo.title"),
    ("a sortby subject", 80, "dc.subject"),
    ("a sortby dc.identifier", 80, "dc.identifier"),
    ("a sortby title/sort.sideways", 80, "sort.sideways"),
    ("a sortby title/dc.descending", 80, "dc.descending"),
    ("a sortby title/sort.locale=ja_JP", 82, "sort.locale=ja_JP"),
    ("a sortby title/sort.unicodeCollation=x", 82, None),
    ("a sortby title/sort.respectAccents", 82, "sort.respectAccents"),
    ("a sortby title/sort.ascending/sort.descending", 90, "sort.descending"),
    ("a sortby title/sort.ascending=1", 90, None),
    ("a sortby title/sort.ignoreCase=1", 91, None),
    ("a sortby title/sort.ignoreCase/sort.respectCase", 91, None),
    ("a sortby date/sort.missingFail", 92, "sort.missingFail"),
    ("a sortby date/sort.missingValue=0", 92, "sort.missingValue=0"),
    ("a sortby date/sort.missingLow/sort.missingHigh", 92, None),
]


@pytest.mark.parametrize("text,code,details", DIAGNOSTICS, ids=[f"{d[1]}:{d[0]}" for d in DIAGNOSTICS])
def test_diagnostics(text, code, details, cfg):
    with pytest.raises(QueryError) as e:
        parse_cql(text, cfg)
    assert e.value.code == code, e.value
    if details is not None:
        assert details in e.value.details


def test_syntax_errors_win_over_semantic_ones(cfg):
    # unknown index, unsupported relation, but also a syntax error later on
    with pytest.raises(QueryError) as e:
        parse_cql("foo encloses x and (", cfg)
    assert e.value.code == 10


def test_non_text_query(cfg):
    with pytest.raises(QueryError) as e:
        parse_cql(None, cfg)  # type: ignore[arg-type]
    assert e.value.code == 10


# ------------------------------------------------------------------------------ limits
def test_nesting_limit(cfg):
    deep = "(" * MAX_NESTING + "whales" + ")" * MAX_NESTING
    assert parse_cql(deep, cfg) == Q(T("whales"))
    too_deep = "(" + deep + ")"
    with pytest.raises(QueryError) as e:
        parse_cql(too_deep, cfg)
    assert e.value.code == 10 and "deeply nested" in e.value.details


def test_nesting_limit_with_operators(cfg):
    n = MAX_NESTING
    text = "".join(f"t{i} and (" for i in range(n)) + "z" + ")" * n
    q = parse_cql(text, cfg)
    assert sum(1 for _ in walk(q.root)) == 2 * n + 1
    assert parse_cql(to_cql(q, cfg), cfg) == q


def test_absurd_nesting_is_a_diagnostic_not_a_crash(cfg):
    with pytest.raises(QueryError) as e:
        parse_cql("(" * 100_000 + "a" + ")" * 100_000, cfg)
    assert e.value.code == 10


def test_boolean_operator_limit(cfg):
    ok = " or ".join(f"t{i}" for i in range(MAX_BOOLEAN_OPERATORS + 1))
    q = parse_cql(ok, cfg)
    assert sum(isinstance(n, Boolean) for n in walk(q.root)) == MAX_BOOLEAN_OPERATORS
    with pytest.raises(QueryError) as e:
        parse_cql(ok + " or one_more", cfg)
    assert (e.value.code, e.value.details) == (38, str(MAX_BOOLEAN_OPERATORS))


def test_huge_queries_are_fast(cfg):
    start = time.process_time()          # CPU of this process: other processes' load does not count
    for text in (
        " and ".join(["x"] * 50_000),
        "a" * 500_000,
        '"' + "\\" * 200_001,
        "title =" + "/ignoreCase" * 20_000 + " x",
        "x sortby" + " title" * 20_000,
    ):
        try:
            parse_cql(text, cfg)
        except QueryError:
            pass
    assert time.process_time() - start < 10


# ------------------------------------------------------------------------------ to_cql
CANONICAL = [
    ("whales", "whales"),
    ("cql.serverChoice = whales", "whales"),
    ('"a b"', '"a b"'),
    ("TITLE = whales", "dc.title = whales"),
    ('"and"', '"and"'),
    ("title cql.adj x", "dc.title adj x"),
    ("title =/IGNORECASE x", "dc.title =/ignoreCase x"),
    ("(a or b) and c", "a or b and c"),
    ("a or (b and c)", "a or (b and c)"),
    ("a prox/unit=word/distance<=1/unordered b", "a prox b"),
    ("a prox/distance<3/ordered b", "a prox/distance<3/ordered b"),
    ("a sortby date", "a sortby dc.date/sort.ascending"),
    ("a sortby name/sort.descending/sort.missingLow", "a sortby dc.creator/sort.descending/sort.missingLow"),
    ("a sortby relevance", "a sortby cql.relevance/sort.ascending"),
    ("allrecords = 1", "cql.allRecords = 1"),
    (r'"x\"y"', r'"x\"y"'),
    (r"a\*", r"a\*"),
]


@pytest.mark.parametrize("text,canonical", CANONICAL, ids=[c[0] for c in CANONICAL])
def test_to_cql_canonical(text, canonical, cfg):
    q = parse_cql(text, cfg)
    assert to_cql(q, cfg) == canonical
    assert parse_cql(canonical, cfg) == q


def test_to_cql_always_parses_hand_built_terms(cfg):
    # Terms not in escaped form still serialize to something parseable.
    for term in ['a"b', "a\\", '"', "\\", "x y\\"]:
        text = to_cql(Q(T(term, "dc.title")), cfg)
        assert isinstance(parse_cql(text, cfg), Query)


# ----------------------------------------------------------------------- index config
def test_index_config_contents(cfg):
    assert cfg.server_choice == "cql.serverChoice"
    assert cfg.sets["dc"] == DC
    assert cfg.indexes["dc.title"] == IndexDef("dc.title", ("title",), "Title", "title")
    assert cfg.indexes["dc.subject"].sort is None
    assert cfg.sort == {"title": "title", "creator": "creator", "date": "date"}
    assert cfg.facets["library"].field == "library"
    assert cfg.facets["library"].index == "bath.possessingInstitution"
    assert cfg.facets["date"].title == "Year"


def test_resolve(cfg):
    assert cfg.resolve(None).name == "cql.serverChoice"
    assert cfg.resolve("title").name == "dc.title"
    assert cfg.resolve("dc.title").name == "dc.title"
    assert cfg.resolve("BATH.TITLE").name == "bath.title"
    assert cfg.resolve("bath.possessinginstitution").name == "bath.possessingInstitution"
    assert cfg.resolve("foo.title", {"foo": DC}).name == "dc.title"
    assert cfg.resolve("identifier", {"": REC}).name == "rec.identifier"
    for bad in ("nothing", "foo.title", "", "dc.", "cql.allRecords"):
        with pytest.raises(QueryError) as e:
            cfg.resolve(bad)
        assert e.value.code == 16


def test_sort_column(cfg):
    assert cfg.sort_column("dc.title") == "title"
    assert cfg.sort_column("title") == "title"
    assert cfg.sort_column("bath.author") == "creator"
    assert cfg.sort_column("dc.date") == "date"
    assert cfg.sort_column("cql.relevance") == "relevance"
    assert cfg.sort_column("x.relevance", {"x": CQLSET}) == "relevance"
    with pytest.raises(QueryError) as e:
        cfg.sort_column("dc.subject")
    assert e.value.code == 80
    with pytest.raises(QueryError) as e:
        cfg.sort_column("nothing")
    assert e.value.code == 16


def test_load_index_config_paths(tmp_path, monkeypatch):
    from indexers import index_config

    default = load_index_config()
    assert load_index_config() is default  # cached
    text = (ROOT / "config" / "indexes.toml").read_text(encoding="utf-8")
    (tmp_path / "indexes.toml").write_text(
        text + '\n[index."local.shelf"]\nfields = ["shelf"]\ntitle = "Shelf mark"\n',
        encoding="utf-8",
    )
    explicit = load_index_config(tmp_path / "indexes.toml")
    assert "local.shelf" in explicit.indexes and "local.shelf" not in default.indexes
    assert load_index_config(tmp_path) is explicit
    monkeypatch.setenv(index_config.ENV_CONFIG_DIR, str(tmp_path))
    assert load_index_config() is explicit
    assert parse_cql("shelf = A12", explicit) == Q(T("A12", "local.shelf"))


def test_configured_allrecords_wins(tmp_path):
    text = (ROOT / "config" / "indexes.toml").read_text(encoding="utf-8")
    (tmp_path / "indexes.toml").write_text(
        text + '\n[index."cql.allRecords"]\nfields = ["title"]\ntitle = "All"\n',
        encoding="utf-8",
    )
    cfg2 = load_index_config(tmp_path)
    assert parse_cql("cql.allRecords any x", cfg2) == Q(T("x", "cql.allRecords", "any"))


# ---------------------------------------------------------------- hypothesis properties
CQL_ALPHABET = st.sampled_from(
    list('()=<>/"\\ *?^.') + ["and", "or", "not", "prox", "sortby", "title", "dc.", "cql.",
                              "sort.", "any", "adj", "within", "encloses", "distance", "unit",
                              "word", "ordered", "ignoreCase", "descending", "1", "x", "図書館",
                              "\t", "==", "<>", "> x = \"info:srw/cql-context-set/1/dc-v1.1\"",
                              "x.title", "allRecords", "resultSetId", "relevance"]
)
cql_like_text = st.lists(CQL_ALPHABET, max_size=40).map(lambda parts: "".join(
    p if p in "()=<>/\"\\" else f" {p} " if len(p) > 1 else p for p in parts))

# Syntactically plausible CQL built from the grammar, with names and modifiers
# drawn from both the supported and the unsupported sets: exercises the semantic
# checks rather than the tokenizer.
_names = st.sampled_from(
    ["title", "dc.title", "DC.Creator", "x.title", "foo.bar", "date", "bath.isbn", "subject",
     "cql.allRecords", "allrecords", "cql.resultSetId", "identifier", "s.title", '"dc.title"',
     "cql.relevance", "nothing"]
)
_rels = st.sampled_from(
    ["=", "==", "<>", "<", ">", "<=", ">=", "adj", "all", "any", "within", "exact", "encloses",
     "cql.adj", "scr", "near", "x.any"]
)
_mod = st.tuples(
    st.sampled_from(["ignoreCase", "respectCase", "masked", "relevant", "fuzzy", "locale",
                     "distance", "unit", "ordered", "unordered", "sort.descending",
                     "sort.missingLow", "missingFail", "x.ignoreCase", "cql.distance"]),
    st.sampled_from(["", "=", "<", "<=", "=="]),
    st.sampled_from(["1", "3", "word", "sentence", "-2", "ja"]),
).map(lambda t: "/" + t[0] + (t[1] + t[2] if t[1] else ""))
_mods = st.lists(_mod, max_size=3).map("".join)
_words = st.sampled_from(["whale", '"blue whale"', '"and"', "wh*", r'"\"x"', '""', "1990",
                          '"1990 2000"', "図書館", "and", "sortby"])
_prefix = st.sampled_from(
    ["", '> x = "info:srw/cql-context-set/1/dc-v1.1" ', '> s = "info:srw/cql-context-set/1/sort-v1.0" ',
     '> "info:srw/cql-context-set/2/rec-1.1" ', '> x = "urn:unknown" ']
)


def _cql_query(depth=2):
    clause = st.one_of(
        _words,
        st.tuples(_names, _rels, _mods, _words).map(lambda t: f"{t[0]} {t[1]}{t[2]} {t[3]}"),
    )
    if depth == 0:
        return clause
    sub = st.tuples(_prefix, _cql_query(depth - 1)).map(lambda t: f"({t[0]}{t[1]})")
    operand = st.one_of(clause, clause, sub)
    op = st.tuples(st.sampled_from(["and", "OR", "not", "prox"]), _mods).map("".join)
    return st.tuples(operand, st.lists(st.tuples(op, operand), max_size=3)).map(
        lambda t: t[0] + "".join(f" {o} {x}" for o, x in t[1])
    )


grammar_text = st.tuples(
    _prefix,
    _cql_query(),
    st.lists(st.tuples(_names, _mods).map("".join), max_size=3),
).map(lambda t: t[0] + t[1] + (" sortby " + " ".join(t[2]) if t[2] else ""))

KNOWN_CODES = {10, 15, 16, 19, 20, 21, 22, 27, 38, 40, 41, 42, 43, 44, 46, 80, 82, 90, 91, 92}


def _parse_or_diagnostic(text, cfg):
    try:
        q = parse_cql(text, cfg)
    except QueryError as err:
        assert err.code in KNOWN_CODES
        assert isinstance(err.details, str)
        return None
    assert isinstance(q, Query)
    return q


def _check_model(q: Query, cfg: IndexConfig):
    for node in walk(q.root):
        if isinstance(node, Clause):
            assert node.relation in RELATIONS
            assert node.index in cfg.indexes or node.index in ("cql.allRecords", "cql.resultSetId")
            assert all(m.name in RELATION_MODIFIERS for m in node.modifiers)
            assert node.term.strip()
        elif isinstance(node, Prox):
            assert node.comparison in COMPARISONS and node.unit == "word"
        else:
            assert node.op in ("and", "or", "not")
    for key in q.sort:
        assert key.index in ("title", "creator", "date", "relevance")
        assert key.missing_value in ("highValue", "lowValue", "omit")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_gives_query_or_diagnostic(cfg, text):
    q = _parse_or_diagnostic(text, cfg)
    if q is not None:
        _check_model(q, cfg)
        assert parse_cql(to_cql(q, cfg), cfg) == q


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cql_like_text)
def test_cql_like_text_gives_query_or_diagnostic(cfg, text):
    q = _parse_or_diagnostic(text, cfg)
    if q is not None:
        _check_model(q, cfg)
        assert parse_cql(to_cql(q, cfg), cfg) == q


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammar_text)
def test_grammar_generated_text_gives_query_or_diagnostic(cfg, text):
    q = _parse_or_diagnostic(text, cfg)
    if q is not None:
        _check_model(q, cfg)
        assert parse_cql(to_cql(q, cfg), cfg) == q


# Terms in escaped form: plain characters other than \ and ", or \ + any character;
# not blank.
_plain = st.characters(blacklist_characters='\\"', blacklist_categories=("Cs",))
_escape = st.characters(blacklist_categories=("Cs",)).map(lambda ch: "\\" + ch)
terms = (
    st.lists(st.one_of(_plain, _escape, st.sampled_from(["*", "?", "^", " ", "and", "x"])),
             min_size=1, max_size=12)
    .map("".join)
    .filter(lambda t: t.strip() != "")
)


@st.composite
def clauses(draw, index_names):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return Clause("cql.allRecords", "=", "1")
    if kind == 1:
        return Clause("cql.resultSetId", "=", draw(terms))
    index = draw(st.sampled_from(index_names))
    relation = draw(st.sampled_from(sorted(RELATIONS)))
    mods = draw(st.sampled_from([(), (Modifier("ignorecase"),), (Modifier("respectcase"),)]))
    return Clause(index, relation, draw(terms), mods)


def trees(index_names):
    def extend(children):
        booleans = st.builds(Boolean, st.sampled_from(["and", "or", "not"]), children, children)
        proxes = st.builds(
            Prox,
            children,
            children,
            distance=st.integers(0, 50),
            comparison=st.sampled_from(sorted(COMPARISONS)),
            unit=st.just("word"),
            ordered=st.booleans(),
        )
        return st.one_of(booleans, proxes)

    return st.recursive(clauses(index_names), extend, max_leaves=12)


sort_keys = st.builds(
    SortKey,
    index=st.sampled_from(["title", "creator", "date", "relevance"]),
    ascending=st.booleans(),
    missing_value=st.sampled_from(["highValue", "lowValue", "omit"]),
)


queries = st.builds(
    Query, trees(sorted(load_index_config().indexes)), st.lists(sort_keys, max_size=3).map(tuple)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries)
def test_round_trip_generated_trees(cfg, q):
    text = to_cql(q, cfg)
    assert parse_cql(text, cfg) == q, text
    assert to_cql(parse_cql(text, cfg), cfg) == text


def test_recursion_error_becomes_a_diagnostic(cfg):
    # Even a caller with little stack left gets a QueryError, not RecursionError.
    depth = MAX_NESTING
    text = "(" * depth + "a" + ")" * depth
    limit = sys.getrecursionlimit()

    def call_deep(n):
        if n:
            return call_deep(n - 1)
        return parse_cql(text, cfg)

    try:
        sys.setrecursionlimit(400)
        with pytest.raises(QueryError) as e:
            call_deep(100)
    finally:
        sys.setrecursionlimit(limit)
    assert e.value.code == 10
