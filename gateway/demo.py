"""What `unioncat demo` (`make demo`) sets up: the whole product on sample data.

Sample records: three member libraries whose files overlap, in both 880 conventions,
so the demo shows union records with several holdings.

* iizuka   (city library, NDL JAPAN/MARC convention): kanji in 245, katakana
  reading in the linked 880.
* hiroshima-u (university, Library of Congress convention): romanized 245,
  kanji in the linked 880; its items are in Koha-style 952 fields.
* komae    (city library): English books and a few Japanese ones, plain UTF-8.

The circulation database (:func:`setup_circulation`): the network of the three city
systems' profiles, the sample patrons, items, staff and calendar of
``config/samples/``, and the demo passwords below, so that every sample patron and
staff member can log in. The passwords are demo data: they live here, are set only by
`unioncat demo`, and the CSV loaders never read a password from a file (production
passwords are set by the patron, at the counter, or by `unioncat circ staff passwd`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pymarc
from pymarc import Field, Indicators, Subfield

# (isbn, kanji title, reading, romanized title, author kanji, author romanized, publisher, year, subjects)
JA_BOOKS = [
    ("9784004310013", "図書館の歴史", "トショカン ノ レキシ", "Toshokan no rekishi", "山田, 太郎", "Yamada, Tarō",
     "岩波書店", "2001", ["図書館", "歴史"]),
    ("9784062880015", "日本の図書館", "ニホン ノ トショカン", "Nihon no toshokan", "鈴木, 花子", "Suzuki, Hanako",
     "講談社", "1998", ["図書館", "日本"]),
    ("9784130033018", "図書館情報学入門", "トショカン ジョウホウガク ニュウモン", "Toshokan jōhōgaku nyūmon",
     "佐藤, 一郎", "Satō, Ichirō", "東京大学出版会", "2015", ["図書館情報学"]),
    ("9784876982011", "京都の寺院と庭園", "キョウト ノ ジイン ト テイエン", "Kyōto no jiin to teien", "高橋, 健",
     "Takahashi, Ken", "京都大学学術出版会", "2020", ["寺院", "庭園", "京都"]),
    ("9784101010014", "學問のすゝめ", "ガクモン ノ ススメ", "Gakumon no susume", "福沢, 諭吉", "Fukuzawa, Yukichi",
     "新潮社", "1872", ["教育"]),
    ("9784003101018", "吾輩は猫である", "ワガハイ ワ ネコ デ アル", "Wagahai wa neko de aru", "夏目, 漱石",
     "Natsume, Sōseki", "岩波書店", "1905", ["日本文学"]),
    ("9784480020017", "検索エンジンの仕組み", "ケンサク エンジン ノ シクミ", "Kensaku enjin no shikumi", "田中, 直樹",
     "Tanaka, Naoki", "筑摩書房", "2012", ["情報検索", "コンピュータ"]),
    ("9784641000018", "広島の歴史と文化", "ヒロシマ ノ レキシ ト ブンカ", "Hiroshima no rekishi to bunka", "伊藤, 陽子",
     "Itō, Yōko", "有斐閣", "2008", ["広島", "歴史"]),
]

EN_BOOKS = [
    ("9780262033848", "Introduction to algorithms", "Cormen, Thomas H.", "MIT Press", "2009", ["Computer algorithms"]),
    ("9780521865715", "Introduction to information retrieval", "Manning, Christopher D.", "Cambridge University Press",
     "2008", ["Information retrieval", "Search engines"]),
    ("9780838910016", "A history of libraries in the western world", "Harris, Michael H.", "Scarecrow Press", "1995",
     ["Libraries -- History"]),
    ("9781856046589", "Library science basics", "Jones, Mary", "Facet Publishing", "2010", ["Library science"]),
    ("9780415000017", "The art of indexing", "Mulvany, Nancy C.", "Routledge", "2005", ["Indexing"]),
    ("9784770029010", "Tokyo: a cultural history", "Mansfield, Stephen", "Kodansha", "2009",
     ["Tokyo (Japan) -- History"]),
]

BRANCHES = {
    "iizuka": ["中央図書館", "穂波分館", "筑穂分館"],
    "komae": ["中央図書館", "西河原分室"],
    "hiroshima-u": ["中央図書館", "東図書館"],
}


def _ctl(rec: pymarc.Record, tag: str, data: str) -> None:
    rec.add_field(Field(tag=tag, data=data))


def _df(tag: str, ind: str, *subs: tuple[str, str]) -> Field:
    return Field(tag=tag, indicators=Indicators(ind[0], ind[1]), subfields=[Subfield(c, v) for c, v in subs])


def _f008(year: str, lang: str) -> str:
    return f"200101s{year}    ja            000 0 {lang} d".ljust(40)[:40]


def _base(local_id: str, year: str, lang: str) -> pymarc.Record:
    rec = pymarc.Record(force_utf8=True)
    rec.leader = "     nam a22     2a 4500"
    _ctl(rec, "001", local_id)
    _ctl(rec, "008", _f008(year, lang))
    return rec


def ndl_style(i: int, book, library: str, n_items: int) -> pymarc.Record:
    isbn, kanji, reading, _rom, au, _au_r, pub, year, subjects = book
    rec = _base(f"{library}-{i:05d}", year, "jpn")
    rec.add_field(_df("020", "  ", ("a", isbn)))
    rec.add_field(_df("100", "1 ", ("6", "880-01"), ("a", au)))
    rec.add_field(_df("245", "10", ("6", "880-02"), ("a", kanji)))
    rec.add_field(_df("264", " 1", ("a", "東京"), ("b", pub), ("c", year)))
    for s in subjects:
        rec.add_field(_df("650", " 7", ("a", s), ("2", "ndlsh")))
    rec.add_field(_df("880", "1 ", ("6", "100-01/$1"), ("a", au.replace(", ", " "))))
    rec.add_field(_df("880", "10", ("6", "245-02/$1"), ("a", reading)))
    for k in range(n_items):
        br = BRANCHES[library][k % len(BRANCHES[library])]
        rec.add_field(_df("852", "  ", ("b", br), ("c", "一般"), ("h", f"0{i:02d}.{k}"),
                          ("p", f"{library[:2]}{i:04d}{k}")))
    return rec


def loc_style(i: int, book, library: str, n_items: int) -> pymarc.Record:
    isbn, kanji, _reading, rom, au, au_r, pub, year, subjects = book
    rec = _base(f"{library}-{i:05d}", year, "jpn")
    rec.add_field(_df("020", "  ", ("a", isbn)))
    rec.add_field(_df("100", "1 ", ("6", "880-01"), ("a", au_r)))
    rec.add_field(_df("245", "10", ("6", "880-02"), ("a", rom)))
    rec.add_field(_df("264", " 1", ("a", "Tōkyō"), ("b", pub), ("c", year)))
    for s in subjects:
        rec.add_field(_df("650", " 0", ("a", s)))
    rec.add_field(_df("880", "1 ", ("6", "100-01/$1"), ("a", au)))
    rec.add_field(_df("880", "10", ("6", "245-02/$1"), ("a", kanji)))
    for k in range(n_items):
        br = BRANCHES[library][k % len(BRANCHES[library])]
        rec.add_field(_df("952", "  ", ("a", br), ("c", "GEN"), ("o", f"{i:03d}/{k}"), ("p", f"hu{i:04d}{k}")))
    return rec


def english(i: int, book, library: str, n_items: int) -> pymarc.Record:
    isbn, title, au, pub, year, subjects = book
    rec = _base(f"{library}-e{i:04d}", year, "eng")
    rec.add_field(_df("020", "  ", ("a", isbn)))
    rec.add_field(_df("100", "1 ", ("a", au)))
    nonfiling = "14" if title.startswith("The ") else "12" if title.startswith("A ") else "10"
    rec.add_field(_df("245", nonfiling, ("a", title)))
    rec.add_field(_df("264", " 1", ("b", pub), ("c", year)))
    for s in subjects:
        rec.add_field(_df("650", " 0", ("a", s)))
    for k in range(n_items):
        br = BRANCHES[library][k % len(BRANCHES[library])]
        rec.add_field(_df("852", "  ", ("b", br), ("h", f"E{i:03d}"), ("p", f"{library[:2]}e{i:03d}{k}")))
    return rec


def write_demo_files(out_dir: Path) -> dict[str, Path]:
    """Write one ISO 2709 file per member library; returns {library: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    plans = {
        "iizuka": [ndl_style(i, b, "iizuka", 1 + i % 3) for i, b in enumerate(JA_BOOKS)]
        + [english(i, b, "iizuka", 1) for i, b in enumerate(EN_BOOKS[:3])],
        "hiroshima-u": [loc_style(i, b, "hiroshima-u", 1 + i % 2) for i, b in enumerate(JA_BOOKS) if i % 2 == 0]
        + [english(i, b, "hiroshima-u", 1) for i, b in enumerate(EN_BOOKS) if i % 2 == 1],
        "komae": [english(i, b, "komae", 2) for i, b in enumerate(EN_BOOKS)]
        + [ndl_style(i, b, "komae", 1) for i, b in enumerate(JA_BOOKS) if i in (1, 5, 7)],
    }
    for lib, records in plans.items():
        path = out_dir / f"{lib}.mrc"
        with open(path, "wb") as fh:
            for r in records:
                fh.write(r.as_marc())
        files[lib] = path
    return files


# --------------------------------------------------------------------------- circulation

# Demo passwords of the sample patrons (config/samples/patrons.csv) and staff
# (config/samples/staff.csv). Patron passwords follow the profiles' [login] rules
# (4-10 ASCII letters and digits); staff passwords have at least 8 characters.
DEMO_PATRON_PASSWORDS = {
    "2100000001": "hana2026", "2100000002": "ichiro2026", "2100000003": "emily2026",
    "2100000004": "kenta2026", "2100000005": "midori2026",
    "3200000001": "sakura2026", "3200000002": "makoto2026", "3200000003": "yumi2026",
    "3200000004": "sho2026",
    "4300000001": "yoko2026", "4300000002": "daisuke26", "4300000003": "misaki2026",
    "4300000004": "senda2026",
}
DEMO_STAFF_PASSWORDS = {
    "iizuka.counter": "counter-2026", "iizuka.admin": "admin-2026",
    "komae.requests": "requests-2026", "hiroshima.central": "central-2026",
}
SAMPLE_KINDS = ("patrons", "items", "staff", "calendar")


class DemoError(Exception):
    """The demo's sample data did not load (said in one line)."""


@dataclass(frozen=True)
class Login:
    who: str            # card number or username
    password: str
    name: str
    library: str
    roles: str = ""     # staff only


async def setup_circulation(url: str) -> tuple[list[str], list[Login], list[Login]]:
    """Create (or bring up to date) the demo's circulation database at ``url``: tables,
    network, sample CSVs, demo passwords. Idempotent; the demo passwords are set again
    on every run, so the printed logins always work. Returns (one summary line per
    sample file, patron logins, staff logins)."""
    from circulation import auth
    from circulation.loaders import load_csv
    from circulation.service import Circulation
    from circulation.store import Clock, Database, install_network
    from config import locate
    from lifecycle.profiles import load_all

    circ = Circulation(Database(url), load_all(), Clock())
    try:
        await circ.db.create_all()
        async with circ.db.transaction() as conn:
            await install_network(conn, circ.profiles)
        summaries = []
        for kind in SAMPLE_KINDS:
            path = locate(f"samples/{kind}.csv")
            report = await load_csv(circ, kind, path)
            if report.rejected:
                line, reason = report.errors[0]
                raise DemoError(f"{path}:{line}: {reason} ({report.rejected} rows rejected)")
            summaries.append(report.summary())
        for card, password in DEMO_PATRON_PASSWORDS.items():
            d = await auth.set_password(circ, card=card, new_password=password, role="staff",
                                        actor="unioncat demo")
            if not d.allowed:
                raise DemoError(f"patron {card}: {d.message_en}")
        for username, password in DEMO_STAFF_PASSWORDS.items():
            d = await auth.set_staff_password(circ, username=username, new_password=password,
                                              actor="unioncat demo")
            if not d.allowed:
                raise DemoError(f"staff {username}: {d.message_en}")
    finally:
        await circ.db.dispose()
    patrons = _sample_rows("patrons", "card_number")
    staff = _sample_rows("staff", "username")
    return (summaries,
            [Login(c, pw, patrons[c]["name"], patrons[c]["library"]) for c, pw in DEMO_PATRON_PASSWORDS.items()],
            [Login(u, pw, staff[u]["name"], staff[u]["library"], staff[u]["roles"])
             for u, pw in DEMO_STAFF_PASSWORDS.items()])


def _sample_rows(kind: str, key: str) -> dict[str, dict[str, str]]:
    import csv

    from config import locate

    with open(locate(f"samples/{kind}.csv"), encoding="utf-8-sig", newline="") as fh:
        return {row[key]: row for row in csv.DictReader(fh)}
