"""Normalization and tokenization: the search semantics shared by indexing and queries.

Everything here is used both when a record is indexed and when a query is
compiled, by every backend, so these functions *define* what matches what
(shared/design/SEARCH_SEMANTICS.md, "Normalization" and "Term matching").

normalize(text)
  1. NFKC (full-width Latin -> ASCII, half-width katakana -> full-width,
     compatibility ideographs -> unified ideographs, ligatures split).
  2. casefold.
  3. Combining marks U+0300-U+036F are deleted and precomposed Latin and Greek
     letters map to their base letter (kenkyū -> kenkyu, Tōkyō -> tokyo, and the
     decomposed "o"+U+0304 too).  Letters without a decomposition map by their
     Unicode name: ø->o, đ->d, ł->l, ħ->h, ƒ->f (LATIN ... LETTER X WITH ...),
     æ->ae, œ->oe; also ı->i, ȷ->j, ð->d, þ->th (ß->ss is done by casefold).
     The whole string is never NFD'ed: the kana voiced/semi-voiced marks
     (U+3099/U+309A) are outside that range, so が != か and ぱ != は.
     Cyrillic letters keep their marks (й, ё are letters of their own).
  4. Katakana -> hiragana (ァ..ヶ -> ぁ..ゖ, ヽヾ -> ゝゞ).  ヷヸヹヺ, which have no
     hiragana, are spelt as they are read, ゔぁ ゔぃ ゔぇ ゔぉ (the older
     ヷイオリン finds ヴァイオリン); so are "わ"+U+3099 etc.  ー and 々 are kept.
  5. Kanji variants -> one (Japanese) form, via indexers/kanji_variants.py, then
     the name and place-name variants of config/ja_variants.toml [kanji]
     (髙 -> 高, 﨑 -> 崎, 𠮷 -> 吉, 邉 -> 辺, 斉 -> 斎; indexers/ja_variants.py).
     Its [separators] (・ ゠ between name parts) become spaces: boundaries.
  Also deleted: variation selectors (U+FE00-FE0F, U+E0100-E01EF: glyph choice
  only, e.g. ideographic variation sequences in names), the soft hyphen U+00AD,
  ZWNJ/ZWJ U+200C/D and the word joiner U+2060.  Everything else (punctuation,
  spaces) is left in place: normalize() is not a tokenizer.
  normalize() is idempotent.

tokenize(text)
  normalize(), then: every CJK character is a token of its own (Han
  U+3400-4DBF, 4E00-9FFF, F900-FAFF, 20000-3FFFF; hiragana U+3041-3096 and
  ゝゞゟ; katakana letters left after folding and ー ヽ ヾ ヿ; 々 〆 〇 〻);
  a run of other letters, digits and combining marks (Latin, Greek, Cyrillic,
  Hangul, Indic ...) is one word token; anything else (spaces, punctuation,
  symbols, "_", apostrophes, ・) is a boundary.  So is a kana voiced mark
  U+3099/309A that NFKC could not compose with the character before it
  (as in "あ゙"): alone it would be a token that exact_key() could glue to a
  preceding kana.

exact_key(text)
  tokens joined by one space, without a space between two CJK tokens.

Masking in query terms (query_tokens, exact_query_key): CQL escapes are
interpreted here: unescaped * and ? are masks; "\\*", "\\?", "\\\\", "\\\"" (and
a backslash before any other character) give the literal character.  Masks
stay in the word they touch; a mask touching only CJK characters or spaces is a
token of its own (QToken("*", True, False)).  Masked tokens are SQLite GLOB
patterns.  Only the ASCII * and ? mask: full-width ＊ ？ are punctuation (？ is
common in Japanese titles), as in indexed text.  exact_query_key() joins like
exact_key() and also leaves out the space next to a * that touches a CJK
character or a lone mask ("abc*図" -> "abc*図": the * may cover the space).

Identifiers: normalize_isbn (ISBN-13 digits; ISBN-10 converted), normalize_issn,
normalize_lccn (the Library of Congress's LCCN normalization), extract_year.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .ja_variants import NAME_KANJI as _NAME_KANJI
from .ja_variants import SEPARATORS as _SEPARATORS
from .kanji_variants import TRANSLATION as _KANJI_TRANSLATION

__all__ = [
    "normalize",
    "tokenize",
    "is_cjk",
    "exact_key",
    "QToken",
    "query_tokens",
    "exact_query_key",
    "normalize_isbn",
    "normalize_issn",
    "normalize_lccn",
    "extract_year",
]

_nfkc = unicodedata.normalize
_is_normalized = unicodedata.is_normalized

# ---------------------------------------------------------------------------
# the fold table (steps 3-5), built once at import
# ---------------------------------------------------------------------------

_LATIN_NAME = re.compile(r"LATIN (?:SMALL|CAPITAL) (?:LETTER|LIGATURE) ([A-Z]{1,2})(?: WITH .*)?")
_LETTER_SPECIAL = {"ı": "i", "ȷ": "j", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "ẞ": "ss", "ß": "ss"}
_LATIN_RANGES = ((0x00C0, 0x02AF), (0x1D00, 0x1DBF), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F),
                 (0xA720, 0xA7FF), (0xAB30, 0xAB6F))
_GREEK_RANGES = ((0x0370, 0x03FF), (0x1F00, 0x1FFF))
_DELETE = [(0x0300, 0x036F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF), (0x00AD, 0x00AD),
           (0x200C, 0x200D), (0x2060, 0x2060)]


def _strip_marks(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", s) if not 0x300 <= ord(c) <= 0x36F)


def _latin_base(ch: str) -> str | None:
    """The mark-less lower-case spelling of one Latin letter, or None if it has none."""
    if ch in _LETTER_SPECIAL:
        return _LETTER_SPECIAL[ch]
    base = _strip_marks(ch)
    if base != ch:
        out = "".join(_latin_base(c) or c for c in base).casefold()
        return out if out.isascii() and out.isalpha() else None
    m = _LATIN_NAME.fullmatch(unicodedata.name(ch, ""))
    if m:
        return m.group(1).lower()
    return None


def _build_fold() -> dict[int, int | str | None]:
    fold: dict[int, int | str | None] = {}
    for lo, hi in _LATIN_RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if _nfkc("NFKC", ch) != ch:  # never seen after NFKC
                continue
            base = _latin_base(ch)
            if base and base != ch:
                fold[cp] = base
    for lo, hi in _GREEK_RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if _nfkc("NFKC", ch) != ch or not ch.isalpha():
                continue
            base = _strip_marks(ch)
            if base != ch and len(base) == 1 and base.isalpha():
                fold[cp] = base.casefold()
    for lo, hi in _DELETE:
        for cp in range(lo, hi + 1):
            fold[cp] = None
    # katakana -> hiragana
    for cp in range(0x30A1, 0x30F7):  # ァ..ヶ -> ぁ..ゖ
        fold[cp] = cp - 0x60
    for kata, hira in zip("ヷヸヹヺ", "ぁぃぇぉ"):
        fold[ord(kata)] = "ゔ" + hira
    fold[0x30FD] = 0x309D  # ヽ -> ゝ
    fold[0x30FE] = 0x309E  # ヾ -> ゞ
    fold.update(_KANJI_TRANSLATION)
    # name and place-name variants of config/ja_variants.toml [kanji], after the OpenCC
    # table: what it folds to a name variant goes on to the canonical form (齊 -> 斉 -> 斎)
    names = {ord(v): ord(c) for v, c in _NAME_KANJI.items()}
    for cp, to in fold.items():
        if isinstance(to, int) and to in names:
            fold[cp] = names[to]
    fold.update(names)
    for sep in _SEPARATORS:  # name-part separators ([separators]): boundaries
        fold[ord(sep)] = " "
    return fold


_FOLD = _build_fold()
_VU = tuple(zip(("わ\u3099", "ゐ\u3099", "ゑ\u3099", "を\u3099"), ("ゔぁ", "ゔぃ", "ゔぇ", "ゔぉ")))
# str.translate looks each character up with __getitem__; a dict raises (and
# swallows) KeyError for every character it does not map, which costs ~100 ns
# per character.  A list indexed by code point answers without an exception, so
# the BMP part of the table is a list; astral code points are few and rare.
_FOLD_BMP: list = list(range(0x10000))
for _cp, _to in _FOLD.items():
    if _cp < 0x10000:
        _FOLD_BMP[_cp] = _to
_FOLD_ASTRAL = {cp: to for cp, to in _FOLD.items() if cp >= 0x10000}


def _char_class(cps) -> str:
    """A regex character class body for a set of code points (as ranges)."""
    cps = sorted(cps)
    out, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        out.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
        i = j + 1
    return "".join(out)


# NB: the re module compiles a character class into a bitmap only when all of it
# is in the BMP; a class with any astral member is scanned range by range.  So
# the big classes here are BMP-only, and astral code points are tested apart.
_NEEDS_FOLD_BMP = re.compile("[" + _char_class(cp for cp in _FOLD if cp < 0x10000) + "]")
_ANY_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def normalize(text: str) -> str:
    """The normalized form of ``text`` (see the module docstring)."""
    if text.isascii():
        return text.lower()
    s = _nfkc("NFKC", text).casefold()
    if s.isascii():
        return s
    changed = False
    if _NEEDS_FOLD_BMP.search(s):
        s = s.translate(_FOLD_BMP)
        changed = True
    if _ANY_ASTRAL.search(s):
        s = s.translate(_FOLD_ASTRAL)
        changed = True
    if "l\u00b7l" in s:  # Catalan l·l (ŀl after NFKC): one word
        s = s.replace("l\u00b7l", "ll")
    if "\u3099" in s:  # わ゙ ゐ゙ ゑ゙ を゙ as ヷヸヹヺ
        for k, v in _VU:
            s = s.replace(k, v)
    if changed and not _is_normalized("NFKC", s):
        # a deleted mark separated two characters that compose (e.g. Hangul
        # jamo L + U+0301 + V): run again so that the result is a fixed point
        return normalize(s)
    return s


# ---------------------------------------------------------------------------
# tokenization
# ---------------------------------------------------------------------------

_CJK_RANGES = ((0x3005, 0x3007), (0x303B, 0x303B), (0x3041, 0x3096), (0x309D, 0x309F), (0x30A1, 0x30FA),
               (0x30FC, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF))
_CJK_BMP = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES if hi < 0x10000)
_CJK_ASTRAL = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES if lo >= 0x10000)


def _word_chars() -> list[int]:
    """Code points that make up words: letters, digits and combining marks (categories
    L*, N*, M*) that are not CJK.  "_" (Pc) and everything else is a boundary."""
    cat = unicodedata.category
    # scan [0, 0x20000) minus the CJK ranges, Hangul syllables (all letters: added
    # whole), surrogates and private use; planes 2-3 are CJK, planes 4-16 hold no
    # letters or digits (their marks, variation selectors, are deleted by normalize)
    skip = sorted([r for r in _CJK_RANGES if r[1] < 0x20000]
                  + [(0x3099, 0x309A), (0xAC00, 0xD7A3), (0xD800, 0xF8FF)])
    out: list[int] = []
    lo = 0
    for s_lo, s_hi in skip + [(0x20000, 0x20000)]:
        out.extend(cp for cp in range(lo, s_lo) if cat(chr(cp))[0] in "LNM")
        lo = s_hi + 1
    out.extend(range(0xAC00, 0xD7A4))
    return out


_WORD_CPS = _word_chars()
_WORD_BMP = _char_class(cp for cp in _WORD_CPS if cp < 0x10000)
_WORD_ASTRAL = _char_class(cp for cp in _WORD_CPS if cp >= 0x10000)
_CJK_ALT = rf"[{_CJK_BMP}]|[{_CJK_ASTRAL}]"
# The re module turns a BMP-only class into a bitmap and runs `[...]+` as one tight
# loop; a class with astral members is scanned range by range, and an alternation
# inside `(?:...)+` is much slower per character.  So text without astral code
# points (nearly all of it) takes the _BMP patterns; both define the same tokens.
_TOKEN_BMP_RE = re.compile(rf"[{_CJK_BMP}]|[{_WORD_BMP}]+")
_TOKEN_PAIR_BMP_RE = re.compile(rf"([{_CJK_BMP}])|([{_WORD_BMP}]+)")
_WORD_BMP_RE = re.compile(rf"[{_WORD_BMP}]")
_WORD_ANY = rf"(?:[{_WORD_BMP}]|(?=[\U00010000-\U0010ffff])[{_WORD_ASTRAL}])"
_TOKEN_RE = re.compile(rf"{_CJK_ALT}|{_WORD_ANY}+")
_TOKEN_KIND_RE = re.compile(rf"({_CJK_ALT})|{_WORD_ANY}+")
_ASCII_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """normalize(text) split into tokens: one per CJK character, one per word."""
    s = normalize(text)
    if s.isascii():
        return _ASCII_TOKEN_RE.findall(s)
    if _ANY_ASTRAL.search(s):
        return _TOKEN_RE.findall(s)
    return _TOKEN_BMP_RE.findall(s)


def is_cjk(token: str) -> bool:
    """True for a one-character CJK token (as tokenize() makes them)."""
    if len(token) != 1:
        return False
    cp = ord(token)
    for lo, hi in _CJK_RANGES:
        if cp <= hi:
            return cp >= lo
    return False


def exact_key(text: str) -> str:
    """The whole-field key: tokens joined by a space, no space between two CJK tokens."""
    s = normalize(text)
    if s.isascii():
        return " ".join(_ASCII_TOKEN_RE.findall(s))
    if _ANY_ASTRAL.search(s):
        pairs = [(m.group(), "") if m.lastindex == 1 else ("", m.group()) for m in _TOKEN_KIND_RE.finditer(s)]
    elif not _WORD_BMP_RE.search(s):  # CJK only (most Japanese titles)
        return "".join(_TOKEN_BMP_RE.findall(s))
    else:
        pairs = _TOKEN_PAIR_BMP_RE.findall(s)
    out: list[str] = []
    prev_cjk = False
    for cjk, word in pairs:
        if cjk:
            if out and not prev_cjk:
                out.append(" ")
            out.append(cjk)
            prev_cjk = True
        else:
            if out:
                out.append(" ")
            out.append(word)
            prev_cjk = False
    return "".join(out)


# ---------------------------------------------------------------------------
# query terms with CQL masking
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class QToken:
    text: str     # normalized token; when masked, a SQLite GLOB pattern
    masked: bool  # contains an unescaped * or ?
    cjk: bool     # a one-character CJK token


# Private-use stand-ins for the masks while the term is normalized; they are
# not letters, so in text they are boundaries, and nothing folds them.
_STAR, _QMARK = "\ue0fe", "\ue0ff"
_MASKS = _STAR + _QMARK
_MASKED_TOKEN_RE = re.compile(rf"({_CJK_ALT})|(?:[{_WORD_BMP}{_MASKS}]|(?=[\U00010000-\U0010ffff])[{_WORD_ASTRAL}])+")
_GLOB_ESCAPE = {ord("["): "[[]", ord("*"): "[*]", ord("?"): "[?]", ord(_STAR): "*", ord(_QMARK): "?"}
_STARS_RE = re.compile(r"\*{2,}")


def _unescape(term: str) -> tuple[str, bool]:
    """The term with CQL escapes resolved and masks replaced by the stand-ins."""
    if "\\" not in term and "*" not in term and "?" not in term:
        return term, False
    # the stand-ins must not occur in the input (they are boundaries anyway)
    term = term.replace(_STAR, " ").replace(_QMARK, " ")
    out: list[str] = []
    masked = False
    i, n = 0, len(term)
    while i < n:
        c = term[i]
        if c == "\\":
            out.append(term[i + 1] if i + 1 < n else "\\")
            i += 2
            continue
        if c == "*":
            out.append(_STAR)
            masked = True
        elif c == "?":
            out.append(_QMARK)
            masked = True
        else:
            out.append(c)
        i += 1
    return "".join(out), masked


def _glob(tok: str) -> str:
    return _STARS_RE.sub("*", tok.translate(_GLOB_ESCAPE))


def query_tokens(term: str) -> list[QToken]:
    """Tokenize a CQL search term like tokenize(), keeping masks as GLOB metacharacters."""
    s, masked = _unescape(term)
    if not masked:
        return [QToken(t, False, is_cjk(t)) for t in tokenize(s)]
    s = normalize(s)
    out: list[QToken] = []
    for m in _MASKED_TOKEN_RE.finditer(s):
        tok = m.group()
        if m.lastindex == 1:
            out.append(QToken(tok, False, True))
        elif _STAR in tok or _QMARK in tok:
            out.append(QToken(_glob(tok), True, False))
        else:
            out.append(QToken(tok, False, False))
    return out


def _lone_mask(t: QToken) -> bool:
    return t.masked and not t.text.strip("*?")


def exact_query_key(term: str) -> tuple[str, bool]:
    """exact_key() of a query term: (GLOB pattern, True) when masked, else (key, False)."""
    toks = query_tokens(term)
    masked = any(t.masked for t in toks)
    if not masked:
        return _join_plain(toks), False
    parts: list[str] = []
    prev: QToken | None = None
    for t in toks:
        text = t.text if t.masked else _glob(t.text)
        if prev is not None:
            left = prev.cjk or _lone_mask(prev) or prev.text.endswith("*")
            right = t.cjk or _lone_mask(t) or t.text.startswith("*")
            if not (left and right):
                parts.append(" ")
        parts.append(text)
        prev = t
    return _STARS_RE.sub("*", "".join(parts)), True


def _join_plain(toks: list[QToken]) -> str:
    parts: list[str] = []
    prev_cjk = False
    for t in toks:
        if parts and not (t.cjk and prev_cjk):
            parts.append(" ")
        parts.append(t.text)
        prev_cjk = t.cjk
    return "".join(parts)


# ---------------------------------------------------------------------------
# identifiers and years
# ---------------------------------------------------------------------------

# a run of digits, spaces and hyphens (ending in a digit or X): "978-4-10-433218-2", "4 10 433218 X"
_ISBN_RUN = re.compile(r"(?<![0-9])[0-9][0-9 \-]*[0-9Xx](?![0-9])")
_ISBN10 = re.compile(r"[0-9]{9}[0-9X]")
_ISBN13 = re.compile(r"97[89][0-9]{10}")
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212\u30fc\uff0d"})


def _isbn13_check(first12: str) -> str:
    total = sum((3 if i % 2 else 1) * int(d) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def _isbn_candidate(compact: str) -> str | None:
    compact = compact.upper()
    if len(compact) == 13 and _ISBN13.fullmatch(compact):
        return compact
    if len(compact) == 10 and _ISBN10.fullmatch(compact):
        first12 = "978" + compact[:9]
        return first12 + _isbn13_check(first12)
    return None


def normalize_isbn(value: str) -> str | None:
    """ISBN-13 digits of the first ISBN in a 020 $a/$z value, or None.

    Hyphens and spaces inside the number are ignored; an ISBN-10 is converted to
    ISBN-13 with a recomputed check digit.  Check digits are not verified: an
    ISBN with a wrong check digit is still returned (an ISBN-10 converted, so its
    bad check digit disappears; an ISBN-13 as it is), because catalog records
    have typos and a record should stay findable by the number printed in it.
    A 13-digit number not starting with 978/979 is not an ISBN.
    """
    if not value:
        return None
    if len(value) == 13 and value.isdigit() and value.isascii() and value[:3] in ("978", "979"):
        return value        # already ISBN-13 digits (the common case of lookups): as the general path gives
    if not value.isascii():
        value = _nfkc("NFKC", value).translate(_DASHES)
    for m in _ISBN_RUN.finditer(value):
        run = m.group()
        found = _isbn_candidate(run.replace("-", "").replace(" ", ""))
        if found:
            return found
        for piece in run.split():  # "4104332182 2000": two numbers, not one
            found = _isbn_candidate(piece.replace("-", ""))
            if found:
                return found
    return None


_ISSN_RE = re.compile(r"(?<![0-9])([0-9]{4})[ \-]?([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


def normalize_issn(value: str) -> str | None:
    """"0317-8471" / "0317 847x" -> "03178471" / "0317847X"; None if there is no ISSN."""
    if not value:
        return None
    if not value.isascii():
        value = _nfkc("NFKC", value).translate(_DASHES)
    m = _ISSN_RE.search(value)
    return (m.group(1) + m.group(2)).upper() if m else None


_LCCN_OK = re.compile(r"[a-z]{0,3}[0-9]{8}|[a-z]{0,2}[0-9]{10}")


def normalize_lccn(value: str) -> str | None:
    """The Library of Congress's LCCN normalization; None if the result is no LCCN.

    Remove all blanks; drop a "/" and everything after it; if there is a hyphen,
    remove it and left-pad the digits after it with zeros to six digits
    ("n 78-890351" -> "n78890351", "85-2" -> "85000002").  Prefix letters are
    lower-cased.
    """
    if not value:
        return None
    s = _nfkc("NFKC", value) if not value.isascii() else value
    s = "".join(s.split()).lower()
    s = s.split("/", 1)[0]
    if "-" in s:
        left, _, right = s.partition("-")
        if not right.isdigit() or len(right) > 6:
            return None
        s = left + right.zfill(6)
    return s if _LCCN_OK.fullmatch(s) else None


_YEAR_RE = re.compile(r"(?<![0-9])([0-9]{4})(?![0-9])")


def extract_year(value: str) -> int | None:
    """The first four-digit year in a date value ("c1998." -> 1998, "19uu" -> None).

    Works for 008/07-10 and 260/264 $c alike; "0000" and "9999" (unknown,
    continuing) are not years.
    """
    if not value:
        return None
    if not value.isascii():
        value = _nfkc("NFKC", value)
    m = _YEAR_RE.search(value)
    if not m:
        return None
    year = int(m.group(1))
    return year if 0 < year < 9999 else None
