"""Japanese readings: one canonical reading key for kana, romaji and kanji (docs/search.md,
"Readings").

A *reading* is how a heading is read, spelt in hiragana (``reading_kana``):
* kana as they are (katakana folded to hiragana, iteration marks ゝゞ spelt out);
* romaji (ALA-LC/modified Hepburn with or without macrons, kunrei and Nihon-shiki,
  wāpuro spellings with doubled vowels) converted syllable by syllable; a macron or
  circumflex, and "h" closing a syllable (Ohno, Satoh), is the long-vowel mark ー;
  n' / nʼ / n- / n before a consonant and m before b, m, p are ん;
* kanji: the reading of the heading's linked field (LoC: romanized 245 with kanji in
  880; NDL: kanji in 245 with the reading in 880), else a *generated* reading from the
  morphological analyser SudachiPy with its core dictionary (pinned in pyproject.toml),
  kept apart and marked as generated.

Word spaces and punctuation are not part of a reading (kana readings and kana queries
have none, romanized ones do); digits and words that are not romaji break a reading
into segments, which phrases do not bridge.

The *reading key* (``key``) is the sequence of tokens, one per kana, that a reading
query is matched against (substring semantics, as CJK text):
1. small kana are full-size (ァ = ア, ッ = ツ, ョ = ヨ; config/ja_variants.toml);
2. ヴ is ブ, ヴァ ヴィ ヴェ ヴォ are バ ビ ベ ボ; ヂ = ジ, ヅ = ズ, ヰ = イ, ヱ = エ, ヲ = オ;
3. vowel length is one token ー: the mark ー, and a vowel kana that repeats the vowel
   before it (aa, ii, uu, ee, oo) or is う after an o (ou); ei stays two kana;
4. the *short key* (``short``) is the key without ー: what a romaji query that does
   not mark length (kenkyu, tokyo) is matched against.

So kenkyū = kenkyuu = けんきゅう = ケンキユウ → け ん き ゆ ー (short: け ん き ゆ);
tosyokan = toshokan = としょかん → と し よ か ん; shimbun = shinbun → し ん ぶ ん.

The *sort key* (``sort_key``) orders readings the way Japanese dictionaries do (JIS X
4061): first by the kana with voicing removed (は = ば = ぱ), small kana full-size and ー
read as the vowel before it (o + ー as う), in 五十音 order; then by voicing
(unvoiced < voiced < semi-voiced).
"""
from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from typing import Any, Iterable

from . import ja_variants as jv
from .kanji_variants import TRANSLATION as _KANJI

log = logging.getLogger("unioncat.readings")

LONG = "ー"

# ----------------------------------------------------------------- kana tables
_GOJUON = {
    "": "あいうえお", "k": "かきくけこ", "s": "さしすせそ", "t": "たちつてと", "n": "なにぬねの",
    "h": "はひふへほ", "m": "まみむめも", "r": "らりるれろ", "g": "がぎぐげご", "z": "ざじずぜぞ",
    "d": "だぢづでど", "b": "ばびぶべぼ", "p": "ぱぴぷぺぽ",
}
_VOWELS = "aiueo"


def _romaji_table() -> dict[str, str]:
    t: dict[str, str] = {}
    for c, row in _GOJUON.items():
        for v, k in zip(_VOWELS, row):
            t[c + v] = k
    t.update({"ya": "や", "yu": "ゆ", "yo": "よ", "ye": "いぇ", "yi": "い",
              "wa": "わ", "wi": "うぃ", "wu": "う", "we": "うぇ", "wo": "を",
              "shi": "し", "chi": "ち", "tsu": "つ", "fu": "ふ", "ji": "じ",
              "fa": "ふぁ", "fi": "ふぃ", "fe": "ふぇ", "fo": "ふぉ", "fyu": "ふゅ",
              "va": "ゔぁ", "vi": "ゔぃ", "vu": "ゔ", "ve": "ゔぇ", "vo": "ゔぉ",
              "tsa": "つぁ", "tsi": "つぃ", "tse": "つぇ", "tso": "つぉ",
              "she": "しぇ", "che": "ちぇ", "je": "じぇ", "ja": "じゃ", "ju": "じゅ", "jo": "じょ"})
    small_y = {"a": "ゃ", "u": "ゅ", "o": "ょ"}
    for c, i_kana in (("k", "き"), ("g", "ぎ"), ("n", "に"), ("h", "ひ"), ("b", "び"), ("p", "ぴ"), ("m", "み"),
                      ("r", "り"), ("sh", "し"), ("ch", "ち"), ("j", "じ"),
                      ("s", "し"), ("t", "ち"), ("z", "じ"), ("d", "ぢ"), ("jy", "じ"), ("cy", "ち")):
        for v, small in small_y.items():
            key = c + ("y" if c not in ("sh", "ch", "j", "jy", "cy") else "") + v
            if c in ("jy", "cy"):
                key = c + v
            t.setdefault(key, i_kana + small)
    for x in ("x", "l"):  # wāpuro small kana
        for v, k in zip(_VOWELS, "ぁぃぅぇぉ"):
            t[x + v] = k
        t[x + "tu"] = t[x + "tsu"] = "っ"
        t[x + "ya"], t[x + "yu"], t[x + "yo"] = "ゃ", "ゅ", "ょ"
    return t


ROMAJI = _romaji_table()
_ROMAJI_MAX = max(map(len, ROMAJI))
_CONSONANTS = set("kstnhmrgzdbpfjvwycxl")
_MACRON = {"ā": "a^", "ī": "i^", "ū": "u^", "ē": "e^", "ō": "o^",
           "â": "a^", "î": "i^", "û": "u^", "ê": "e^", "ô": "o^"}
_SYLLABLE_MARKS = "'’ʼ-‐"

# vowel of each full-size kana (after the small-kana fold)
_VOWEL_OF: dict[str, str] = {}
for _row in _GOJUON.values():
    for _v, _k in zip(_VOWELS, _row):
        _VOWEL_OF[_k] = _v
_VOWEL_OF.update({"や": "a", "ゆ": "u", "よ": "o", "わ": "a", "ゐ": "i", "ゑ": "e", "を": "o", "ゔ": "u"})
_VOWEL_KANA = dict(zip(_VOWELS, "あいうえお"))
_FOLD = {"ぢ": "じ", "づ": "ず", "ゐ": "い", "ゑ": "え", "を": "お"}
_VU_B = {"あ": "ば", "い": "び", "え": "べ", "お": "ぼ"}
_VOICED = {k: chr(ord(k) + 1) for k in "かきくけこさしすせそたちつてとはひふへほ"}
_VOICED["う"] = "ゔ"
_UNVOICE: dict[str, tuple[str, str]] = {}  # kana -> (unvoiced kana, level digit)
for _k in "かきくけこさしすせそたちつてとはひふへほ":
    _UNVOICE[chr(ord(_k) + 1)] = (_k, "1")
for _k in "はひふへほ":
    _UNVOICE[chr(ord(_k) + 2)] = (_k, "2")
_UNVOICE["ゔ"] = ("う", "1")
_SORT_LONG = {"a": "あ", "i": "い", "u": "う", "e": "え", "o": "う"}


def _kata_to_hira() -> dict[int, str]:
    t = {cp: chr(cp - 0x60) for cp in range(0x30A1, 0x30F7)}
    t.update({0x30F7: "ゔぁ", 0x30F8: "ゔぃ", 0x30F9: "ゔぇ", 0x30FA: "ゔぉ", 0x30FD: "ゝ", 0x30FE: "ゞ",
              0x30FF: "こと", 0x309F: "より"})
    return t


_HIRA = _kata_to_hira()
_KANA_RE = re.compile(r"[\u3041-\u3096\u309d\u309e\u30fc]")
_KANJI_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005\u3007\u303b\U00020000-\U0003ffff]")
# a reading run: kana (with ー and the iteration marks) or one Latin word (letters with
# macrons/circumflexes, apostrophes and hyphens inside)
_LATIN = "a-zāīūēōâîûêô"
_RUN_RE = re.compile(rf"[\u3041-\u3096\u309d\u309eー\u3099\u309a]+|[{_LATIN}](?:[{_LATIN}'’ʼ\-‐]*[{_LATIN}])?")
_OTHER_RE = re.compile(r"[0-9]|[^\W_]", re.UNICODE)


def has_kanji(text: str) -> bool:
    return _KANJI_RE.search(text) is not None


_KANA_ANY_RE = re.compile(r"[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe\uff66-\uff9d\uff70]")


def has_kana(text: str) -> bool:
    """Hiragana, katakana (half-width too) or ー in a value."""
    return _KANA_ANY_RE.search(text) is not None


def _prep(text: str) -> str:
    """NFKC, case folding and katakana -> hiragana; macrons kept (unlike normalize())."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = unicodedata.normalize("NFC", s)
    return s.translate(_HIRA)


# ----------------------------------------------------------------- romaji
@functools.lru_cache(maxsize=1 << 17)
def romaji_to_kana(word: str) -> str | None:
    """One romanized word as hiragana (ー for a marked long vowel); None when it is not
    romaji.  ``word`` is lower-case (NFC), as _prep gives it."""
    w = "".join(_MACRON.get(c, c) for c in word)
    out: list[str] = []
    i, n = 0, len(w)
    while i < n:
        c = w[i]
        nxt = w[i + 1] if i + 1 < n else "\0"
        if c in _SYLLABLE_MARKS:
            i += 1
            continue
        if c == "^":
            out.append(LONG)
            i += 1
            continue
        if c == "n" and nxt not in _VOWELS and nxt != "y":
            out.append("ん")
            if nxt in _SYLLABLE_MARKS:
                i += 2
            elif nxt == "n" and (i + 2 >= n or (w[i + 2] not in _VOWELS and w[i + 2] != "y")):
                i += 2  # wāpuro "nn" for one ん
            else:
                i += 1
            continue
        if c == "m" and nxt in ("b", "m", "p"):
            out.append("ん")
            i += 1
            continue
        if c in _CONSONANTS and c == nxt and c not in "nyw":
            out.append("っ")
            i += 1
            continue
        if c == "t" and w[i + 1:i + 3] == "ch":
            out.append("っ")
            i += 1
            continue
        if c == "h" and out and i > 0 and (w[i - 1] in _VOWELS or w[i - 1] == "^") \
                and nxt not in _VOWELS and nxt != "y":
            out.append(LONG)  # Ohno, Satoh: h closing a syllable marks the long vowel
            i += 1
            continue
        for size in range(min(_ROMAJI_MAX, n - i), 0, -1):
            kana = ROMAJI.get(w[i:i + size])
            if kana is not None:
                out.append(kana)
                i += size
                break
        else:
            return None
    return "".join(out)


# ----------------------------------------------------------------- readings of text
def reading_kana(text: str) -> list[str]:
    """The reading of a value without kanji (see _reading_kana); cached per value."""
    return list(_reading_kana(text))


@functools.lru_cache(maxsize=1 << 16)
def _reading_kana(text: str) -> tuple[str, ...]:
    """The reading of a value without kanji, as hiragana segments (kana as written,
    romaji converted); word spaces and punctuation dropped, anything else (digits,
    words that are not romaji, kanji) ends a segment."""
    s = _prep(text)
    segs: list[str] = []
    cur: list[str] = []
    pos = 0
    for m in _RUN_RE.finditer(s):
        if _OTHER_RE.search(s, pos, m.start()):
            if cur:
                segs.append("".join(cur))
                cur = []
        pos = m.end()
        run = m.group()
        if run[0] in "\u3099\u309a":
            continue
        if "\u3041" <= run[0] <= "\u309e" or run[0] == LONG:
            cur.append(run)
            continue
        kana = romaji_to_kana(run)
        if kana is None:
            if cur:
                segs.append("".join(cur))
                cur = []
            continue
        cur.append(kana)
    if _OTHER_RE.search(s, pos):
        if cur:
            segs.append("".join(cur))
            cur = []
    if cur:
        segs.append("".join(cur))
    return tuple(x for x in segs if x)


def key(reading: str) -> list[str]:
    """The reading key: one token per kana (see the module docstring); cached."""
    return list(_key(reading))


@functools.lru_cache(maxsize=1 << 16)
def _key(reading: str) -> tuple[str, ...]:
    out: list[str] = []
    prev_vowel: str | None = None
    last_base = ""
    n = len(reading)
    i = 0
    while i < n:
        ch = reading[i]
        i += 1
        if ch == "ゝ":
            ch = last_base or ch
        elif ch == "ゞ":
            ch = _VOICED.get(last_base, last_base) or ch
        if ch == "ゔ":
            nxt = jv.SMALL_TO_LARGE.get(reading[i], reading[i]) if i < n else ""
            if nxt in _VU_B:
                ch = _VU_B[nxt]
                i += 1
            else:
                ch = "ぶ"
        ch = jv.SMALL_TO_LARGE.get(ch, ch)
        ch = _FOLD.get(ch, ch)
        if ch == LONG or (prev_vowel is not None and ch in "あいうえお"
                          and (_VOWEL_KANA[prev_vowel] == ch or (prev_vowel == "o" and ch == "う"))):
            if prev_vowel is not None and out[-1] != LONG:
                out.append(LONG)
            continue
        if not ("\u3041" <= ch <= "\u3096"):
            continue
        out.append(ch)
        prev_vowel = _VOWEL_OF.get(ch)
        base = _UNVOICE.get(ch)
        last_base = base[0] if base else ch
    return tuple(out)


def short(tokens: list[str]) -> list[str]:
    """The key without vowel length."""
    return [t for t in tokens if t != LONG]


def sort_key(segments: Iterable[str]) -> str:
    """The dictionary-order key of a reading (JIS X 4061 style, see the docstring):
    primary kana, a space, the voicing level of each kana; cached."""
    return _sort_key(tuple(segments))


@functools.lru_cache(maxsize=1 << 15)
def _sort_key(segments: tuple[str, ...]) -> str:
    prim: list[str] = []
    level: list[str] = []
    prev = ""
    for seg in segments:
        for t in key(seg):
            if t == LONG:
                t = _SORT_LONG.get(_VOWEL_OF.get(prev, ""), "")
                if not t:
                    continue
                prim.append(t)
                level.append("0")
                continue
            prev = t
            base, lv = _UNVOICE.get(t, (t, "0"))
            prim.append(base)
            level.append(lv)
    return "".join(prim) + " " + "".join(level) if prim else ""


# ----------------------------------------------------------------- generated readings
class _Analyser:
    """SudachiPy with sudachidict_core, loaded once per process on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tok: Any = None
        self.failed: str | None = None

    def tokenizer(self):
        if self._tok is None and self.failed is None:
            with self._lock:
                if self._tok is None and self.failed is None:
                    try:
                        from sudachipy import Dictionary, SplitMode  # type: ignore[import-untyped]

                        self._tok = (Dictionary(dict="core").tokenizer(), SplitMode.C)
                    except Exception as e:  # noqa: BLE001 - no analyser: no generated readings, said once
                        self.failed = f"{type(e).__name__}: {e}"
                        log.warning("no generated readings: the analyser could not be loaded (%s)", self.failed)
        return self._tok


ANALYSER = _Analyser()
_NAME_KANJI = str.maketrans(jv.NAME_KANJI)
_PARTICLE_KATA = {"ハ": "ワ", "ヘ": "エ", "ヲ": "オ"}
_KATA_READING_RE = re.compile(r"[\u30a1-\u30faー]+")


@functools.lru_cache(maxsize=1 << 16)
def _generated(text: str) -> tuple[str, ...]:
    return tuple(_generate(text))


def generated_reading(text: str) -> list[str]:
    """The analyser's reading of a value as hiragana segments (cached per distinct value)."""
    return list(_generated(text))


def _generate(text: str) -> list[str]:
    """The analyser's reading of a value (hiragana segments): particles as pronounced,
    the catalogue readings of config/ja_variants.toml [generated]; a word the analyser
    does not know (its reading is not kana) ends a segment.  [] without the analyser."""
    tk = ANALYSER.tokenizer()
    if tk is None:
        return []
    tokenizer, mode = tk
    # the analyser knows the Japanese forms: fold Chinese and old forms first
    s = unicodedata.normalize("NFKC", text).translate(_KANJI).translate(_NAME_KANJI)
    segs: list[str] = []
    cur: list[str] = []
    for m in tokenizer.tokenize(s, mode):
        surface = m.surface()
        reading = jv.GENERATED.get(surface) or m.reading_form()
        pos0 = m.part_of_speech()[0]
        if pos0 == "助詞" and reading in _PARTICLE_KATA:
            reading = _PARTICLE_KATA[reading]
        if pos0 in ("補助記号", "空白"):
            continue
        if _KATA_READING_RE.fullmatch(reading):
            cur.append(reading.translate(_HIRA))
            continue
        if not has_kanji(surface):  # Latin, digits: read as text (romaji words), else a break
            got = reading_kana(surface)
            if len(got) == 1 and _RUN_RE.fullmatch(_prep(surface)):
                cur.append(got[0])
                continue
        if cur:
            segs.append("".join(cur))
            cur = []
    if cur:
        segs.append("".join(cur))
    return segs


# ----------------------------------------------------------------- canonical key, index and query
#: the reading tokens of a field: one canonical-key kana each, after a private-use mark
#: that tokenize() never produces (so only reading queries meet them).  Generated
#: readings (the analyser's) have their own marks; a key with vowel length is also
#: indexed without it (the short marks), for romaji queries that do not mark length.
CATALOGUED = "\ue002"
GENERATED_MARK = "\ue003"
CATALOGUED_SHORT = "\ue004"
GENERATED_SHORT = "\ue005"
#: romanized readings that mark no vowel length anywhere (Tokyo, kenkyu): their length is
#: unknown, so every query is matched against them without length
UNMARKED = "\ue006"
FULL_MARKS = (CATALOGUED, GENERATED_MARK)
ALL_MARKS = (CATALOGUED, GENERATED_MARK, CATALOGUED_SHORT, GENERATED_SHORT, UNMARKED)
_SHORT_OF = {CATALOGUED: CATALOGUED_SHORT, GENERATED_MARK: GENERATED_SHORT}
#: a romanized query term is searched as a reading when its key has this many kana
#: (shorter ones, "to", "no", "e", are words of their own: they are searched as words only)
MIN_ROMAJI_KANA = 2


def canonical(reading: str) -> list[str]:
    """THE canonical reading key (docs/search.md, "Readings"): key() of the reading,
    so kenkyū = kenkyuu = けんきゅう = ケンキユウ -> け ん き ゆ ー (short: け ん き ゆ)."""
    return key(reading)


@functools.lru_cache(maxsize=1 << 16)
def _value_keys(value: str) -> tuple[tuple[str, ...], ...]:
    return tuple(k for k in (tuple(canonical(seg)) for seg in reading_kana(value)) if k)


@functools.lru_cache(maxsize=1 << 16)
def _generated_keys(value: str) -> tuple[tuple[str, ...], ...]:
    return tuple(k for k in (tuple(canonical(seg)) for seg in generated_reading(value)) if k)


def _marked(keys, mark: str) -> list[list[str]]:
    out = []
    for k in keys:
        out.append([mark + t for t in k])
        if LONG in k:
            out.append([_SHORT_OF[mark] + t for t in k if t != LONG])
    return out


def is_japanese(fields: dict[str, list[str]]) -> bool:
    """A document is Japanese when its language says so or a title or name has kana."""
    if any(v.lower() == "jpn" for v in fields.get("language", ())):
        return True
    return any(has_kana(v) for f in ("title", "creator") for v in fields.get(f, ()))


def reading_values(values: list[str], japanese: bool) -> list[list[str]]:
    """The reading token lists of one field's values (one list per reading segment):
    * the catalogued readings: values without kanji, kana always, romaji when the
      document is Japanese, each as its canonical key marked CATALOGUED;
    * when the field has none and the document is Japanese, the generated readings of
      its values with kanji, marked GENERATED_MARK;
    a key with ー also without it, marked CATALOGUED_SHORT / GENERATED_SHORT; romaji
    values that mark no length anywhere are marked UNMARKED instead of CATALOGUED."""
    out: list[list[str]] = []
    kanji_values = []
    for v in values:
        if has_kanji(v):
            kanji_values.append(v)
            continue
        kana = has_kana(v)
        if not japanese and not kana:
            continue
        keys = _value_keys(v)
        if kana or any(LONG in k for k in keys):
            out.extend(_marked(keys, CATALOGUED))
        else:  # romaji without any length mark: length unknown
            out.extend(_marked(keys, UNMARKED))
    if not out and japanese:
        for v in kanji_values:
            out.extend(_marked(_generated_keys(v), GENERATED_MARK))
    return out


def _readable(value: str) -> bool:
    """True when every Latin word of a value is romaji (so the value is a reading)."""
    s = _prep(value)
    return all(romaji_to_kana(m.group()) is not None for m in _RUN_RE.finditer(s) if m.group()[0].isascii()
               or not ("\u3041" <= m.group()[0] <= "\u309e" or m.group()[0] == LONG))


def reading_of(values: list[str], skip: int = 0) -> list[str]:
    """The reading of a Japanese heading (see _reading_of); cached per heading."""
    return list(_reading_of(tuple(values), skip))


@functools.lru_cache(maxsize=1 << 15)
def _reading_of(values: tuple[str, ...], skip: int = 0) -> tuple[str, ...]:
    """The reading of a Japanese heading from its forms (docs/search.md, "Order by
    reading"), as hiragana segments: its kana form if it has one, else its romanized
    form when that is all romaji (``skip`` non-filing characters left out), else the
    generated reading of its first form with kanji; [] when none of these reads."""
    kana = [v for v in values if not has_kanji(v) and has_kana(v)]
    if kana:
        return _reading_kana(kana[0])
    for i, v in enumerate(values):
        if not has_kanji(v) and not has_kana(v):
            text = v[skip:] if i == 0 else v
            if _readable(text):
                return _reading_kana(text)
            break
    for v in values:
        if has_kanji(v):
            return _generated(v)
    return ()


def sort_reading(values: list[str], skip: int = 0) -> str | None:
    """The filing key of a Japanese heading: sort_key() of reading_of(); in hiragana, so
    after every Latin key in code point order, as Japanese libraries file (JIS X 4061:
    Latin before kana before kanji).  None when the heading has no reading."""
    return sort_key(reading_of(values, skip)) or None


def spelled(segments: list[str]) -> str:
    """A reading as a patron types it in hiragana: segments joined by spaces, a long
    vowel written with its kana (とーきょー -> とうきょう, o and u + ー as う)."""
    out = []
    for seg in segments:
        chars: list[str] = []
        for ch in seg:
            if ch == LONG and chars:
                v = _VOWEL_OF.get(jv.SMALL_TO_LARGE.get(chars[-1], chars[-1]))
                if v:
                    chars.append(_SORT_LONG[v] if v in "ou" else _VOWEL_KANA[v])
                    continue
            chars.append(ch)
        out.append("".join(chars))
    return " ".join(out)


#: packs the reading and the heading in the display of a scan-by-reading key
SCAN_SEP = "\u001e"


def query_keys(term: str) -> tuple[list[list[str]], bool]:
    """A query term (one word, or the words of a phrase) as canonical reading keys, and
    whether it marks vowel length.  The keys are alternatives that differ in the
    particles (a は/へ that is not first, and the romaji words ha/wa/he/e, also as the
    other spelling).  A term marks length when it is kana or has a macron, circumflex
    or doubled vowel; one that does not is matched against the keys and the short keys
    (tokyo finds tōkyō), one that does against the keys only (スパ is not スーパー).
    ([], False) when the term is not one reading (kanji, masks, digits, words that are
    not romaji, or a romaji term of fewer than MIN_ROMAJI_KANA kana)."""
    t = term.strip()
    if not t or "*" in t or "?" in t or "\\" in t or has_kanji(t):
        return [], False
    segs = reading_kana(t)
    if len(segs) != 1:
        return [], False
    prepped = _prep(t)
    kana_term = _KANA_RE.search(prepped) is not None
    out: list[list[str]] = []
    for a in _particle_alternatives(prepped, kana_term):
        got = reading_kana(a)
        if len(got) == 1:
            k = canonical(got[0])
            if k and k not in out:
                out.append(k)
    if not out or (not kana_term and len(short(out[0])) < MIN_ROMAJI_KANA):
        return [], False
    return out, kana_term or any(LONG in k for k in out)


def _particle_alternatives(s: str, kana_term: bool) -> list[str]:
    words = s.split()
    choices: list[list[str]] = []
    roman = {"ha": "wa", "wa": "ha", "he": "e", "e": "he"}
    for wi, w in enumerate(words):
        if not kana_term and w in roman and wi > 0:
            choices.append([w, roman[w]])
            continue
        if kana_term:
            spell = [w]
            for i, ch in enumerate(w):
                if ch in jv.PARTICLES and (i > 0 or wi > 0) and ch != "を":
                    spell = [x[:i] + y + x[i + 1:] for x in spell for y in (ch, jv.PARTICLES[ch])][:jv.MAX_VARIANTS]
            choices.append(spell)
            continue
        choices.append([w])
    out = [""]
    for c in choices:
        out = [(a + " " + b).strip() for a in out for b in c][:jv.MAX_VARIANTS]
    return out
