"""Variants people type: the Japanese folds of config/ja_variants.toml, as data.

Three kinds, each applied in one place:

* ``[kanji]``: name and place-name kanji folded everywhere (records and queries),
  merged into normalize()'s fold table after the OpenCC table (NAME_KANJI);
* ``[separators]``: name-part separators, boundaries in normalize() (SEPARATORS);
* query alternatives (``[between_kanji]``, ``[iteration]``, ``[long_vowel_final]``,
  ``[vu]``): a query term also searches for its spellings with these variants
  (query_variants), so records are indexed as catalogued and substring matching is
  unchanged;
* reading folds (``[small_kana]``, ``[particles]``, ``[generated]``), used by
  indexers/readings.py.

The file is read once, at import (config.locate: a deployment may replace it).
"""
from __future__ import annotations

import itertools
import tomllib
import unicodedata

from config import locate

__all__ = ["NAME_KANJI", "SEPARATORS", "SMALL_TO_LARGE", "PARTICLES", "GENERATED", "TABLE", "query_variants",
           "MAX_VARIANTS"]

MAX_VARIANTS = 16  # spellings of one query term searched at most (the term as typed first)


def _load() -> dict:
    with open(locate("ja_variants.toml"), "rb") as fh:
        return tomllib.load(fh)


TABLE: dict = _load()


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def _name_kanji(table: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for variant, spec in table.get("kanji", {}).items():
        to = spec["to"]
        if len(variant) != 1 or len(to) != 1:
            raise ValueError(f"ja_variants.toml [kanji] {variant!r}: one character to one character")
        out[variant] = to
    for v, c in out.items():
        if c in out:
            raise ValueError(f"ja_variants.toml [kanji] {v!r} -> {c!r}: the target is itself a variant")
    return out


#: name kanji variant -> canonical (applied after the OpenCC table)
NAME_KANJI: dict[str, str] = _name_kanji(TABLE)
#: separators as normalize() sees them (after NFKC), non-ASCII ones only (ASCII is a boundary anyway)
SEPARATORS: tuple[str, ...] = tuple(dict.fromkeys(
    _nfkc(c) for c in TABLE.get("separators", {}).get("chars", ()) if not _nfkc(c).isascii()))
_small = TABLE.get("small_kana", {})
#: reading fold: small kana (hiragana) -> full-size kana
SMALL_TO_LARGE: dict[str, str] = dict(zip(_small.get("small", ""), _small.get("large", "")))
#: particles as written (hiragana) -> as pronounced
PARTICLES: dict[str, str] = {k: v for k, v in TABLE.get("particles", {}).items() if len(k) == 1}
#: generated readings: surface -> catalogue reading (katakana)
GENERATED: dict[str, str] = {k: v["reading"] for k, v in TABLE.get("generated", {}).items()}

# ----------------------------------------------------------------- query alternatives
_BETWEEN = tuple(_nfkc(c) for c in TABLE.get("between_kanji", {}).get("chars", ()))
_ITER = tuple(TABLE.get("iteration", {}).get("chars", ()))
_LONG = TABLE.get("long_vowel_final", {}).get("char", "ー")
_vu = TABLE.get("vu", {})
_VU_TO_B = dict(zip(_vu.get("from", ()), _vu.get("to", ())))
_B_TO_VU = {b: v for v, b in _VU_TO_B.items()}


def _is_kanji(ch: str) -> bool:
    cp = ord(ch)
    return 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3FFFF


def _is_katakana(ch: str) -> bool:
    return 0x30A1 <= ord(ch) <= 0x30FA or ch == "ー"


def _choice_points(s: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, spellings) of s[start:end], the first spelling as written; non-overlapping,
    in order."""
    points: list[tuple[int, int, list[str]]] = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        prev_k = i > 0 and _is_kanji(s[i - 1])
        next_k = i + 1 < n and _is_kanji(s[i + 1])
        if ch in _BETWEEN and prev_k and next_k:
            points.append((i, i + 1, [ch] + [c for c in _BETWEEN if c != ch]))
        elif ch in _ITER and prev_k:
            points.append((i, i + 1, [ch, s[i - 1]]))
        elif _is_kanji(ch) and prev_k and s[i - 1] == ch and _ITER:
            points.append((i, i + 1, [ch, _ITER[0]]))
        elif s[i:i + 2] in _VU_TO_B:
            points.append((i, i + 2, [s[i:i + 2], _VU_TO_B[s[i:i + 2]]]))
            i += 2
            continue
        elif ch in _VU_TO_B:
            points.append((i, i + 1, [ch, _VU_TO_B[ch]]))
        elif ch in _B_TO_VU and (i > 0 and _is_katakana(s[i - 1]) or i + 1 < n and _is_katakana(s[i + 1])):
            points.append((i, i + 1, [ch, _B_TO_VU[ch]]))
        if _is_katakana(ch) and ch != _LONG and (i + 1 == n or not _is_katakana(s[i + 1])):
            # the end of a katakana word without the mark, followed by more text: also with it
            run = 1
            while i - run >= 0 and _is_katakana(s[i - run]):
                run += 1
            if i + 1 < n and run >= 2:
                points.append((i + 1, i + 1, ["", _LONG]))
        if ch == _LONG and i > 0 and _is_katakana(s[i - 1]) and (i + 1 == n or not _is_katakana(s[i + 1])):
            points.append((i, i + 1, [_LONG, ""]))
        i += 1
    return points


def query_variants(term: str) -> list[str]:
    """The spellings a query term also searches for (NFKC'd; the term as typed first),
    at most MAX_VARIANTS."""
    s = _nfkc(term)
    if s.isascii():
        return [s]
    points = _choice_points(s)
    if not points:
        return [s]
    out: list[str] = []
    for combo in itertools.product(*(p[2] for p in points)):
        parts, pos = [], 0
        for (start, end, _), spelling in zip(points, combo):
            parts.append(s[pos:start])
            parts.append(spelling)
            pos = end
        parts.append(s[pos:])
        v = "".join(parts)
        if v not in out:
            out.append(v)
        if len(out) >= MAX_VARIANTS:
            break
    return out
