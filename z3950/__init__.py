"""Z39.50 (ANSI/NISO Z39.50-2003, ISO 23950) protocol layer, sans-I/O.

* ``z3950.ber`` -- Basic Encoding Rules (ITU-T X.690) for the subset of ASN.1 that
  Z39.50 uses, with a decoder that only ever raises ``BERError`` and a ``Framer``
  that cuts a byte stream into top-level PDUs.
* ``z3950.pdu`` -- the APDUs built on top of it (Init, Search, Present, Scan, Sort,
  DeleteResultSet, Close), with diagnostics and response records.
* ``z3950.rpn`` -- Type-1 (RPN) queries: the data model (``rpn.model``), BER
  (``rpn.codec``), YAZ PQF (``rpn.pqf``), Bib-1 -> the one query model (``rpn.bib1``).
* ``z3950.records`` -- record syntaxes (USMARC, MARCXML, SUTRS, OPAC) both ways.
* ``z3950.charneg`` -- character-set negotiation (charsetNeg-3).
* ``z3950.session`` -- the association as a state table, for origin and target.
* ``z3950.diagnostics`` -- Bib-1 diagnostics, and SRU -> Bib-1.

Nothing here opens sockets or touches an event loop; a network shell feeds bytes
in and writes the returned bytes out.
"""
