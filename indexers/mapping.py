"""MARC 21 -> search fields, driven by config/marc21_fields.toml (traject-style
rules; see the comments at the top of that file for the spec syntax).

``FieldMapping.extract(record)`` returns ``{field: [value, ...]}`` with raw (not
yet normalized) values, transforms applied; it also gives the display values and
the title forms used for union matching.  Linked 880s are read for every data-field
spec (``$6`` = "245-01/$1" links an 880 to tag 245).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pymarc

from config import locate

from . import normalize as nz

_SPEC = re.compile(
    r"^(?P<tag>LDR|\d{3})(?:\|(?P<i1>[0-9a-z* ])(?P<i2>[0-9a-z* ])\|)?"
    r"(?:/(?P<start>\d+)(?:-(?P<end>\d+))?)?(?P<codes>[a-z0-9]*)$"
)


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class Spec:
    tag: str
    ind1: str | None
    ind2: str | None
    start: int | None
    end: int | None
    codes: str
    is_control: bool = False

    def __post_init__(self):
        object.__setattr__(self, "is_control", self.tag == "LDR" or self.tag < "010")


def parse_spec(text: str) -> Spec:
    m = _SPEC.match(text)
    if not m:
        raise MappingError(f"bad MARC spec {text!r}")
    start = int(m["start"]) if m["start"] is not None else None
    end = int(m["end"]) if m["end"] is not None else start
    i1 = None if m["i1"] in (None, "*") else m["i1"]
    i2 = None if m["i2"] in (None, "*") else m["i2"]
    spec = Spec(m["tag"], i1, i2, start, end, m["codes"])
    if not spec.is_control and not spec.codes:
        raise MappingError(f"data field spec {text!r} names no subfields")
    return spec


def _year(v: str) -> list[str]:
    y = nz.extract_year(v)
    return [str(y)] if y is not None else []


def _language(v: str) -> list[str]:
    v = v.strip().lower()
    out = [v[i : i + 3] for i in range(0, len(v), 3)] if len(v) > 3 and len(v) % 3 == 0 else [v]
    return [c for c in out if re.fullmatch(r"[a-z]{3}", c) and c not in ("zxx", "und")]


def _opt(fn: Callable[[str], str | None]) -> Callable[[str], list[str]]:
    def f(v: str) -> list[str]:
        r = fn(v)
        return [r] if r else []

    return f


# leader/06 (type of record) and /07 (bibliographic level) -> the material a patron
# chooses in the OPAC's advanced search (local.material); unknown codes give nothing
_MATERIAL_BY_TYPE = {"c": "score", "d": "score", "e": "map", "f": "map", "g": "video", "i": "audio",
                     "j": "music", "k": "image", "m": "computer", "o": "kit", "p": "mixed", "r": "object"}


def _material(v: str) -> list[str]:
    kind, level = (v + "  ")[0], (v + "  ")[1]
    if kind in "at":
        return ["serial" if level in "bis" else "book"]
    m = _MATERIAL_BY_TYPE.get(kind)
    return [m] if m else []


TRANSFORMS: dict[str, Callable[[str], list[str]]] = {
    "isbn": _opt(nz.normalize_isbn),
    "issn": _opt(nz.normalize_issn),
    "lccn": _opt(nz.normalize_lccn),
    "year": _year,
    "language": _language,
    "material": _material,
    "strip": lambda v: [v.strip()] if v.strip() else [],
}


@dataclass(frozen=True)
class FieldRule:
    name: str
    type: str  # text | key | number
    specs: tuple[Spec, ...]
    transform: str | None = None
    first: bool = False
    linked_880: bool = True
    subfield_2_prefix: tuple[str, ...] = ()


def _field_values(fields: list[pymarc.Field], spec: Spec, sub2: tuple[str, ...]) -> list[str]:
    out = []
    codes, i1, i2 = spec.codes, spec.ind1, spec.ind2
    for f in fields:
        if i1 is not None or i2 is not None:
            ind = f.indicators or ("", "")  # a data field has them (None only on control fields)
            if (i1 is not None and ind[0] != i1) or (i2 is not None and ind[1] != i2):
                continue
        if sub2:
            if not any(sf.code == "2" and sf.value.lower().startswith(sub2) for sf in f.subfields):
                continue
        parts = [sf.value.strip() for sf in f.subfields if sf.code in codes and sf.value]
        if parts:
            out.append(parts[0] if len(parts) == 1 else " ".join(parts))
    return out


class Indexed:
    """A record's fields grouped by tag once, with 880s grouped by linked tag."""

    __slots__ = ("leader", "by_tag", "linked")

    def __init__(self, record: pymarc.Record):
        self.leader = str(record.leader)
        by_tag: dict[str, list] = {}
        linked: dict[str, list] = {}
        for f in record.fields:
            by_tag.setdefault(f.tag, []).append(f)
            if f.tag == "880" and not f.is_control_field():
                six = f.get("6")
                if six and len(six) >= 3:
                    linked.setdefault(six[:3], []).append(f)
        self.by_tag = by_tag
        self.linked = linked

    def control(self, tag: str) -> str | None:
        if tag == "LDR":
            return self.leader
        fs = self.by_tag.get(tag)
        return fs[0].data if fs else None


def spec_values(ix: Indexed, spec: Spec, *, linked_880: bool = True, sub2: tuple[str, ...] = ()) -> list[str]:
    if spec.is_control:
        data = ix.control(spec.tag)
        if data is None:
            return []
        if spec.start is not None and spec.end is not None:    # end is start when not given
            data = data[spec.start : spec.end + 1]
        data = data.strip()
        return [data] if data else []
    vals = _field_values(ix.by_tag.get(spec.tag, []), spec, sub2)
    if linked_880 and spec.tag in ix.linked:
        vals += _field_values(ix.linked[spec.tag], spec, sub2)
    return vals


@dataclass
class Extracted:
    fields: dict[str, list[str]]
    display: dict[str, list[str]]
    title_forms: list[str]  # 245 $a$n$p of the record and of its linked 880 (for union matching)
    nonfiling: int = 0  # 245 ind2


@dataclass
class FieldMapping:
    rules: list[FieldRule]
    display: dict[str, tuple[Spec, ...]] = field(default_factory=dict)

    def field_types(self) -> dict[str, str]:
        return {r.name: r.type for r in self.rules}

    def extract(self, record: pymarc.Record) -> Extracted:
        ix = Indexed(record)
        by_tag, linked = ix.by_tag, ix.linked
        out: dict[str, list[str]] = {}
        for rule in self.rules:
            vals: list[str] = []
            tf = TRANSFORMS[rule.transform] if rule.transform else None
            for spec in rule.specs:
                if spec.is_control:
                    raw = spec_values(ix, spec)
                elif spec.tag in by_tag or (rule.linked_880 and spec.tag in linked):
                    raw = spec_values(ix, spec, linked_880=rule.linked_880, sub2=rule.subfield_2_prefix)
                else:
                    continue
                if not raw:
                    continue
                got = [t for v in raw for t in tf(v)] if tf else raw
                if got:
                    vals.extend(got)
                    if rule.first:
                        break
            if vals:
                out[rule.name] = list(dict.fromkeys(vals)) if len(vals) > 1 else vals
        disp = {}
        for name, specs in self.display.items():
            vals = [v for s in specs if s.tag in by_tag or s.tag in linked for v in spec_values(ix, s)]
            if vals:
                disp[name] = vals
        forms = spec_values(ix, _TITLE_FORMS) if "245" in by_tag or "245" in linked else []
        nonfiling = 0
        f245 = by_tag.get("245")
        if f245 and f245[0].indicators[1].isdigit():
            nonfiling = int(f245[0].indicators[1])
        return Extracted(out, disp, forms, nonfiling)


_TITLE_FORMS = Spec("245", None, None, None, None, "anp")


def load_mapping(path: Path | None = None) -> FieldMapping:
    path = path or locate("marc21_fields.toml")
    return _load_mapping(str(path))


@lru_cache(maxsize=4)
def _load_mapping(path: str) -> FieldMapping:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    rules = []
    for name, d in data.get("field", {}).items():
        if d.get("type") not in ("text", "key", "number"):
            raise MappingError(f"field {name}: type must be text, key or number")
        if d.get("transform") and d["transform"] not in TRANSFORMS:
            raise MappingError(f"field {name}: unknown transform {d['transform']!r}")
        rules.append(
            FieldRule(
                name=name,
                type=d["type"],
                specs=tuple(parse_spec(s) for s in d["specs"]),
                transform=d.get("transform"),
                first=bool(d.get("first", False)),
                linked_880=bool(d.get("linked_880", True)),
                subfield_2_prefix=tuple(p.lower() for p in d.get("subfield_2_prefix", ())),
            )
        )
    display = {k: tuple(parse_spec(s) for s in v) for k, v in data.get("display", {}).items()}
    return FieldMapping(rules, display)
