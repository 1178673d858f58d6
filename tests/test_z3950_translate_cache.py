"""A repeated RPN query skips its translation (gateway/z3950_server.py, ``_to_query``;
issue 18): the same query model, the same hits, and the same diagnostic for a query that
cannot be translated, every time; the memory is bounded."""
from __future__ import annotations

import pytest

from catalog_builder import CatalogUnderTest, rec
from gateway import z3950_server as zs
from search.route import make_route
from z3950 import rpn
from z3950.diagnostics import Bib1Diagnostic


@pytest.fixture()
def svc(tmp_path):
    c = CatalogUnderTest(tmp_path / "data")
    c.load("iizuka", [rec(f"a{i}", title=f"harbour lights {i}") for i in range(3)] + [rec("b1", title="mountain")])
    return zs.make_service(make_route(c.catalog)), c


def test_a_repeated_query_is_translated_once_and_answers_the_same(svc, monkeypatch):
    service, c = svc
    calls = []
    real = rpn.rpn_to_query

    def counting(*a):
        calls.append(a[0])
        return real(*a)
    monkeypatch.setattr(rpn, "rpn_to_query", counting)
    first = service._to_query(rpn.parse_pqf("@attr 1=4 harbour"))
    again = service._to_query(rpn.parse_pqf("@attr 1=4 harbour"))       # an equal query, a new object
    assert len(calls) == 1 and again == first == real(rpn.parse_pqf("@attr 1=4 harbour"), service.config,
                                                       service.bib1)
    other = service._to_query(rpn.parse_pqf("@attr 1=4 @attr 2=102 harbour"))   # relevance: another model
    assert len(calls) == 2 and other.ranked and not first.ranked
    assert c.run(service.catalog.search(first)).total == 3
    assert c.run(service.catalog.search(again)).total == 3


def test_an_untranslatable_query_gives_its_diagnostic_every_time(svc):
    service, _ = svc
    bad = rpn.parse_pqf("@attr 1=9999 harbour")                # an unsupported use attribute
    codes = []
    for _ in range(2):
        with pytest.raises(Bib1Diagnostic) as e:
            service._to_query(bad)
        codes.append((e.value.code, e.value.addinfo))
    assert codes[0] == codes[1] and codes[0][0] == 114 and not service._translated


def test_the_translations_kept_are_bounded(svc, monkeypatch):
    service, _ = svc
    monkeypatch.setattr(zs, "TRANSLATED", 2)
    for word in ("harbour", "mountain", "lights"):
        service._to_query(rpn.parse_pqf(f"@attr 1=4 {word}"))
    assert [q.root.term for q in service._translated] == ["mountain", "lights"]
