"""Japanese readings across scripts (issue 16, docs/search.md "Readings" and
"Variants people type"): the canonical reading key, the variant folds of
config/ja_variants.toml, generated readings and filing by reading -- the pure
functions, then the same searches and orders on every backend (conformance)."""
from __future__ import annotations

import pytest

from catalog_builder import BACKENDS, backend_fixture, df, rec
from indexers import ja_variants as jv
from indexers import readings as rd
from indexers.normalize import exact_key, normalize, tokenize


def K(text: str) -> list[str]:
    keys, _ = rd.query_keys(text)
    assert len(keys) >= 1, text
    return keys[0]


# ---------------------------------------------------------------- the canonical key
@pytest.mark.parametrize("spellings", [
    ["としょかん", "トショカン", "ﾄｼｮｶﾝ", "toshokan", "tosyokan", "Toshokan", "トシヨカン"],
    ["けんきゅう", "ケンキュウ", "kenkyū", "kenkyuu", "kenkyû", "ケンキユウ"],
    ["とうきょう", "トウキョウ", "tōkyō", "toukyou", "tôkyô", "Tookyoo", "トーキョー"],
    ["ちず", "チズ", "chizu", "tizu", "ちづ", "チヅ"],
    ["ふるさと", "フルサト", "furusato", "hurusato"],
    ["しんぶん", "シンブン", "shinbun", "shimbun", "sinbun"],
    ["しんいち", "シンイチ", "shin'ichi", "shinʼichi", "shin-ichi", "sin'iti"],
    ["じょうほう", "jōhō", "zyouhou", "jouhou", "jôhô"],
    ["がっこう", "ガッコウ", "gakkō", "gakkou", "ガツコウ"],
    ["さんぽ", "sampo", "sanpo"],
    ["ばいおりん", "バイオリン", "ヴァイオリン", "vaiorin", "baiorin"],
])
def test_romanization_varieties_and_kana_fold_to_one_key(spellings):
    keys = {tuple(K(s)) for s in spellings}
    assert len(keys) == 1, {s: K(s) for s in spellings}


def test_vowel_length_is_kept_in_the_key_and_dropped_in_the_short_key():
    assert K("kenkyū") == ["け", "ん", "き", "ゆ", rd.LONG]
    assert rd.short(K("kenkyū")) == K("kenkyu") == ["け", "ん", "き", "ゆ"]
    assert rd.query_keys("tokyo")[1] is False          # unmarked romaji: keys and short keys
    assert rd.query_keys("tōkyō")[1] is True           # marked: keys only
    assert rd.query_keys("スパ")[1] is True            # kana always marks length: スパ is not スーパー
    assert K("スパ") != K("スーパー")


def test_particles_are_matched_as_written_and_as_pronounced():
    assert K("toshokan e no michi") in rd.query_keys("toshokan he no michi")[0]
    assert K("としょかんえのみち") in rd.query_keys("としょかんへのみち")[0]
    assert K("konnichi wa") in rd.query_keys("konnichi ha")[0]
    assert K("hon o yomu") == K("hon wo yomu") == K("ほんをよむ")
    # the first kana is never a particle: はな is not わな
    assert K("わな") not in rd.query_keys("はな")[0]


def test_what_is_not_one_reading_has_no_key():
    for term in ("図書館", "history", "toshokan*", "2001", "to", "e", "toshokan 2001 nen"):
        assert rd.query_keys(term) == ([], False), term


def test_readings_of_values_are_marked_and_kanji_values_generated_only_without_a_reading():
    vals = rd.reading_values(["Tōkyō no kenkyū", "東京の研究"], japanese=True)
    assert vals and all(t[0] == rd.CATALOGUED for v in vals if v[0][0] == rd.CATALOGUED for t in v)
    assert not any(t[0] in (rd.GENERATED_MARK, rd.GENERATED_SHORT) for v in vals for t in v)
    gen = rd.reading_values(["東京の研究"], japanese=True)
    assert gen[0] == [rd.GENERATED_MARK + t for t in K("とうきょうのけんきゅう")]
    assert rd.reading_values(["东京的研究"], japanese=False) == []          # Chinese: no Japanese reading
    assert rd.reading_values(["History of libraries"], japanese=False) == []


def test_generated_reading_reads_particles_as_pronounced_and_nihon():
    assert rd.generated_reading("日本の図書館") == ["にほんのとしょかん"]
    assert K(rd.generated_reading("東京大学出版会")[0]) == K("Tōkyō Daigaku Shuppankai")


# ---------------------------------------------------------------- variants (config/ja_variants.toml)
@pytest.mark.parametrize("variant,canonical", [("髙橋", "高橋"), ("山﨑", "山崎"), ("𠮷田", "吉田"),
                                               ("德川", "徳川"), ("渡邊", "渡辺"), ("渡邉", "渡辺"),
                                               ("齋藤", "斎藤"), ("齊藤", "斎藤"), ("斉藤", "斎藤"),
                                               ("澤田", "沢田"), ("濱田", "浜田")])
def test_name_kanji_variants_fold(variant, canonical):
    assert normalize(variant) == normalize(canonical)


def test_every_kanji_entry_of_the_table_has_a_reason_and_folds():
    for v, spec in jv.TABLE["kanji"].items():
        assert spec["reason"].strip()
        assert normalize(v) == normalize(spec["to"])
    for section in ("between_kanji", "iteration", "long_vowel_final", "vu", "small_kana", "separators",
                    "particles"):
        assert jv.TABLE[section]["reason"].strip(), section


def test_query_variants():
    assert set(jv.query_variants("霞ヶ関")) >= {"霞ヶ関", "霞ケ関", "霞が関", "霞か関"}
    assert "佐佐木" in jv.query_variants("佐々木") and "佐々木" in jv.query_variants("佐佐木")
    assert "バイオリン" in jv.query_variants("ヴァイオリン") and "ヴァイオリン" in jv.query_variants("バイオリン")
    assert "コンピュータ" in jv.query_variants("コンピューター")
    assert jv.query_variants("toshokan") == ["toshokan"]


def test_name_separators_are_boundaries():
    assert tokenize("ダ・ヴィンチ") == tokenize("ダ＝ヴィンチ") == tokenize("ダ ヴィンチ")
    assert exact_key("レオナルド・ダ・ヴィンチ") == exact_key("レオナルド＝ダ＝ヴィンチ") \
        == exact_key("レオナルドダヴィンチ")


# ---------------------------------------------------------------- filing order
def test_sort_keys_follow_the_gojuon_with_voicing_after():
    words = ["あい", "あお", "かき", "がき", "かく", "さと", "ざと", "はし", "ばし", "ぱし", "ひ", "わ"]
    keys = [rd.sort_key([w]) for w in words]
    assert keys == sorted(keys)
    assert rd.sort_key(["きゃく"]) == rd.sort_key(["きやく"])[:3] + rd.sort_key(["きゃく"])[3:]
    assert rd.sort_key(["こーひー"]).split()[0] == "こうひい"
    # Latin headings file before kana ones, kanji without any reading after them
    assert "history" < rd.sort_reading(["Rekishi"]) < "歴史"


# ---------------------------------------------------------------- on every backend
def corpus():
    # the LoC convention: romanized 245 with kanji in the linked 880
    def loc(lid, rom, kanji, creator_rom=None, creator_kanji=None, year="2001"):
        fields = [df("245", "10", _6="880-01", a=rom), df("880", "10", _6="245-01/$1", a=kanji)]
        if creator_rom:
            fields += [df("100", "1 ", _6="880-02", a=creator_rom), df("880", "1 ", _6="100-02/$1", a=creator_kanji)]
        return rec(lid, lang="jpn", year=year, fields=fields)

    # the NDL/TRC convention: kanji in 245 with the katakana reading (ヨミ) in the linked 880
    def ndl(lid, kanji, kana, year="2001"):
        return rec(lid, lang="jpn", year=year,
                   fields=[df("245", "10", _6="880-01", a=kanji), df("880", "10", _6="245-01/$1", a=kana)])

    return [
        loc("j1", "Toshokan no rekishi", "図書館の歴史", "Yamada, Tarō.", "山田太郎"),
        loc("j2", "Tōkyō no kenkyū", "東京の研究", "Satō, Hanako.", "佐藤花子"),
        ndl("j3", "日本の新聞", "ニホン ノ シンブン"),
        ndl("j4", "地図の本", "チズ ノ ホン"),
        rec("j5", title="情報と社会", lang="jpn"),                  # kanji only: generated reading
        rec("j6", title="ふるさとの図書館", lang="jpn"),
        loc("j7", "Gakkō e no michi", "学校への道"),
        rec("j8", title="コンピューター入門", lang="jpn"),
        rec("j9", title="霞ケ関の歴史", lang="jpn"),
        rec("j10", title="佐々木家の人々", lang="jpn"),
        rec("j11", title="ヴァイオリンの本", lang="jpn"),
        rec("j12", title="A history of Tokyo", lang="eng"),
        rec("j13", title="Zen and the art", lang="eng"),
        rec("j14", title="髙橋是清伝", lang="jpn"),
        loc("j15", "Kyoto no kotoba", "京都の言葉"),         # romanized without macrons (length unknown)
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def cat(request, tmp_path_factory):
    c = backend_fixture(request, tmp_path_factory.mktemp(f"ja-{request.param}"))
    c.load("a", corpus())
    yield c
    c.close()


@pytest.mark.parametrize("query,expected", [
    ("dc.title=としょかん", {"j1", "j6"}),                      # kana finds the romanized reading
    ("dc.title=トショカン", {"j1", "j6"}),
    ("dc.title=toshokan", {"j1", "j6"}),                # j6: generated reading of 図書館
    ("dc.title=tosyokan", {"j1", "j6"}),
    ('dc.title="toshokan no rekishi"', {"j1"}),
    ('dc.title="としょかんのれきし"', {"j1"}),
    ("dc.title=けんきゅう", {"j2"}),
    ("dc.title=kenkyuu", {"j2"}),
    ("dc.title=kenkyu", {"j2"}),
    ("dc.title=toukyou", {"j2"}),
    ("dc.title=とうきょう", {"j2"}),
    ("dc.creator=やまだたろう", {"j1"}),
    ("dc.creator=さとう", {"j2"}),
    ("dc.title=shimbun", {"j3"}),                         # romaji finds the katakana reading
    ("dc.title=shinbun", {"j3"}),
    ("dc.title=しんぶん", {"j3"}),
    ("dc.title=tizu", {"j4"}),
    ("dc.title=chizu", {"j4"}),
    ("dc.title=jouhou", {"j5"}),                          # generated reading (kanji only)
    ("dc.title=じょうほう", {"j5"}),
    ("dc.title=情報", {"j5"}),
    ("dc.title=hurusato", {"j6"}),
    ('dc.title="gakkou he no michi"', {"j7"}),            # particle as written
    ("dc.title=がっこうへのみち", {"j7"}),
    ("dc.title=コンピュータ入門", {"j8"}),
    ("dc.title=霞ヶ関", {"j9"}),
    ("dc.title=霞が関", {"j9"}),
    ("dc.title=佐佐木", {"j10"}),
    ("dc.title=バイオリン", {"j11"}),
    ("dc.title=高橋", {"j14"}),
    ("dc.title all \"toshokan rekishi\"", {"j1"}),
    ("dc.title any \"toshokan shinbun\"", {"j1", "j3", "j6"}),
    ("dc.title=tokyo", {"j2", "j12"}),
    ("dc.title=kyōto", {"j15"}),                          # macron query, record without: found
    ("dc.title=きょうと", {"j15"}),
    ("dc.title=kyouto", {"j15"}),
    ("dc.title=kyoto", {"j15"}),
])
def test_reading_queries(cat, query, expected):
    assert cat.hits(query) == expected


def test_a_kanji_query_does_not_use_generated_readings(cat):
    # 情報 is found by its own characters; a kanji query has no reading alternatives
    assert cat.hits("dc.title=情報と") == {"j5"}
    assert cat.hits("dc.title=上方") == set()   # じょうほう in kanji of another word: not a reading match


def test_sort_by_title_files_by_reading(cat):
    got = cat.local_ids("cql.allrecords=1 sortby dc.title")
    # ordered by hand: Latin headings first, then the 五十音 order of the readings
    # (catalogued, else generated), voiced kana with their unvoiced ones
    assert got == ["j12",   # A history of Tokyo
                   "j13",   # Zen and the art
                   "j9",    # 霞ケ関の歴史       かすみがせき (generated)
                   "j7",    # Gakkō e no michi  がっこう
                   "j15",   # Kyoto no kotoba   きょうと (as romanized: きよと)
                   "j8",    # コンピューター入門  こんぴゅーたー (generated)
                   "j10",   # 佐々木家の人々      ささき (generated)
                   "j5",    # 情報と社会         じょうほう (generated)
                   "j14",   # 髙橋是清伝         たかはし (generated, via 高)
                   "j4",    # チズ ノ ホン
                   "j2",    # Tōkyō no kenkyū   とうきょう
                   "j1",    # Toshokan no rekishi
                   "j3",    # ニホン ノ シンブン
                   "j11",   # ヴァイオリンの本    ゔぁ = ば (generated)
                   "j6"]    # ふるさとの図書館    (generated)
    assert cat.local_ids("cql.allrecords=1 sortby dc.title/sort.descending") == list(reversed(got))


def test_sort_by_creator_files_by_reading(cat):
    assert cat.local_ids("dc.creator=tarō or dc.creator=hanako sortby dc.creator") == ["j2", "j1"]


def test_scan_by_reading_walks_the_gojuon(cat):
    terms = cat.scan("dc.title", "と", 1, 4)
    # the readings from と on, in 五十音 order: とうきょう, としょかん, にほん, ばいおりん
    assert [t.display for t in terms] == ["東京の研究", "図書館の歴史", "日本の新聞", "ヴァイオリンの本"]
    assert [t.value for t in terms] == ["とうきょうのけんきゅう", "としょかんのれきし", "にほんのしんぶん",
                                        "ゔぁいおりんのほん"]
    assert all(t.count == 1 for t in terms)
    # each value finds its heading with == (and the scan continues from it by reading)
    for t in terms:
        assert len(cat.hits(f'dc.title=="{t.value}"')) == 1
    around = cat.scan("dc.title", "とうきょうのけんきゅう", 2, 3)
    assert [t.display for t in around] == ["地図の本", "東京の研究", "図書館の歴史"]
    # nothing files before あ; a kana scan does not list Latin headings (A history of Tokyo)
    assert [t.display for t in cat.scan("dc.title", "あ", 2, 2)] == ["霞ケ関の歴史"]


def test_scan_by_reading_of_names(cat):
    terms = cat.scan("dc.creator", "さ", 1, 2)
    assert [(t.value, t.display) for t in terms] == [("さとうはなこ", "佐藤花子"), ("やまだたろう", "山田太郎")]


def test_latin_scan_is_unchanged(cat):
    assert [t.value for t in cat.scan("dc.title", "zen", 1, 1)] == ["zen and the art"]


def test_a_catalog_indexed_before_readings_is_rebuilt_by_the_next_ingest(tmp_path, caplog):
    """An older index (no index_format, no reading tokens) is found stale by the server
    (a warning) and rebuilt by the next ingest, even of a file with nothing new."""
    import logging
    import sqlite3

    from catalog_builder import write
    from indexers.backends.sqlite_index import SqliteCatalog
    from indexers.ingest import db_path, ingest
    from sru.cql import parse_cql

    src = write(tmp_path / "a.mrc", corpus()[:2])
    ingest(tmp_path, "a", [src], quiet=True)
    conn = sqlite3.connect(db_path(tmp_path))
    with conn:  # make it look like a catalog of the former format: no readings, no format
        conn.execute("DELETE FROM meta WHERE key='index_format'")
        conn.execute("DELETE FROM ft")
        conn.execute("INSERT INTO ft(rowid, title) SELECT union_id, 'toshokan no rekishi' FROM doc LIMIT 1")
    conn.close()
    cat = SqliteCatalog(db_path(tmp_path))
    caplog.set_level(logging.WARNING)
    assert cat.search_sync(parse_cql("dc.title=としょかん")).total == 0
    assert "older format" in caplog.text and "unioncat ingest" in caplog.text
    cat.close()
    empty = write(tmp_path / "none.mrc", [])
    ingest(tmp_path, "b", [empty], quiet=True)
    cat = SqliteCatalog(db_path(tmp_path))
    assert cat.search_sync(parse_cql("dc.title=としょかん")).total == 1
    assert cat.search_sync(parse_cql("dc.title=kenkyu")).total == 1
    assert "rebuilding 2 union records" in caplog.text
    cat.close()
