"""The two search keys the OPAC added (config/indexes.toml): ``local.material`` (the kind of
material from leader/06-07, a facet and a sort key too) and the new arrivals limit
``local.added`` (search/arrivals.py, from the record store's ``source.added``), on the
embedded index and on Elasticsearch alike, through the one search route."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from indexers.mapping import TRANSFORMS
from indexers.query_model import QueryError
from indexers.store import StoreArrivals


def test_material_from_the_leader():
    m = TRANSFORMS["material"]
    assert m("am") == ["book"] and m("as") == ["serial"] and m("ab") == ["serial"] and m("tm") == ["book"]
    assert m("em") == ["map"] and m("gm") == ["video"] and m("jm") == ["music"] and m("cm") == ["score"]
    assert m("zz") == [] and m("") == []


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def catalog(request, tmp_path_factory):
    from catalog_builder import backend_fixture, rec

    c = backend_fixture(request, tmp_path_factory.mktemp(f"material-{request.param}"))
    serial = rec("M2", title="Library journal")
    serial.leader = serial.leader[:6] + "as" + serial.leader[8:]
    score = rec("M3", title="Library songs")
    score.leader = score.leader[:6] + "cm" + score.leader[8:]
    c.load("iizuka", [rec("M1", title="Library book"), serial, score])
    c.load("komae", [rec("K1", title="Library of Komae")])
    yield c
    c.close()


def _route(c):
    from search.route import make_route

    return make_route(c.catalog, ["iizuka", "komae"], arrivals=StoreArrivals(c.data_dir / "catalog.sqlite"),
                      zone=timezone.utc)


def _hits(c, cql: str) -> set[str]:
    from search.result_sets import ResultSets
    from search.route import Search

    route = _route(c)

    async def go():
        async with route.request():
            rs = await route.search(Search(c.query(cql), ResultSets()))
            return await route.page(rs, 0, rs.result.total)
    return {m[1] for r in c.fetch(c.run(go())) for m in r.members}


def test_material_searches_and_facets_on_every_backend(catalog):
    c = catalog
    assert _hits(c, "dc.title=library and local.material==book") == {"M1", "K1"}
    assert _hits(c, "local.material==serial") == {"M2"}
    assert _hits(c, "local.material==score") == {"M3"}
    res = c.search("dc.title=library")
    facets = {v.display: v.count for v in c.facets(res, ["material"], 10)["material"]}
    assert facets == {"book": 2, "serial": 1, "score": 1}


def test_new_arrivals_on_every_backend(catalog):
    c = catalog
    today = datetime.now(timezone.utc).date()          # the route counts days in UTC here (zone=)
    yesterday = (today - timedelta(days=1)).isoformat()  # loaded just now (a day's margin for midnight)
    assert _hits(c, f'local.added >= "komae {yesterday}"') == {"K1"}
    assert _hits(c, f'dc.title=library and local.added >= "iizuka {yesterday}"') == {"M1", "M2", "M3"}
    assert _hits(c, f'local.added >= "iizuka {(today + timedelta(days=2)).isoformat()}"') == set()
    with pytest.raises(QueryError) as e:
        _hits(c, 'local.added >= "nowhere 2026-01-01"')
    assert e.value.code == 36
