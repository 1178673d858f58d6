"""A thin Z39.50 load generator for bench/z3950_bench.py.

Every APDU (Init, each Search, the Presents of 10 USMARC records, Close) is
encoded once with our codec (``z3950/pdu/``); a request is ``sendall`` of the
bytes and one response read by its BER length (tag and definite length parsed by
hand, no decoding), checked only for the expected APDU tag.  Decoding happens in
the verification pass (hit counts, records returned), outside the timed loops.

Workers are threads with one blocking socket each (the GIL is released in
``recv``).  Latency is per request (per session in the ``session`` phase), from
before ``sendall`` (before ``connect``) to the last byte of the response.
"""
from __future__ import annotations

import itertools
import re
import socket
import statistics
import threading
import time

import procmon
from z3950 import pdu as P
from z3950 import records as R
from z3950 import rpn

INIT_RESPONSE, SEARCH_RESPONSE, PRESENT_RESPONSE, CLOSE = 21, 23, 25, 48
DATABASE = "Default"

# ---------------------------------------------------------------- CQL -> PQF

USE = {"dc.title": 4, "dc.creator": 1003, "dc.subject": 21, "dc.identifier": 7, "cql.serverChoice": 1016,
       "dc.date": 31}
_CLAUSE = re.compile(r'^\s*(?P<idx>[\w.]+)\s*(?P<rel>>=|<=|=|adj)\s*(?P<term>"[^"]*"|\S+)\s*$')
_BOOL = re.compile(r'\s+(and|or|not)\s+')


def _clause_pqf(text: str) -> str:
    m = _CLAUSE.match(text)
    if not m:
        raise ValueError(f"cannot map clause {text!r}")
    idx, rel, term = m.group("idx"), m.group("rel"), m.group("term").strip('"')
    attrs = [f"@attr 1={USE[idx]}"]
    if idx == "dc.date":
        attrs += [{"=": "@attr 2=3", ">=": "@attr 2=4", "<=": "@attr 2=2"}[rel], "@attr 4=109"]
    elif rel in ("<=", ">="):
        raise ValueError(f"relation {rel} only on dc.date: {text!r}")
    else:
        attrs.append("@attr 2=3")
        if term.endswith("*"):
            term = term[:-1]
            attrs.append("@attr 5=1")
        if idx == "dc.identifier":
            pass                                     # a key: no structure
        elif rel == "adj" or " " in term or not term.isascii():
            attrs.append("@attr 4=1")                # phrase; CJK is a character sequence on both
        else:
            attrs.append("@attr 4=2")                # word
    q = f'"{term}"' if (" " in term or '"' in term) else term
    return " ".join(attrs) + " " + q


def cql_to_pqf(cql: str) -> str:
    """The workload's CQL (one clause, or two joined by and/or/not) as PQF."""
    parts = _BOOL.split(cql)
    pqf = _clause_pqf(parts[0])
    for op, rhs in zip(parts[1::2], parts[2::2]):
        pqf = f"@{op} {pqf} {_clause_pqf(rhs)}"
    return pqf


# ---------------------------------------------------------------- pre-encoded APDUs

def present_apdu(set_name: str, start: int, n: int = 10) -> bytes:
    return P.encode_pdu(P.PresentRequest(result_set_id=set_name, start_point=start, number_of_records=n,
                                         element_set_names="F", preferred_record_syntax=R.USMARC))


class Apdus:
    def __init__(self, pqf_queries: list[str]):
        self.pqf = pqf_queries
        self.init = P.encode_pdu(P.InitializeRequest(
            options=frozenset({"search", "present", "namedResultSets"}),
            preferred_message_size=4 * 1024 * 1024, exceptional_record_size=4 * 1024 * 1024,
            implementation_id="z3950-bench", implementation_name="unioncat bench/z3950_load.py"))
        self.search = [P.encode_pdu(P.SearchRequest(query=rpn.parse_pqf(q), database_names=(DATABASE,),
                                                    result_set_name="default", replace_indicator=True,
                                                    preferred_record_syntax=R.USMARC)) for q in pqf_queries]
        self.close = P.encode_pdu(P.Close(close_reason=0))
        self.present_idx: list[int] = []
        self.present_search: list[bytes] = []   # searches into named sets s0..sK-1
        self.presents: list[bytes] = []         # Present 10 from those sets, round-robin
        self.session_idx: list[int] = []
        self.present_default = present_apdu("default", 1)

    def set_present(self, idx: list[int], hits: dict[int, int], starts: int = 5) -> None:
        """Named result sets s<k> for the queries ``idx`` (>= 10 hits each); Presents
        of 10 records at start points 1, 11, ... (as far as the hits allow)."""
        self.present_idx = list(idx)
        self.session_idx = list(idx)
        self.present_search = [P.encode_pdu(P.SearchRequest(
            query=rpn.parse_pqf(self.pqf[i]), database_names=(DATABASE,), result_set_name=f"s{k}",
            replace_indicator=True)) for k, i in enumerate(idx)]
        self.presents = []
        for j in range(starts):
            for k, i in enumerate(idx):
                start = 1 + 10 * j
                if start + 9 <= hits[i]:
                    self.presents.append(present_apdu(f"s{k}", start))


# ---------------------------------------------------------------- raw I/O

class Conn:
    """One blocking socket; ``call(bytes)`` sends and returns (tag, response bytes).

    Definite-length APDUs (unioncat) are cut by their length.  Zebra (YAZ) sends
    indefinite-length APDUs, whose end is only known by walking every element
    (~0.1-0.4 ms of Python per 10-record Present, more than Zebra's own time).  So,
    with ``strict=False`` (the timed loops), such a response counts as complete when
    the bytes read end with end-of-contents octets and no further byte is waiting
    on the socket (YAZ writes an APDU with one write); every ``check_every``-th
    response, after the timer has stopped, is walked in full to confirm it, and a
    response found incomplete is read on (counted in ``misses``).  ``strict=True``
    (verification passes) walks every response."""

    __slots__ = ("sock", "buf", "strict", "check_every", "n", "misses")

    def __init__(self, host: str, port: int, timeout: float = 30.0, strict: bool = True, check_every: int = 16):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not strict:
            # blocking mode: with a time-out Python polls before every recv, and
            # recv(MSG_DONTWAIT) would wait for the time-out instead of failing
            self.sock.settimeout(None)
        self.buf = bytearray()
        self.strict = strict
        self.check_every = check_every
        self.n = 0
        self.misses = 0

    def call(self, data: bytes) -> tuple[int, bytes]:
        self.sock.sendall(data)
        return self.read()

    def read(self) -> tuple[int, bytes]:
        buf = self.buf
        sock = self.sock
        while True:
            h = _header(buf, 0, len(buf))
            if h is not None:
                tag, length, j = h
                if length >= 0:
                    end = j + length
                    if len(buf) >= end:
                        data = bytes(buf[:end])
                        del buf[:end]
                        return tag, data
                elif self.strict:
                    end = _end(buf, 0, len(buf))
                    if end is not None:
                        data = bytes(buf[:end])
                        del buf[:end]
                        return tag, data
                elif buf.endswith(b"\x00\x00") and not self._pending():
                    data = bytes(buf)
                    buf.clear()
                    return tag, data
            chunk = sock.recv(262144)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buf += chunk

    def _pending(self) -> bool:
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False

    def confirm(self, data: bytes) -> bytes:
        """Timed loops, after the timer: every check_every-th indefinite-length
        response is walked; if it was cut short, read the rest (a miss)."""
        self.n += 1
        if self.strict or self.n % self.check_every or len(data) < 2 or data[1] != 0x80:
            return data
        end = _end(data, 0, len(data))
        if end == len(data):
            return data
        self.misses += 1
        self.buf[:0] = data
        saved, self.strict = self.strict, True
        try:
            return self.read()[1]
        finally:
            self.strict = saved

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _header(buf, i: int, n: int):
    """(tag, length or -1 for indefinite, content offset) of the element at ``i``,
    or None when the header is not complete yet."""
    if i + 2 > n:
        return None
    tag = buf[i] & 0x1F
    i += 1
    if tag == 0x1F:
        tag = 0
        while True:
            if i >= n:
                return None
            c = buf[i]
            i += 1
            tag = (tag << 7) | (c & 0x7F)
            if not c & 0x80:
                break
    if i >= n:
        return None
    first = buf[i]
    i += 1
    if first < 0x80:
        return tag, first, i
    if first == 0x80:
        return tag, -1, i
    k = first & 0x7F
    if i + k > n:
        return None
    return tag, int.from_bytes(buf[i:i + k], "big"), i + k


def _end(buf, i: int, n: int, depth: int = 0) -> int | None:
    """End offset of the element at ``i`` (walking an indefinite-length element's
    children down to its end-of-contents), or None when incomplete."""
    h = _header(buf, i, n)
    if h is None:
        return None
    _, length, j = h
    if length >= 0:
        return j + length if j + length <= n else None
    if depth > 64:
        raise ValueError("BER nested too deeply")
    while True:                      # indefinite: children until 00 00
        if j + 2 > n:
            return None
        if buf[j] == 0 and buf[j + 1] == 0:
            return j + 2
        j = _end(buf, j, n, depth + 1)
        if j is None:
            return None


def _frame(buf: bytearray) -> tuple[int, int] | None:
    """(tag, end offset) of the complete APDU at the start of ``buf``, or None.
    Zebra (YAZ) sends indefinite-length APDUs; those are walked element by element."""
    n = len(buf)
    h = _header(buf, 0, n)
    if h is None:
        return None
    tag, length, j = h
    if length >= 0:
        end = j + length
        return (tag, end) if n >= end else None
    end = _end(buf, 0, n)
    return None if end is None else (tag, end)


def wait_z3950(host: str, port: int, timeout: float) -> None:
    """Until an Init on ``port`` is answered (bounded)."""
    init = Apdus([]).init
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            c = Conn(host, port, timeout=5)
            try:
                tag, _ = c.call(init)
                if tag == INIT_RESPONSE:
                    return
            finally:
                c.close()
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"no Z39.50 InitResponse on {host}:{port} within {timeout:.0f} s ({last})")


def _open_session(host, port, apdus: Apdus, strict: bool = True) -> Conn:
    c = Conn(host, port, strict=strict)
    tag, data = c.call(apdus.init)
    if tag != INIT_RESPONSE:
        raise RuntimeError(f"Init answered with APDU tag {tag}")
    return c


def _close_session(c: Conn, apdus: Apdus) -> None:
    try:
        c.sock.sendall(apdus.close)
        c.read()                     # the target's Close (or EOF)
    except (OSError, ConnectionError):
        pass
    c.close()


# ---------------------------------------------------------------- verification (decoded)

def verify(host: str, port: int, apdus: Apdus) -> dict:
    c = _open_session(host, port, apdus)
    hits = []
    try:
        for _i, a in enumerate(apdus.search):
            t0 = time.perf_counter()
            tag, data = c.call(a)
            ms = (time.perf_counter() - t0) * 1000
            r = P.decode_pdu(data)
            h = {"hits": r.result_count if isinstance(r, P.SearchResponse) else None, "ms": round(ms, 3)}
            if isinstance(r, P.SearchResponse) and r.diagnostics:
                d = r.diagnostics[0]
                h["diagnostic"] = f"{d.condition} {d.addinfo or ''}".strip()
                h["hits"] = None
            elif not isinstance(r, P.SearchResponse):
                h["diagnostic"] = f"unexpected {type(r).__name__}"
            hits.append(h)
    finally:
        _close_session(c, apdus)
    c = Conn(host, port)
    try:
        r = P.decode_pdu(c.call(apdus.init)[1])
        init = {"result": r.result, "implementation": f"{r.implementation_name} {r.implementation_version}",
                "options": sorted(r.options)}
    finally:
        _close_session(c, apdus)
    return {"hits": hits, "init": init}


def verify_present(host: str, port: int, apdus: Apdus) -> dict:
    """All named searches, then every Present once: 10 USMARC records each?"""
    c = _open_session(host, port, apdus)
    bad = []
    nrec = 0
    nbytes = 0
    try:
        for a in apdus.present_search:
            r = P.decode_pdu(c.call(a)[1])
            if not isinstance(r, P.SearchResponse) or r.diagnostics:
                bad.append(f"search: {r}")
        for a in apdus.presents:
            tag, data = c.call(a)
            r = P.decode_pdu(data)
            if not isinstance(r, P.PresentResponse) or r.number_of_records_returned != 10 or r.diagnostics:
                bad.append(f"present: {type(r).__name__} {getattr(r, 'number_of_records_returned', None)} "
                           f"{getattr(r, 'diagnostics', None)}"[:300])
                continue
            for npr in r.records or ():
                if npr.record is None:
                    bad.append(f"surrogate diagnostic {npr.diagnostic}")
            nrec += len(r.records or ())
            nbytes += len(data)
    finally:
        _close_session(c, apdus)
    return {"ok": not bad, "presents": len(apdus.presents), "records": nrec,
            "mean_response_bytes": round(nbytes / max(1, len(apdus.presents))), "problems": bad[:5]}


def decode_costs(host: str, port: int, apdus: Apdus, n: int = 300) -> dict:
    """µs per full decode_pdu of a SearchResponse / 10-record PresentResponse, and
    of the timed loops' frame-and-tag check."""
    c = _open_session(host, port, apdus)
    try:
        sr = c.call(apdus.search[0])[1]
        c.call(apdus.present_search[0])
        pr = c.call(apdus.presents[0])[1]
    finally:
        _close_session(c, apdus)

    def per(fn):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return round((time.perf_counter() - t0) / n * 1e6, 1)
    return {"search_response": per(lambda: P.decode_pdu(sr)),
            "present_response": per(lambda: P.decode_pdu(pr)),
            "frame_walk": per(lambda: _frame(bytearray(pr))),
            "frame_fast": per(lambda: (_header(pr, 0, len(pr)), pr.endswith(b"\x00\x00"))),
            "present_response_bytes": len(pr)}


# ---------------------------------------------------------------- timed phases

def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_phase(host: str, port: int, apdus: Apdus, phase: str, *, concurrency: int, max_requests: int,
              max_seconds: float, server_pid: int | None = None) -> dict:
    """``search`` / ``present`` (long-lived sessions) or ``session`` (one whole
    session per unit); bounded by ``max_requests`` and ``max_seconds``."""
    ticket = itertools.count()
    lat: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    misses = [0]
    stop_at = [0.0]
    ready = threading.Barrier(concurrency + 1)
    go = threading.Event()
    pc = time.perf_counter

    def worker(w: int):
        mine = lat[w]
        conn = None
        try:
            if phase in ("search", "present"):
                conn = _open_session(host, port, apdus, strict=False)
                if phase == "present":
                    for a in apdus.present_search:
                        if conn.call(a)[0] != SEARCH_RESPONSE:
                            raise RuntimeError("named search failed")
                    reqs, want = apdus.presents, PRESENT_RESPONSE
                else:
                    reqs, want = apdus.search, SEARCH_RESPONSE
            ready.wait()
            go.wait()
            if phase == "session":
                sess_q = [apdus.search[i] for i in apdus.session_idx]
                k = w
                while next(ticket) < max_requests and pc() < stop_at[0]:
                    t0 = pc()
                    c = Conn(host, port, strict=False)
                    try:
                        ok = (c.call(apdus.init)[0] == INIT_RESPONSE
                              and c.call(sess_q[k % len(sess_q)])[0] == SEARCH_RESPONSE
                              and c.call(apdus.present_default)[0] == PRESENT_RESPONSE)
                        c.sock.sendall(apdus.close)
                        try:
                            c.read()
                        except ConnectionError:
                            pass
                    finally:
                        c.close()
                    mine.append(pc() - t0)
                    if not ok:
                        errors.append("wrong APDU in session")
                    k += concurrency
                return
            n = len(reqs)
            k = w * 7
            call = conn.call
            while next(ticket) < max_requests and pc() < stop_at[0]:
                a = reqs[k % n]
                t0 = pc()
                tag, data = call(a)
                mine.append(pc() - t0)
                if tag != want:
                    errors.append(f"tag {tag}")
                conn.confirm(data)
                k += 1
        except threading.BrokenBarrierError:
            pass
        except Exception as e:  # noqa: BLE001 -- counted, reported
            errors.append(f"{type(e).__name__}: {e}")
            try:
                ready.abort()
            except Exception:  # noqa: BLE001
                pass
        finally:
            if conn is not None:
                misses[0] += conn.misses
                _close_session(conn, apdus)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    try:
        ready.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    cpu0 = procmon.tree_cpu_s(server_pid) if server_pid else None
    cl0 = time.process_time()
    t0 = pc()
    stop_at[0] = t0 + max_seconds
    go.set()
    for t in threads:
        t.join(timeout=max_seconds + 60)
    wall = pc() - t0
    cl1 = time.process_time()
    cpu1 = procmon.tree_cpu_s(server_pid) if server_pid else None
    xs = [x * 1000 for ls in lat for x in ls]
    n = len(xs)
    done = min(next(ticket), max_requests + concurrency)
    return {
        "phase": phase, "concurrency": concurrency, "requests": n, "seconds": round(wall, 3),
        "rps": round(n / wall, 1) if wall else None,
        "p50_ms": round(_pct(xs, 50), 3) if xs else None, "p99_ms": round(_pct(xs, 99), 3) if xs else None,
        "mean_ms": round(statistics.fmean(xs), 3) if xs else None,
        "max_ms": round(max(xs), 3) if xs else None,
        "server_cpu_ms_per_req": round(1000 * (cpu1 - cpu0) / n, 3) if n and cpu0 is not None else None,
        "client_cpu_ms_per_req": round(1000 * (cl1 - cl0) / n, 3) if n else None,
        "framing_misses": misses[0],
        "errors": len(errors), "error_examples": sorted(set(errors))[:3],
        "bounded_by": "requests" if done >= max_requests else "seconds",
    }
