"""Z39.50 (ANSI/NISO Z39.50-2003, ISO 23950) protocol layer, sans-I/O.

* ``z3950.ber`` -- Basic Encoding Rules (ITU-T X.690) for the subset of ASN.1 that
  Z39.50 uses, with a decoder that only ever raises ``BERError`` and a ``Framer``
  that cuts a byte stream into top-level PDUs.
* ``z3950.pdu`` -- the APDUs built on top of it (Init request/response, Close).

Nothing here opens sockets or touches an event loop; a network shell feeds bytes
in and writes the returned bytes out.
"""
