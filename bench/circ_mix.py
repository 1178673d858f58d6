"""The mix and the paced (open-loop) load of the circulation benchmark (issue 18).

What it holds, all of it free of I/O and of the wall clock (so it is tested without
timing):

* :func:`parse_mix` -- ``place=0.2,checkout=0.6,renew=0.2``: the share of the clients
  doing each kind in the ``mix`` phase; :func:`split_clients` turns the shares into
  client counts (largest remainder, every named kind with a positive share gets at
  least one client when there are enough clients), :func:`split_over_processes`
  spreads each kind's clients over ``--workers`` processes.
* :class:`Pacer` -- the schedule of one paced client: ``rate`` operations/s, the
  k-th operation due at ``phase + k / rate + jitter_k``, phase and jitter drawn from
  a ``random.Random`` seeded with ``--seed`` and the client's number (deterministic);
  the jitter is at most a quarter of the interval either way, so the schedule is
  strictly increasing and its mean rate is exactly ``rate``.
* :func:`paced_latency` -- the latency of a paced operation, measured from its
  **scheduled** start (a client behind schedule sends at once, and the time it waited
  counts: no coordinated omission, as in wrk2), and whether it started late.
* :func:`mix_needs_loans` -- how many loans the renewing clients of a mix level can
  use (the loans they renew are reserved for the mix in the data).
* :data:`GROUPS` / :func:`group_of` -- the operation kinds of the mix grouped as the
  issue counts them: placing, lending (check_out, check_in, arrive, pickup), renewing.
"""
from __future__ import annotations

import math
import random

MIX_KINDS = ("place", "checkout", "renew")
# Lending dominates a library counter: most clients lend and take back; placing
# (web and counter holds) and web renewals are each about a third of that.
DEFAULT_MIX = "place=0.2,checkout=0.6,renew=0.2"
LATE_AFTER_S = 0.010             # an operation that started > 10 ms after its slot is "late"
CLOSED_RENEWALS_PER_CLIENT_S = 15    # loans reserved per closed-loop renewing client and second
JITTER = 0.25                    # +/- this share of the interval around each slot

GROUPS = {"place": "place", "check_out": "lending", "check_in": "lending", "arrive": "lending",
          "pickup": "lending", "renew": "renew"}


def group_of(kind: str) -> str:
    return GROUPS.get(kind, kind)


def parse_mix(spec: str) -> dict[str, float]:
    """``place=0.2,checkout=0.6,renew=0.2`` -> shares that add up to 1 (normalised).
    Kinds not named get 0. Raises ValueError on anything else."""
    shares = dict.fromkeys(MIX_KINDS, 0.0)
    seen = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep or key not in shares:
            raise ValueError(f"--mix: {part!r} is not KIND=SHARE with KIND one of {', '.join(MIX_KINDS)}")
        if key in seen:
            raise ValueError(f"--mix: {key} given twice")
        seen.add(key)
        try:
            x = float(val)
        except ValueError:
            raise ValueError(f"--mix: {part!r}: the share is not a number") from None
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"--mix: {part!r}: the share must be a finite number >= 0")
        shares[key] = x
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("--mix: the shares add up to 0")
    return {k: v / total for k, v in shares.items()}


def split_clients(n: int, shares: dict[str, float]) -> dict[str, int]:
    """``n`` clients over the kinds by largest remainder (ties in ``MIX_KINDS`` order);
    with n >= the number of kinds of positive share, each of those gets at least one."""
    kinds = [k for k in MIX_KINDS if shares.get(k, 0) > 0]
    exact = {k: n * shares[k] for k in kinds}
    got = {k: int(exact[k]) for k in kinds}
    left = n - sum(got.values())
    for k in sorted(kinds, key=lambda k: (-(exact[k] - got[k]), MIX_KINDS.index(k)))[:left]:
        got[k] += 1
    if n >= len(kinds):
        for k in kinds:
            while got[k] == 0:
                donor = max(kinds, key=lambda d: (got[d], -MIX_KINDS.index(d)))
                got[donor] -= 1
                got[k] += 1
    return {k: got.get(k, 0) for k in MIX_KINDS}


def split_over_processes(counts: dict[str, int], n: int) -> list[dict[str, int]]:
    """Each kind's clients spread over ``n`` processes (the first ones get the extra);
    the totals per kind are kept."""
    return [{k: c // n + (1 if i < c % n else 0) for k, c in counts.items()} for i in range(n)]


def mix_needs_loans(rate: float | None, renew_clients: int, clients: int, seconds: float) -> int:
    """Loans to reserve for the ``renew_clients`` renewing clients (of ``clients``) of one
    mix level: paced at ``rate`` in total, the renewals they are offered in ``seconds``
    (+10 % and one per client); closed loop, ``CLOSED_RENEWALS_PER_CLIENT_S`` per
    renewing client and second (alone, 64 clients renewed 786-909/s, 12-14/s each; a
    client that runs out stops, and that is noted in the results)."""
    if renew_clients <= 0 or clients <= 0:
        return 0
    if rate:
        return math.ceil(rate * renew_clients / clients * seconds * 1.1) + renew_clients
    return math.ceil(CLOSED_RENEWALS_PER_CLIENT_S * renew_clients * seconds)


def unique_keys(keys: list[str]) -> list[str]:
    """The levels' keys in the results, a repeated one numbered from its second
    occurrence (``c64``, ``c64#2``, ``c64@500/s``, ``c64#2@500/s``... as given: the
    ``#n`` goes after the concurrency part, before a paced level's ``@R/s``)."""
    seen: dict[str, int] = {}
    out = []
    for k in keys:
        seen[k] = seen.get(k, 0) + 1
        if seen[k] == 1:
            out.append(k)
        else:
            base, at, rate = k.partition("@")
            out.append(f"{base}#{seen[k]}{at}{rate}")
    return out


def split_loans(loans: list, counts: list[int]) -> list[list]:
    """The loans of a level over processes in proportion to their renewing clients
    (``counts``); a process without renewing clients gets none."""
    total = sum(counts)
    out, at = [], 0
    for i, c in enumerate(counts):
        end = len(loans) if i == len(counts) - 1 or total == 0 else at + len(loans) * c // total
        out.append(loans[at:end] if c or total == 0 else [])
        at = end
    return out


class Pacer:
    """The schedule of one paced client: offsets (seconds from the start of the run)
    of its operations, ``rate`` per second, deterministically jittered.

    ``rate`` is the client's own rate (the offered total over the number of clients)."""

    def __init__(self, rate: float, seed: int | str, client: int | str):
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"a paced client needs a rate > 0, not {rate!r}")
        self.interval = 1.0 / rate
        self.rng = random.Random(f"{seed}:pacer:{client}")
        self.phase = self.rng.uniform(0, self.interval)      # clients spread over the first interval
        self.k = 0
        self._next = self._offset(0)

    def _offset(self, k: int) -> float:
        j = self.rng.uniform(-JITTER, JITTER) * self.interval
        return max(0.0, self.phase + k * self.interval + j)

    def peek(self) -> float:
        """The offset of the next operation (not taken)."""
        return self._next

    def take(self) -> float:
        """The offset of the next operation; the schedule moves on."""
        x = self._next
        self.k += 1
        self._next = self._offset(self.k)
        return x

    def offsets(self, n: int) -> list[float]:
        return [self.take() for _ in range(n)]


def paced_latency(scheduled: float, started: float, ended: float,
                  late_after: float = LATE_AFTER_S) -> tuple[float, float, bool]:
    """(latency ms from the scheduled start, service ms from the actual start, late?)
    of one paced operation; times in seconds on one clock. An operation sent before
    its slot (it cannot be, but a clock may round) counts from its actual start."""
    origin = min(scheduled, started)
    return (ended - origin) * 1000.0, (ended - started) * 1000.0, started - scheduled > late_after
