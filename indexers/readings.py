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
_RUN_RE = re.compile(r"[\u3041-\u3096\u309d\u309eー\u3099\u309a]+|[a-zāīūēôâîûêō](?:[a-zāīūēôâîûêō'’ʼ\-‐]*[a-zāīūēôâîûêō])?")
_OTHER_RE = re.compile(r"[0-9]|[^\W_]", re.UNICODE)


def has_kanji(text: str) -> bool:
    return _KANJI_RE.search(text) is not None


def has_kana(text: str) -> bool:
    return _KANA_RE.search(unicodedata.normalize("NFKC", text).translate(_HIRA)) is not None


def _prep(text: str) -> str:
    """NFKC, case folding and katakana -> hiragana; macrons kept (unlike normalize())."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = unicodedata.normalize("NFC", s)
    return s.translate(_HIRA)


# ----------------------------------------------------------------- romaji
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
    return [x for x in segs if x]


def key(reading: str) -> list[str]:
    """The reading key: one token per kana (see the module docstring)."""
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
    return out


def short(tokens: list[str]) -> list[str]:
    """The key without vowel length."""
    return [t for t in tokens if t != LONG]


def sort_key(segments: Iterable[str]) -> str:
    """The dictionary-order key of a reading (JIS X 4061 style, see the docstring):
    primary kana, a space, the voicing level of each kana."""
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
                        from sudachipy import Dictionary, SplitMode

                        self._tok = (Dictionary(dict="core").tokenizer(), SplitMode.C)
                    except Exception as e:  # noqa: BLE001 - no analyser: no generated readings, said once
                        self.failed = f"{type(e).__name__}: {e}"
                        log.warning("no generated readings: the analyser could not be loaded (%s)", self.failed)
        return self._tok


ANALYSER = _Analyser()
_PARTICLE_KATA = {"ハ": "ワ", "ヘ": "エ", "ヲ": "オ"}
_KATA_READING_RE = re.compile(r"[\u30a1-\u30faー]+")


def generated_reading(text: str) -> list[str]:
    """The analyser's reading of a value (hiragana segments): particles as pronounced,
    the catalogue readings of config/ja_variants.toml [generated]; a word the analyser
    does not know (its reading is not kana) ends a segment.  [] without the analyser."""
    tk = ANALYSER.tokenizer()
    if tk is None:
        return []
    tokenizer, mode = tk
    # the analyser knows the Japanese forms: fold Chinese and old forms first
    s = unicodedata.normalize("NFKC", text).translate(_KANJI)
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


# ----------------------------------------------------------------- queries
def query_readings(term: str) -> tuple[list[list[str]], bool]:
    """A query term as reading keys: (alternatives, marks_length).  Alternatives differ in
    the particles (は/へ not first, and the romaji words ha/wa/he/e, also as the other
    spelling); marks_length is True when the term is kana or marks a long vowel (macron,
    doubled vowel, ー): it is then matched against keys, else against short keys.
    ([], False) when the term is not one reading (kanji, other words, digits)."""
    t = term.strip().strip("*").strip()
    if not t or "*" in t or "?" in t or has_kanji(t):
        return [], False
    segs = reading_kana(t)
    if len(segs) != 1:
        return [], False
    prepped = _prep(t)
    kana_term = _KANA_RE.search(prepped) is not None
    alts = _particle_alternatives(prepped, kana_term)
    toks = []
    for a in alts:
        got = reading_kana(a)
        if len(got) == 1:
            k = key(got[0])
            if k and k not in toks:
                toks.append(k)
    if not toks:
        return [], False
    marks = kana_term or any(LONG in k for k in toks)
    if not marks:
        toks = [short(k) for k in toks]
    return toks, marks


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
