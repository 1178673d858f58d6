"""Per-library holdings extraction, configured in config/libraries.toml."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pymarc

from config import locate


@dataclass(frozen=True)
class HoldingsRule:
    tag: str
    branch: str
    location: str
    call_number: str
    barcode: str


@dataclass(frozen=True)
class LibraryConfig:
    code: str
    name: str
    holdings: HoldingsRule


class Libraries:
    def __init__(self, data: dict):
        self._defaults = data.get("defaults", {})
        self._libs = data.get("library", {})

    def get(self, code: str) -> LibraryConfig:
        d = self._libs.get(code, {})
        h = dict(self._defaults.get("holdings", {}))
        h.update(d.get("holdings", {}))
        rule = HoldingsRule(
            tag=h.get("tag", "852"),
            branch=h.get("branch", "b"),
            location=h.get("location", "c"),
            call_number=h.get("call_number", "hi"),
            barcode=h.get("barcode", "p"),
        )
        return LibraryConfig(code, d.get("name", self._defaults.get("name", "")) or code, rule)

    def names(self) -> dict[str, str]:
        return {code: d.get("name", code) for code, d in self._libs.items()}


def load_libraries(path: Path | None = None) -> Libraries:
    return _load(str(path or locate("libraries.toml")))


@lru_cache(maxsize=4)
def _load(path: str) -> Libraries:
    try:
        with open(path, "rb") as fh:
            return Libraries(tomllib.load(fh))
    except FileNotFoundError:
        return Libraries({})


def _join(f: pymarc.Field, codes: str) -> str:
    return " ".join(sf.value.strip() for sf in f.subfields if sf.code in codes and sf.value.strip())


def extract_holdings(record: pymarc.Record, lib: LibraryConfig, local_id: str) -> list[dict]:
    """One dict per holdings field; a record without any is one holding of the
    library with the branch unknown."""
    rule = lib.holdings
    out = []
    for f in record.get_fields(rule.tag):
        if f.is_control_field():
            continue
        out.append(
            {
                "library": lib.code,
                "local_id": local_id,
                "branch": _join(f, rule.branch),
                "location": _join(f, rule.location),
                "call_number": _join(f, rule.call_number),
                "barcode": _join(f, rule.barcode),
            }
        )
    if not out:
        out.append({"library": lib.code, "local_id": local_id, "branch": "", "location": "",
                    "call_number": "", "barcode": ""})
    return out
