"""The short cuts on the path of one Z39.50 search (issue 18, seventh round): each gives
what the general path gives.

* the plain searchResponse (a count, nothing piggy-backed) is encoded in one pass: the
  same octets as the generic encoder, for every count and reference id;
* a read that holds exactly one whole APDU is framed without the buffer: the same frames
  and the same errors as the general framer, for every way of cutting the bytes;
* the databases a request names are resolved once per set of names: a library that
  appears in the catalog later, or a federation added, is still found, and an unknown
  name is still refused every time.
"""
from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexers.query_model import QueryError
from indexers.records import ScanTerm
from search.databases import Database, Databases
from z3950 import pdu as P
from z3950.ber import BERError, Framer
from z3950.pdu.operations_codec import _enc_search_response_generic

COUNTS = st.one_of(st.integers(0, 300), st.integers(-2**70, 2**70), st.sampled_from([127, 128, 255, 256, 2**31 - 1]))


@settings(max_examples=300, deadline=None)
@given(COUNTS, COUNTS, COUNTS, st.booleans(), st.one_of(st.none(), st.binary(max_size=300)))
def test_plain_search_response_is_the_generic_encoding(count, returned, position, status, ref):
    pdu = P.SearchResponse(count, returned, position, status, reference_id=ref)
    assert P.encode_pdu(pdu) == _enc_search_response_generic(pdu, "utf-8")
    back = P.decode_pdu(P.encode_pdu(pdu))
    assert back == pdu


def test_a_count_beyond_the_short_length_form_is_still_the_generic_encoding():
    for n in (2**1100, -(2**1100)):          # content longer than 127 octets: the long length form
        pdu = P.SearchResponse(n, 0, 1, True)
        assert P.encode_pdu(pdu) == _enc_search_response_generic(pdu, "utf-8")


def test_other_search_responses_keep_the_generic_encoder():
    records = (P.NamePlusRecord("Default", diagnostic=P.Diagnostic(14, "gone")),)
    for pdu in (P.SearchResponse(0, 0, 0, False, result_set_status=3, diagnostics=(P.Diagnostic(2, "x"),)),
                P.SearchResponse(3, 1, 2, True, present_status=0, records=records),
                P.SearchResponse(5, 0, 1, True, present_status=5, diagnostics=(P.Diagnostic(25, "F"),))):
        assert P.encode_pdu(pdu) == _enc_search_response_generic(pdu, "utf-8")
        assert P.decode_pdu(P.encode_pdu(pdu)) == pdu


def _frames(chunks, framer_kw):
    """Frames and the error (its text) of feeding ``chunks`` to a new framer."""
    f = P.apdu_framer(**framer_kw) if framer_kw.pop("apdu", True) else Framer(**framer_kw)
    out: list[bytes] = []
    try:
        for c in chunks:
            out.extend(f.feed(c))
    except BERError as e:
        return out, str(e), f.pending
    return out, None, f.pending


def _general(chunks, framer_kw):
    """The same through the general path only: each chunk passed as a bytearray (which
    the short cut leaves alone)."""
    return _frames([bytearray(c) for c in chunks], dict(framer_kw))


APDUS = [P.encode_pdu(P.SearchResponse(349, 0, 1, True)),
         P.encode_pdu(P.DeleteResultSetRequest(0, ("nosuch",))),
         P.encode_pdu(P.PresentRequest("default", 1, 10, element_set_names="F")),
         P.encode_pdu(P.SearchResponse(2, 0, 1, True, reference_id=b"r" * 200))]   # long length form


@pytest.mark.parametrize("seed", range(40))
def test_one_whole_apdu_per_read_frames_as_the_general_path(seed):
    rnd = random.Random(seed)
    stream = b"".join(rnd.choice(APDUS) for _ in range(rnd.randint(1, 4)))
    if rnd.random() < 0.3:                  # garbage, a foreign protocol, a cut-off end
        stream = rnd.choice([stream + b"\x01\x02", b"GET / HTTP/1.1\r\n" + stream, stream[:-1],
                             b"\xbf\xff\xff\xff\xff\x01\x00" + stream])
    cuts = sorted(rnd.sample(range(1, len(stream)), min(len(stream) - 1, rnd.randint(0, 3))))
    if rnd.random() < 0.5:                  # or exactly at the APDU boundaries
        cuts, i = [], 0
        while i < len(stream):
            for a in APDUS:
                if stream.startswith(a, i):
                    i += len(a)
                    cuts.append(i)
                    break
            else:
                break
        cuts = [c for c in cuts if c < len(stream)]
    chunks = [bytes(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    for kw in ({}, {"max_length": 40}, {"apdu": False}):
        assert _frames(chunks, dict(kw)) == _general(chunks, kw)


def test_a_whole_apdu_comes_back_as_read():
    f = P.apdu_framer()
    data = APDUS[0]
    got = f.feed(data)
    assert got == [data] and got[0] is data and f.pending == 0
    # refused at once (not an APDU), and the framer stays broken, as before
    with pytest.raises(BERError):
        f.feed(b"\x30\x00")
    with pytest.raises(BERError):
        f.feed(data)


class _Scanned:
    """A catalog whose libraries index lists ``codes`` (what Databases.refresh reads)."""

    def __init__(self, codes):
        self.codes = list(codes)

    async def scan(self, index, term, position, count):
        return [ScanTerm(c.lower(), c, 1) for c in self.codes]


def test_resolved_names_follow_new_libraries_and_federations():
    dbs = Databases(["KOMAE"])
    first = dbs.resolve(("Default",))
    assert first == Database("Default", None) and dbs.resolve(("Default",)) is first
    assert dbs.resolve(("komae",)) == Database("komae", "KOMAE")
    with pytest.raises(QueryError):
        dbs.resolve(("CHOFU",))
    assert dbs.resolved(("CHOFU",)) is None
    asyncio.run(dbs.refresh(_Scanned(["CHOFU"]), "g2"))          # a library with records now
    assert dbs.resolve(("CHOFU",)) == Database("CHOFU", "CHOFU")
    assert dbs.resolve(("Default", "KOMAE")) == Database("Default", None)        # the union
    with pytest.raises(QueryError):                                # still refused, every time
        dbs.resolve(("KOMAE", "CHOFU"))
    with pytest.raises(QueryError):
        dbs.resolve(("KOMAE", "CHOFU"))
    fed = object()
    dbs.add_federation("Default", fed)                             # a federation by that name now
    got = dbs.resolve(("Default",))
    assert got.catalog is fed and dbs.resolved(("Default",)) is got
    assert dbs.resolve(["Default"]).catalog is fed                 # a list: resolved, not remembered
