"""The search room: the one route from a query (in the query model) to kept
result sets and pages of records, shared by every front end.

* ``search.route`` -- the route: a chain of small steps configured in one place
  (database, restriction, reuse, search, result set), the time budget of a
  request, pages, records, facets, scans.
* ``search.databases`` -- database names: the union and every holding library.
* ``search.result_sets`` -- result sets kept between requests (SRU's server-wide
  store, a Z39.50 association's named sets).

May import ``indexers`` (the Catalog interface, the query model); never
``gateway``, ``sru`` or ``z3950``: the protocol front ends call this room, not
the other way round.  No I/O of its own beyond the Catalog's coroutines.
"""
