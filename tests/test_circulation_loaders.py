"""CSV loaders (circulation/loaders.py): the sample files of the three systems, upserts
by natural key, every bad row reported with its line and reason while the good rows
load, file-level errors. SQLite and PostgreSQL (``db_url``)."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from circ_helpers import load_calendar, load_items, load_patrons, load_staff, rows
from circulation import auth
from circulation import schema as s
from circulation.loaders import LoadError, load_csv

pytestmark = pytest.mark.usefixtures("cheap_hashing")

SAMPLES = Path(__file__).resolve().parents[1] / "config" / "samples"
PATRON_HEADER = ("card_number,library,name,home_municipality,work_or_school_municipality,category,email,"
                 "phone,locale,default_pickup_branch,default_contact_method\n")


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def counts(report) -> tuple:
    return report.read, report.added, report.updated, report.unchanged, report.rejected


async def test_the_sample_files_load_patrons_items_staff_and_calendars_of_the_three_systems(circ):
    reports = [await load_patrons(circ, SAMPLES / "patrons.csv"), await load_items(circ, SAMPLES / "items.csv"),
               await load_staff(circ, SAMPLES / "staff.csv"), await load_calendar(circ, SAMPLES / "calendar.csv")]
    for r in reports:
        assert r.rejected == 0 and r.errors == [], r.errors
        assert r.added == r.read > 0
    patrons = await rows(circ, s.patrons)
    assert {p.library for p in patrons} == {"iizuka", "komae", "hiroshima"}
    hanako = next(p for p in patrons if p.card_number == "2100000001")
    assert (hanako.name, hanako.home_municipality, hanako.default_pickup_branch, hanako.default_contact_method,
            hanako.password_hash) == ("山田 花子", "飯塚市", "iizuka", "email", None)
    group = next(p for p in patrons if p.card_number == "4300000004")
    assert group.category == "group"

    items = {i.barcode: i for i in await rows(circ, s.items)}
    assert {i.library for i in items.values()} == {"iizuka", "komae", "hiroshima", "hiroshima-u"}
    assert (items["I0000004"].material_type, items["I0000004"].newest_issue) == ("magazine", True)
    assert items["I0000006"].circulating is False
    assert items["K0000003"].lending_release == date(2026, 11, 25)
    assert (items["U0000001"].partner, items["U0000001"].owning_branch) == ("hiroshima-u", "central")
    assert all(i.status == "available" and i.current_branch == i.owning_branch for i in items.values())

    staff = {m.username: m for m in await rows(circ, s.staff)}
    assert staff["iizuka.admin"].roles == "circulation admin network" and staff["iizuka.admin"].password_hash is None
    cal = await rows(circ, s.calendar_entries, s.calendar_entries.c.branch == "iizuka")
    assert {(c.day, c.kind) for c in cal} >= {(date(2026, 11, 30), "closed"), (date(2026, 12, 19), "event")}

    # loading the same files again changes nothing
    again = [await load_csv(circ, k, SAMPLES / f"{k}.csv") for k in ("patrons", "items", "staff", "calendar")]
    assert [counts(r) for r in again] == [(r.read, 0, 0, r.read, 0) for r in reports]


async def test_every_bad_patron_row_is_reported_with_its_line_and_the_good_rows_still_load(circ, tmp_path):
    f = write(tmp_path, "patrons.csv", PATRON_HEADER + "\n".join([
        "2100000001,iizuka,山田 花子,飯塚市,,individual,hanako@example.jp,0948-22-0001,ja,iizuka,email",   # 2 ok
        "2100000002,fukuoka,福岡 太郎,福岡市,,individual,,,ja,,none",                                      # 3
        "2100000003,iizuka,田中 一郎,飯塚市,,individual,,,ja,central,none",                                # 4
        "2100000004,iizuka,佐藤 健太,飯塚市,,individual,kenta@@example.jp,,ja,,none",                       # 5
        "2100000005,iizuka,鈴木 次郎,飯塚市,,individual,,,ja,,email",                                      # 6
        "2100000001,iizuka,山田 花子,飯塚市,,individual,,,ja,,none",                                       # 7 dup
        "2100000006,iizuka,高橋 三郎,飯塚市",                                                              # 8
        ",iizuka,名無し,飯塚市,,individual,,,ja,,none",                                                     # 9
        "２１００００００７,iizuka,全角 数字,飯塚市,,individual,,,ja,,none",                                 # 10
        "2100000008,iizuka,伊藤 四郎,,,individual,,,ja,,none",                                             # 11
        "2100000009,iizuka,渡辺 五郎,飯塚市,,staff,,,ja,,none",                                            # 12
        "2100000010,iizuka,中村 六子,飯塚市,,individual,,,fr,,none",                                       # 13
        "",                                                                                                 # 14 blank
        "2100000011,iizuka,小林 七海,飯塚市,,individual,nanami@example.jp,,ja,kaita,email",                # 15 ok
    ]) + "\n")
    r = await load_patrons(circ, f)
    assert counts(r) == (13, 2, 0, 0, 11)
    reasons = dict(r.errors)
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert "fukuoka" in reasons[3]
    assert "central" in reasons[4] and "pickup" in reasons[4]
    assert "email" in reasons[5]
    assert "default_contact_method 'email'" in reasons[6] and "e-mail" in reasons[6]
    assert reasons[7].startswith("duplicate of line 2")
    assert "4 fields" in reasons[8]
    assert reasons[9] == "card_number is empty"
    assert "half-width" in reasons[10]
    assert reasons[11] == "home_municipality is empty"
    assert "category 'staff'" in reasons[12]
    assert "locale 'fr'" in reasons[13]
    assert sorted(p.card_number for p in await rows(circ, s.patrons)) == ["2100000001", "2100000011"]


async def test_reloading_updates_only_the_columns_in_the_file_and_keeps_what_the_service_maintains(circ, tmp_path):
    await load_patrons(circ, SAMPLES / "patrons.csv")
    d = await auth.set_password(circ, card="2100000001", new_password="hon1234", role="staff", actor="c1")
    assert d.allowed
    f = write(tmp_path, "changes.csv", "card_number,library,home_municipality,email\n"
              "2100000001,iizuka,飯塚市,hanako.new@example.jp\n"
              "2100000002,iizuka,嘉麻市,\n"
              "2100000099,iizuka,飯塚市,new@example.jp\n")
    r = await load_patrons(circ, f)
    assert counts(r) == (3, 1, 1, 1, 0)
    (p,) = await rows(circ, s.patrons, s.patrons.c.card_number == "2100000001")
    assert (p.email, p.phone, p.name, p.default_contact_method) == (
        "hanako.new@example.jp", "0948-22-0001", "山田 花子", "email")
    assert p.password_hash is not None
    (new,) = await rows(circ, s.patrons, s.patrons.c.card_number == "2100000099")
    assert (new.name, new.locale, new.category, new.default_contact_method) == ("", "ja", "individual", "none")


async def test_a_byte_order_mark_is_accepted_and_line_numbers_count_multi_line_cells(circ, tmp_path):
    f = write(tmp_path, "items.csv",
              "\ufeffbarcode,title_id,library,owning_branch,location,call_number\n"
              'I1,isbn:a,iizuka,iizuka,"一般書架\n(2階)",010\n'
              "I2,isbn:b,iizuka,nowhere,,\n"
              "I3,isbn:c,iizuka,honami,,\n")
    r = await load_items(circ, f)
    assert counts(r) == (3, 2, 0, 0, 1)
    assert r.errors == [(4, "owning_branch 'nowhere' is not a branch of the network")]
    (i1,) = await rows(circ, s.items, s.items.c.barcode == "I1")
    assert i1.location == "一般書架\n(2階)"


async def test_item_rows_are_checked_against_the_network(circ, tmp_path):
    f = write(tmp_path, "items.csv",
              "barcode,title_id,library,owning_branch,material_type,circulating,newest_issue,lending_release,partner\n"
              "I1,isbn:a,iizuka,central,book,,,,\n"            # Hiroshima's branch
              "I2,isbn:b,iizuka,iizuka,cassette,,,,\n"
              "I3,isbn:c,iizuka,iizuka,book,maybe,,,\n"
              "K1,issn:1,komae,komae-central,magazine,,,2026-13-01,\n"
              "U1,isbn:d,hiroshima-u,central,book,,,,komae\n"    # partner must be a university
              "I4,isbn:e,tokyo,iizuka,book,,,,\n"
              "K2,issn:2,komae,komae-central,magazine,no,yes,2026/11/25,\n")
    r = await load_items(circ, f)
    assert counts(r) == (7, 1, 0, 0, 6)
    reasons = dict(r.errors)
    assert "belongs to hiroshima" in reasons[2]
    assert "material_type 'cassette'" in reasons[3]
    assert "circulating" in reasons[4]
    assert "lending_release" in reasons[5]
    assert "partner 'komae'" in reasons[6]
    assert "library 'tokyo'" in reasons[7]
    (k2,) = await rows(circ, s.items, s.items.c.barcode == "K2")
    assert (k2.circulating, k2.newest_issue, k2.lending_release) == (False, True, date(2026, 11, 25))


async def test_an_updated_item_keeps_its_status_and_current_branch(circ, tmp_path):
    await load_items(circ, SAMPLES / "items.csv")
    from sqlalchemy import update
    async with circ.db.transaction() as conn:
        await conn.execute(update(s.items).where(s.items.c.barcode == "I0000001")
                           .values(status="on_loan", current_branch="honami"))
    f = write(tmp_path, "items.csv", "barcode,title_id,library,owning_branch,call_number\n"
              "I0000001,isbn:9784004310013,iizuka,iizuka,010.2/ヤマ\n")
    r = await load_items(circ, f)
    assert counts(r) == (1, 0, 1, 0, 0)
    (i,) = await rows(circ, s.items, s.items.c.barcode == "I0000001")
    assert (i.call_number, i.status, i.current_branch, i.location) == ("010.2/ヤマ", "on_loan", "honami", "一般書架")


async def test_a_file_with_a_bad_header_or_encoding_is_refused_whole(circ, tmp_path):
    cases = [
        ("card_number,library,name\n2100000001,iizuka,山田\n", "missing column(s) home_municipality"),
        ("card_number,library,home_municipality,birthday\n2100000001,iizuka,飯塚市,2000-01-01\n",
         "unknown column(s) birthday"),
        ("card_number,library,home_municipality,email,email\n", "repeated column(s) email"),
        ("", "empty file"),
    ]
    for text, message in cases:
        with pytest.raises(LoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await load_patrons(circ, write(tmp_path, "p.csv", text))
    sjis = write(tmp_path, "sjis.csv", PATRON_HEADER + "2100000001,iizuka,山田 花子,飯塚市,,,,,,,\n", "shift_jis")
    with pytest.raises(LoadError, match=r"not UTF-8 text \(line 2"):
        await load_patrons(circ, sjis)
    with pytest.raises(LoadError, match="No such file"):
        await load_patrons(circ, tmp_path / "missing.csv")
    with pytest.raises(ValueError):
        await load_csv(circ, "books", SAMPLES / "items.csv")
    assert await rows(circ, s.patrons) == []


async def test_staff_rows_are_validated_and_loaded_staff_log_in_once_a_password_is_set(circ, tmp_path):
    f = write(tmp_path, "staff.csv", "username,name,library,branch,roles\n"
              "kaita.desk,潁田 窓口,iizuka,kaita,circulation\n"
              "bad.role,,iizuka,kaita,circulation cashier\n"
              "wrong.branch,,iizuka,naka,circulation\n"
              "no.roles,,iizuka,,\n"
              "kaita.desk,潁田 窓口,iizuka,kaita,circulation admin\n")
    r = await load_staff(circ, f)
    assert counts(r) == (5, 1, 0, 0, 4)
    reasons = dict(r.errors)
    assert "Unknown role" in reasons[3] and "cashier" in reasons[3]
    assert "branch" in reasons[4]
    assert reasons[5] == "roles is empty"
    assert reasons[6].startswith("duplicate of line 2")
    assert not (await auth.staff_login(circ, username="kaita.desk", password="")).session_token
    assert (await auth.set_staff_password(circ, username="kaita.desk", new_password="kaita-pass")).allowed
    res = await auth.staff_login(circ, username="kaita.desk", password="kaita-pass")
    assert res.principal.roles == frozenset({"circulation"}) and res.principal.branch == "kaita"

    promoted = write(tmp_path, "staff2.csv", "username,library,roles\nkaita.desk,iizuka,circulation admin\n")
    assert counts(await load_staff(circ, promoted)) == (1, 0, 1, 0, 0)
    (m,) = await rows(circ, s.staff)
    assert (m.roles, m.name, m.branch, m.password_hash is not None) == ("circulation admin", "潁田 窓口", "kaita", True)


async def test_calendar_rows_upsert_closed_days_by_day_and_keep_several_events_a_day(circ, tmp_path):
    f = write(tmp_path, "cal.csv", "branch,day,kind,title\n"
              "iizuka,2026-12-28,closed,休館日\n"
              "iizuka,2026-12-19,event,おはなし会\n"
              "iizuka,2026-12-19,event,工作教室\n"
              "iizuka,2026-12-19,event,おはなし会\n"
              "iizuka,2026-12-20,event,\n"
              "iizuka,2026-12-32,closed,\n"
              "iizuka,2026-12-21,open,\n"
              "tomohato-2,2026-12-21,closed,\n")
    r = await load_calendar(circ, f)
    assert counts(r) == (8, 3, 0, 0, 5)
    reasons = dict(r.errors)
    assert reasons[5].startswith("duplicate of line 3")
    assert reasons[6] == "an event needs a title"
    assert "2026-12-32" in reasons[7] and "kind 'open'" in reasons[8] and "tomohato-2" in reasons[9]
    renamed = write(tmp_path, "cal2.csv", "branch,day,kind,title\niizuka,2026-12-28,closed,年末年始休館\n")
    assert counts(await load_calendar(circ, renamed)) == (1, 0, 1, 0, 0)
    closed = await rows(circ, s.calendar_entries, s.calendar_entries.c.kind == "closed")
    assert [(c.day, c.title) for c in closed] == [(date(2026, 12, 28), "年末年始休館")]
