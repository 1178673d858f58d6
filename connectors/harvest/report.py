"""A harvest run said in words (``unioncat harvest``, ``unioncat stats``) and the
progress line of a run on a terminal."""
from __future__ import annotations

import sys
import time

from .state import RunReport


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "-"   # never the host's zone


def describe(rep: RunReport) -> str:
    c = rep.counts or {}
    took = f"{rep.finished - rep.started:.1f} s" if rep.finished else "running"
    counts = ", ".join(f"{k} {c.get(k, 0)}" for k in ("read", "added", "updated", "unchanged", "withdrawn",
                                                      "merged", "quarantined"))
    if c.get("deleted_unknown"):
        counts += f", deletions of unknown records {c['deleted_unknown']}"
    line = (f"harvest {rep.source} ({rep.protocol} -> {rep.library}): last run {_when(rep.started)}, {rep.mode}, "
            f"{rep.outcome}; {rep.pages} pages, {counts} ({took})")
    if rep.retries:
        line += f"; {rep.retries} retries"
    if rep.run_id is not None and c.get("quarantined"):
        line += f"; quarantine: quarantine/{rep.library}-run{rep.run_id}.jsonl"
    if rep.errors:
        line += "\n  errors: " + "\n          ".join(rep.errors[-5:])
    return line


class Progress:
    """One line on stderr when it is a terminal: pages, records, rate, of how many."""

    def __init__(self, quiet: bool = False):
        self.on = not quiet and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.records = 0

    def __call__(self, rep: RunReport, page) -> None:
        self.records += len(page.items)
        if not self.on:
            return
        rate = self.records / max(time.monotonic() - self.t0, 1e-9)
        of = f"/{page.total:,}" if page.total else ""
        sys.stderr.write(f"\rharvest {rep.source}: page {rep.pages}, {self.records:,}{of} records, "
                         f"{rate:,.0f}/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\n")
            sys.stderr.flush()
