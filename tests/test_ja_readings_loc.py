"""Readings on real records (issue 16): the first Japanese Library of Congress records
of the slow tests' file (bench/loc_data.py) in the LoC convention (romanized 245,
kanji in the linked 880), copies of them in the NDL/TRC convention with a katakana
reading (ヨミ) in the 880, and kanji-only copies (no reading at all: generated ones),
on both backends.  Marked slow (`make test-slow`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pymarc
import pytest

from catalog_builder import BACKENDS, backend_fixture
from indexers import readings as rd
from indexers.normalize import normalize, tokenize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from loc_data import loc_records_path  # noqa: E402
from readings_bench import _lang, _records  # noqa: E402

pytestmark = pytest.mark.slow
N = 600  # LoC Japanese records
DROP = ("010", "015", "016", "020", "035", "852")  # copies are union records of their own


def _linked_title(rec: pymarc.Record):
    f245 = rec["245"]
    if f245 is None or not f245.get("6"):
        return None
    links = [f for f in rec.get_fields("880") if (f.get("6") or "").startswith("245")]
    return (f245, links[0]) if links else None


def _title_text(f: pymarc.Field) -> str:
    return " ".join(s.value for s in f.subfields if s.code in "ab").strip(" /:;.,")


def _copy(rec: pymarc.Record, prefix: str, title_subfields, reading: str | None) -> pymarc.Record:
    """rec with 245 = the vernacular title; the linked 880 = ``reading`` (or none)."""
    f245, vern = _linked_title(rec)
    new = pymarc.Record(force_utf8=True, leader=rec.leader)
    new.add_field(pymarc.Field(tag="001", data=prefix + rec["001"].data.strip()))
    for f in rec.fields:
        if f.tag in ("001", *DROP) or f.tag == "880" or f is f245:
            continue
        new.add_field(f)
    subs = [s for s in title_subfields if s.code != "6"]
    if reading is None:
        new.add_field(pymarc.Field(tag="245", indicators=f245.indicators, subfields=subs))
    else:
        new.add_field(pymarc.Field(tag="245", indicators=f245.indicators,
                                   subfields=[pymarc.Subfield("6", "880-01")] + subs))
        new.add_field(pymarc.Field(tag="880", indicators=f245.indicators,
                                   subfields=[pymarc.Subfield("6", "245-01/$1"), pymarc.Subfield("a", reading)]))
    return new


def _katakana(romanized: str) -> str | None:
    """The ヨミ a cataloguer would write for a romanized title: its reading in katakana,
    words kept apart (NDL style), or None when it is not all romaji."""
    words = []
    for w in romanized.split():
        segs = rd.reading_kana(w)
        if len(segs) != 1 and any(c.isalpha() for c in w):
            return None
        words.extend("".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in rd.spelled([s])) for s in segs)
    return " ".join(words) or None


def loc_japanese(n: int) -> list[pymarc.Record]:
    out = []
    for raw in _records(loc_records_path()):
        if _lang(raw) != b"jpn":
            continue
        rec = next(iter(pymarc.MARCReader(raw, to_unicode=True, force_utf8=True)), None)
        if rec is None or rec["001"] is None or _linked_title(rec) is None:
            continue
        out.append(rec)
        if len(out) >= n:
            break
    return out


@pytest.fixture(scope="module")
def records():
    loc = loc_japanese(N)
    ndl, kanji = [], []
    for r in loc:
        f245, vern = _linked_title(r)
        kana = _katakana(_title_text(f245))
        if kana:
            ndl.append(_copy(r, "ndl-", vern.subfields, kana))
        kanji.append(_copy(r, "kanji-", vern.subfields, None))
    return loc, ndl, kanji


@pytest.fixture(scope="module", params=BACKENDS)
def cat(request, tmp_path_factory, records):
    loc, ndl, kanji = records
    c = backend_fixture(request, tmp_path_factory.mktemp(f"jaloc-{request.param}"))
    c.load("loc", loc)
    c.load("ndl", ndl)
    c.load("kanji", kanji)
    yield c
    c.close()


def _lib(ids: set[str], prefix: str) -> set[str]:
    return {i for i in ids if i.startswith(prefix)} if prefix else {i for i in ids if "-" not in i}


def test_fixture_has_both_conventions_and_kanji_only_copies(records):
    loc, ndl, kanji = records
    assert len(loc) == N and len(kanji) == N and len(ndl) > N // 3


def _with_word(records, word: str) -> set[str]:
    """Local ids of LoC records whose romanized 245 has ``word`` (folded) as a word."""
    w = tokenize(word)[0]
    return {r["001"].data.strip() for r in records if w in tokenize(_title_text(_linked_title(r)[0]))}


@pytest.mark.parametrize("romaji,kana", [("toshokan", "としょかん"), ("nihon", "にほん"), ("kenkyū", "けんきゅう"),
                                         ("rekishi", "れきし"), ("shakai", "しゃかい")])
def test_kana_finds_romanized_and_romaji_finds_katakana_readings(cat, records, romaji, kana):
    loc, ndl, _ = records
    by_kana, by_romaji = cat.hits(f"dc.title={kana}"), cat.hits(f"dc.title={romaji}")
    loc_words = _with_word(loc, romaji)
    assert loc_words, romaji
    ndl_ids = {r["001"].data.strip() for r in ndl}
    ndl_words = {"ndl-" + i for i in loc_words} & ndl_ids     # kanji 245, katakana 880: no romaji at all
    assert ndl_words, romaji
    assert loc_words <= by_kana                               # kana -> romanized readings
    assert ndl_words <= by_romaji                             # romaji -> katakana readings
    assert ndl_words <= by_kana
    # and no record is found by one script and not the other, among the LoC records
    assert _lib(by_kana, "") >= _lib(by_romaji, "")


@pytest.mark.parametrize("varieties", [("toshokan", "tosyokan", "トショカン"), ("kenkyū", "kenkyuu", "ケンキュウ"),
                                       ("shinbun", "shimbun", "sinbun"), ("jōhō", "zyouhou", "jouhou"),
                                       ("chūgoku", "tyuugoku", "ちゅうごく")])
def test_romanization_varieties_find_the_same_japanese_records(cat, varieties):
    sets = [cat.hits(f"dc.title={v} and dc.language=jpn") for v in varieties]
    assert sets[0] and all(s == sets[0] for s in sets), [len(s) for s in sets]


def test_kanji_only_copies_are_found_by_their_generated_readings(cat, records):
    loc, _, _ = records
    found = total = 0
    for r in loc[:120]:
        f245, _ = _linked_title(r)
        words = [w.strip('"“”()[],.:;') for w in _title_text(f245).split()]
        words = [w for w in words if w.isalpha() and len(w) >= 6 and rd.query_keys(w)[0]][:1]
        if not words:
            continue
        total += 1
        lid = "kanji-" + r["001"].data.strip()
        found += lid in cat.hits(f"dc.title={words[0]}")
    # the analyser's readings agree with LoC's romanization for most words (not all:
    # 日本 Nihon/Nippon, names, numbers); a kanji query never needs them
    assert total > 40 and found >= 0.8 * total, (found, total)


def test_a_kanji_query_finds_exactly_the_kanji_only_copies_with_those_kanji(cat, records):
    _, _, kanji = records
    for q in ("図書館", "研究", "日本"):
        expected = {r["001"].data.strip() for r in kanji if normalize(q) in normalize(_title_text(r["245"]))}
        got = {i for i in cat.hits(f"dc.title={q}") if i.startswith("kanji-")}
        assert expected and got == expected, q


def test_sort_by_title_files_by_reading_as_ordered_by_hand(cat):
    ids = [i for i in cat.local_ids("dc.title=rekishi sortby dc.title") if "-" not in i]
    assert ids == [
        "00291822",  # Atarashii Ōsaka no rekishizō o motomete      あたらしい
        "00272104",  # Kaseisuru rekishigaku                        かせいする
        "00291994",  # Kindai Wakayama no rekishiteki kenkyū        きんだい
        "00291702",  # Gendai kokka to ippan jōkō                   げんだいこっか (げ files with け)
        "00271353",  # Gendai Nihon gaikōron                        げんだいにほん
        "00291729",  # Kōkogaku kara mita chiiki bunka              こうこがく
        "00291762",  # Shiba Ryōtarō to Fujisawa Shūhei             しば
        "00272714",  # Dai Tōa Sensō                                だいとうあ (だ files with た)
        "00291774",  # Chūsei rekishi jojutsu no tenkai             ちゅうせい
        "00272122",  # Densangata chingin no sekai                  でんさんがた
        "00271350",  # Tennō o meguru monogatari                    てんのう (さ < の)
        "00272059",  # Nihon ga tsukutta Ajia no rekishi            にほんが
        "00272647",  # Nihonjin wa rekishi kara                     にほんじん (か < し)
        "00291454",  # Nihon no shihō shoshi                        にほんのしほう
        "00271372",  # Nihon no rekishi shakaigaku                  にほんのれきし
        "00291948",  # Mimana to kodai Nihon                        みまな
        "00272089",  # Rekishi no shunkan                           れきしのしゅ (ゆ < よ)
        "00291761",  # Rekishi no shōsoku ni tsuite                 れきしのしょ
    ]


def test_scan_by_reading_on_real_titles(cat):
    terms = cat.scan("dc.title", "れきし", 1, 4)
    # after れきし in 五十音 order: 歴史の瞬間 (read with 20 as LoC romanizes it, and as the
    # analyser reads the kanji-only copy), 歴史の消息, then 歴訪 (れきほう)
    assert [t.value[:7] for t in terms] == ["れきしのしゅん", "れきしのしゅん", "れきしのしょう", "れきほうのさっ"]
    assert [t.display[:4] for t in terms] == ["歴史 の", "歴史 の", "歴史の消", "歴訪の作"]
    assert terms[0].count == 2  # the LoC record and its NDL-convention copy
    for t in terms:
        assert cat.hits(f'dc.title=="{t.value}"'), t
