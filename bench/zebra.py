"""Zebra (Index Data's MARC indexer, Debian ``idzebra-2.0``) as the benchmark baseline.

:class:`ZebraSetup` writes a complete Zebra configuration from Python into a
throw-away directory, indexes MARC files with ``zebraidx`` (timed), runs
``zebrasrv`` on 127.0.0.1 (SRU and Z39.50 on one port) with a PID file, and
stops it by PID.

Variants:

``default``    Zebra's stock ``default.idx`` (``string.chr``).  What an
               out-of-the-box Zebra gives -- and useless for CJK: string.chr maps
               every character it does not list (all kanji and kana) to the same
               code, so a Japanese term matches every white-space-delimited
               "word" of the same *length* (hit counts are nonsense).
``icu``        ``icu-ja.idx`` with ICU line-break tokenization (Zebra's stock
               ``words-icu.xml``, locale ja): CJK is indexed per character and a
               Japanese term is matched as an adjacent sequence -- substring
               semantics like unioncat's.  The fair baseline, run by default.
``icu-words``  ICU word-break (dictionary) segmentation, as in the team's
               peers/RECIPE.md: a Japanese term only matches where the
               dictionary put word boundaries (本の, シス never match), and the
               empty white-space tokens make phrase searches ~10x slower.
               Optional.

No kana (katakana/hiragana) or kanji-variant (国/國) folding in any variant:
Zebra has none, unioncat does both, so Japanese counts can still differ.

The indexing rules (``unioncat.abs``) follow unioncat's field mapping
(``config/marc21_fields.toml``) as far as Zebra's ``grs.marcxml`` filter can:

* title   245 $a$b$n$p, 246 $a$b, 130 $a, 240 $a, 490 $a, 830 $a
* author  100/700 $a$b$c$d$q, 110/710 $a$b$c$d, 111/711 $a$c$d$n
* subject 600/610/611/630/648/650/651 $a$x$y$z, 653 $a
* publisher 260 $b, 264 $b;  date 008/07-10;  ISBN 020 $a$z; ISSN 022 $a$y;
  LCCN 010 $a; national bibliography numbers 015/016 $a (all also in
  Identifier-standard, which ``dc.identifier`` maps to)
* 880 (linked vernacular fields): the filter cannot follow the ``$6`` link, so
  880 $a$b$n$p go to title, author *and* subject alike.  Queries on Japanese terms
  can therefore over-match on Zebra (a kanji name also matches ``dc.title``).

Used by ``bench/run_bench.py``; can also be run alone::

    python bench/zebra.py --variant icu --port 22110 FILE.mrc   # index + serve until Ctrl-C
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procmon

STOCK_PQF = Path("/usr/share/yaz/etc/pqf.properties")
STOCK_TAB = Path("/usr/share/idzebra-2.0/tab")
VARIANTS = ("default", "icu", "icu-words")

# ---------------------------------------------------------------- config texts

ABS = """\
# unioncat.abs -- MARC 21 indexing rules for the unioncat-vs-Zebra benchmark
# (written by bench/zebra.py).  Modelled on Zebra's tab/marc21.abs, restricted to
# the subfields unioncat indexes (config/marc21_fields.toml).
# Input is ISO 2709 read by the grs.marcxml filter.

name unioncat
attset bib1.att

esetname F @
esetname B @

marc usmarc.mar

# The LoC records are UTF-8 (leader/09 = a).  Without this line grs.marcxml
# assumes ISO-8859-1 and double-encodes UTF-8 (Japanese becomes mojibake).
encoding utf-8

xpath disable

# every field also goes to the Any index (cql.serverChoice = 1=1016)
all any

melm 001\t\tLocal-number
melm 008\t\tDate-of-publication:w:range(data,7,4),Date-of-publication:n:range(data,7,4),Date-of-publication:s:range(data,7,4),Code-language:w:range(data,35,3)
melm 010$a\t\tLC-card-number,Identifier-standard
melm 015$a\t\tIdentifier-standard
melm 016$a\t\tIdentifier-standard
melm 020$a\t\tISBN,Identifier-standard
melm 020$z\t\tISBN,Identifier-standard
melm 022$a\t\tISSN,Identifier-standard
melm 022$y\t\tISSN,Identifier-standard
{rules}
"""  # noqa: E501 - a line of Zebra's configuration cannot be wrapped

TITLE = [("245", "abnp"), ("246", "ab"), ("130", "a"), ("240", "a"), ("490", "a"), ("830", "a")]
AUTHOR = [("100", "abcdq"), ("110", "abcd"), ("111", "acdn"),
          ("700", "abcdq"), ("710", "abcd"), ("711", "acdn")]
SUBJECT = [(t, "axyz") for t in ("600", "610", "611", "630", "648", "650", "651")] + [("653", "a")]
PUBLISHER = [("260", "b"), ("264", "b")]


def _abs_rules() -> str:
    rules: dict[str, list[str]] = {}

    def add(specs, names):
        for tag, subs in specs:
            for s in subs:
                rules.setdefault(f"{tag}${s}", []).extend(names)

    add(TITLE, ["title", "title:p"])
    add([("245", "a")], ["title:s"])
    add(AUTHOR, ["author", "author:p"])
    add([("100", "a"), ("110", "a"), ("111", "a")], ["author:s"])
    add(SUBJECT, ["subject-heading", "subject-heading:p"])
    add(PUBLISHER, ["Publisher", "Publisher:p"])
    # 880: $6 linkage cannot be followed by grs.marcxml -> all three indexes
    add([("880", "abnp")], ["title", "title:p", "author", "author:p",
                            "subject-heading", "subject-heading:p"])
    lines = []
    for key, names in rules.items():
        seen = list(dict.fromkeys(names))
        lines.append(f"melm {key}\t\t{','.join(seen)}")
    return "\n".join(lines)


ZEBRA_CFG = """\
# zebra.cfg ({variant} variant) -- written by bench/zebra.py.  Paths are relative
# to the run directory (zebraidx/zebrasrv are started there).
profilePath: conf:{tab}
{module_path}
attset: bib1.att
attset: explain.att

# ISO 2709 MARC 21 read by the grs.marcxml filter, indexed per conf/unioncat.abs
recordType: grs.marcxml.unioncat

# terms in Z39.50/SRU queries are UTF-8
encoding: utf-8
{index_line}
register: db/register:20G
lockDir: db/lock
keyTmpDir: db/tmp
setTmpDir: db/tmp

# keep the records so they can be returned (MARCXML for SRU)
storeData: 1
storeKeys: 1

database: Default
"""

ICU_IDX = """\
# icu-ja.idx -- like tab/icu.idx, with an ICU word-break chain for Japanese
index w
completeness 0
position 1
alwaysmatches 1
firstinfield 1
icuchain words-icu-ja.xml

index p
completeness 1
icuchain phrases-icu-ja.xml

index u
completeness 0
charmap urx.chr

index n
completeness 0
charmap numeric.chr

index 0
completeness 0
position 1
charmap @

index y
completeness 0
charmap @

index d
completeness 0
charmap @

sort s
completeness 1
icuchain sort-icu-ja.xml
"""

# ICU word chains.  "icu" uses ICU *line-break* tokenization (Zebra's stock
# tab/words-icu.xml with locale ja): Latin text splits into words with trailing
# spaces/punctuation attached (then removed), while CJK text splits into single
# characters, so a Japanese term becomes a sequence of adjacent characters --
# substring semantics, the same as unioncat's.  "icu-words" uses ICU *word-break*
# (dictionary segmentation: 図書館の歴史 -> 図書館 | の | 歴史), so a term only
# matches on word boundaries the dictionary agrees with; punctuation is removed
# before tokenizing because a token emptied afterwards still takes a word
# position in Zebra ("Sudbury, Richard" would not match the phrase "sudbury
# richard"); the emptied white-space tokens keep one position each, the same in
# records and queries, but make phrase searches slow.
WORDS_ICU_JA = {
    "icu": """\
<!-- ICU line-break tokenization (= Zebra's tab/words-icu.xml, locale ja):
     Latin words; CJK one character per token, matched as adjacent sequences. -->
<icu_chain locale="ja">
  <transform rule="[:Control:] Any-Remove"/>
  <tokenize rule="l"/>
  <transform rule="[[:WhiteSpace:][:Punctuation:]] Remove"/>
  <display/>
  <casemap rule="l"/>
</icu_chain>
""",
    "icu-words": """\
<!-- ICU word-break tokenization (dictionary segmentation for CJK), lower-cased.
     Punctuation removed before tokenizing (emptied tokens keep a position). -->
<icu_chain locale="ja">
  <transform rule="[:Control:] Any-Remove"/>
  <transform rule="[:Punctuation:] Remove"/>
  <tokenize rule="w"/>
  <transform rule="[:WhiteSpace:] Remove"/>
  <display/>
  <casemap rule="l"/>
</icu_chain>
""",
}

PHRASES_ICU_JA = """\
<icu_chain locale="ja">
  <transform rule="[:Control:] Any-Remove"/>
  <transform rule="[:Punctuation:] Remove"/>
  <display/>
  <casemap rule="l"/>
</icu_chain>
"""

SORT_ICU_JA = PHRASES_ICU_JA

PQF_LOCAL = """
# ---- local additions (bench/zebra.py) ----
# CQL 1.2 'adj' = phrase (Zebra: relation equal, structure phrase)
relation.adj\t\t\t\t= 2=3
# stock file only names 'le'/'ge'; CQL writes <= and >=
relation.<=\t\t\t\t= 2=2
relation.>=\t\t\t\t= 2=4
index.dc.identifier\t\t\t= 1=1007
\t# 020/022/010/015/016, see unioncat.abs
index.dc.isbn\t\t\t\t= 1=7
index.dc.issn\t\t\t\t= 1=8
index.dc.lccn\t\t\t\t= 1=9
index.dc.anywhere\t\t\t= 1=1016
index.cql.anywhere\t\t\t= 1=1016
index.bath.title\t\t\t= 1=4
index.bath.author\t\t\t= 1=1003
index.bath.subject\t\t\t= 1=21
index.rec.identifier\t\t\t= 1=12
"""

YAZGFS = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- YAZ GFS config for zebrasrv (bench/zebra.py): one listener on 127.0.0.1
     answering Z39.50 and SRU.  Stylesheet paths are relative to THIS file. -->
<yazgfs>
  <listen id="local">tcp:127.0.0.1:{port}</listen>
  <server id="bench" listenref="local">
    <directory>.</directory>
    <config>conf/zebra.cfg</config>
    <cql2rpn>conf/pqf.properties</cql2rpn>
    <docpath>conf</docpath>
    <maximumrecordsize>2000000</maximumrecordsize>
    <retrievalinfo>
      <retrieval syntax="usmarc" name="F"/>
      <retrieval syntax="usmarc" name="B"/>
      <retrieval syntax="usmarc"/>
      <retrieval syntax="xml" name="marcxml" identifier="info:srw/schema/1/marcxml-v1.1">
        <backend syntax="usmarc" name="F">
          <marc inputformat="marc" outputformat="marcxml" inputcharset="utf-8"/>
        </backend>
      </retrieval>
      <retrieval syntax="xml" name="zebra::*"/>
    </retrievalinfo>
    <explain xmlns="http://explain.z3950.org/dtd/2.0/">
      <serverInfo protocol="SRU" version="1.2">
        <host>127.0.0.1</host>
        <port>{port}</port>
        <database>Default</database>
      </serverInfo>
      <databaseInfo><title>Zebra baseline ({variant}) for the unioncat benchmark</title></databaseInfo>
      <indexInfo>
        <set name="cql" identifier="info:srw/cql-context-set/1/cql-v1.2"/>
        <set name="dc" identifier="info:srw/cql-context-set/1/dc-v1.1"/>
        <index><title>any</title><map><name set="cql">serverChoice</name></map></index>
        <index><title>title</title><map><name set="dc">title</name></map></index>
        <index><title>creator</title><map><name set="dc">creator</name></map></index>
        <index><title>subject</title><map><name set="dc">subject</name></map></index>
        <index><title>date</title><map><name set="dc">date</name></map></index>
        <index><title>identifier</title><map><name set="dc">identifier</name></map></index>
      </indexInfo>
      <schemaInfo>
        <schema identifier="info:srw/schema/1/marcxml-v1.1" name="marcxml"><title>MARCXML</title></schema>
      </schemaInfo>
    </explain>
  </server>
</yazgfs>
"""


def check_installed() -> None:
    missing = [p for p in ("zebraidx", "zebrasrv") if shutil.which(p) is None]
    if missing or not STOCK_PQF.exists() or not STOCK_TAB.exists():
        raise RuntimeError(
            "Zebra/YAZ not installed (need zebraidx, zebrasrv, /usr/share/yaz/etc/pqf.properties, "
            "/usr/share/idzebra-2.0/tab): apt-get install yaz idzebra-2.0")


def _module_dir() -> str | None:
    for d in ("/usr/lib/x86_64-linux-gnu/idzebra-2.0/modules", "/usr/lib/aarch64-linux-gnu/idzebra-2.0/modules",
              "/usr/lib/idzebra-2.0/modules"):
        if Path(d, "mod-grs-marc.so").exists():
            return d
    return None


def _pqf_properties() -> str:
    text = STOCK_PQF.read_text()
    # unioncat's dc.date is the year of publication (008/07-10): bib-1 31, not 30;
    # searched in the numeric register (4=109) so < <= > >= work with ICU indexing too
    text, n = re.subn(r"(?m)^index\.dc\.date\s*=.*$", "index.dc.date\t\t\t\t= 1=31 4=109", text)
    if n != 1:
        raise RuntimeError(f"unexpected {STOCK_PQF}: index.dc.date not found")
    return text + PQF_LOCAL


class ZebraSetup:
    """One Zebra instance (config + register + server) in ``root``."""

    def __init__(self, root: Path, variant: str = "icu", port: int | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        self.root = Path(root).resolve()
        self.variant = variant
        self.port = port or procmon.free_port()
        self.proc: subprocess.Popen | None = None
        self._registry = None
        self.pidfile = self.root / "logs" / "zebrasrv.pid"

    # ---- config
    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/Default"

    def write_config(self) -> None:
        check_installed()
        for d in ("conf", "logs", "db/register", "db/lock", "db/tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        mod = _module_dir()
        index_line = ""
        if self.variant.startswith("icu"):
            index_line = "\n# ICU tokenisation (conf/icu-ja.idx)\nindex: icu-ja.idx\n"
            (self.conf / "icu-ja.idx").write_text(ICU_IDX)
            (self.conf / "words-icu-ja.xml").write_text(WORDS_ICU_JA[self.variant])
            (self.conf / "phrases-icu-ja.xml").write_text(PHRASES_ICU_JA)
            (self.conf / "sort-icu-ja.xml").write_text(SORT_ICU_JA)
        (self.conf / "zebra.cfg").write_text(ZEBRA_CFG.format(
            variant=self.variant, tab=STOCK_TAB,
            module_path=f"modulePath: {mod}" if mod else "", index_line=index_line))
        (self.conf / "unioncat.abs").write_text(ABS.format(rules=_abs_rules()))
        (self.conf / "pqf.properties").write_text(_pqf_properties())
        (self.conf / "yazgfs.xml").write_text(YAZGFS.format(port=self.port, variant=self.variant))

    # ---- indexing
    def index(self, files: list[Path], *, timeout: float = 3600, register=None) -> dict:
        """``zebraidx init`` then ``zebraidx update FILES`` (the timed part)."""
        self.write_config()
        shutil.rmtree(self.root / "db", ignore_errors=True)
        for d in ("db/register", "db/lock", "db/tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        init = procmon.run_measured(["zebraidx", "-c", "conf/zebra.cfg", "init"], cwd=self.root,
                                    log_path=self.root / "logs" / "zebraidx-init.log",
                                    timeout=60, register=register)
        if init["returncode"] != 0:
            raise RuntimeError(f"zebraidx init failed:\n{init['output'][-2000:]}")
        res = procmon.run_measured(
            ["zebraidx", "-c", "conf/zebra.cfg", "update", *[str(Path(f).resolve()) for f in files]],
            cwd=self.root, log_path=self.root / "logs" / "zebraidx-update.log",
            timeout=timeout, register=register)
        if res["returncode"] != 0:
            raise RuntimeError(f"zebraidx update failed:\n{res['output'][-2000:]}")
        m = re.findall(r"Records:\s+(\d+)\s+i/u/d\s+(\d+)/(\d+)/(\d+)", res["output"])
        records = int(m[-1][0]) if m else None
        reg_bytes = sum(p.stat().st_size for p in (self.root / "db" / "register").rglob("*") if p.is_file())
        out = {
            "variant": self.variant,
            "wall_s": round(res["wall_s"], 2),
            "records": records,
            "records_per_s": round(records / res["wall_s"], 1) if records else None,
            "peak_rss_mb": res["peak_rss_mb"],
            "user_s": res["user_s"],
            "sys_s": res["sys_s"],
            "cpu_s": res["tree_cpu_s"],
            "register_mb": round(reg_bytes / 2**20, 1),
            "errors_in_log": len(re.findall(r"\[(?:warn|fatal)\]", res["output"])),
        }
        return out

    # ---- server
    def start(self, *, wait: float = 30.0, register=None) -> int:
        """Start zebrasrv in the foreground as our child (so it is reaped and its
        PID is known), with ``-p`` PID file and ``-l`` log; wait until SRU answers."""
        if self.proc is not None:
            raise RuntimeError("already started")
        self.pidfile.unlink(missing_ok=True)
        # (re)write the listener config: the port may differ from the one at index time
        (self.conf / "yazgfs.xml").write_text(YAZGFS.format(port=self.port, variant=self.variant))
        log = self.root / "logs" / "zebrasrv.log"
        self.proc = subprocess.Popen(
            ["zebrasrv", "-p", str(self.pidfile), "-l", str(log), "-f", "conf/yazgfs.xml"],
            cwd=self.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self._registry = register
        if register is not None:
            register.add(self.proc.pid)
        try:
            wait_http(f"{self.base_url}?version=1.2&operation=explain", timeout=wait,
                      proc=self.proc, what=f"zebrasrv ({self.variant})", log=log)
        except BaseException:
            self.stop()
            raise
        return self.pid

    @property
    def pid(self) -> int:
        """The server's PID (from the PID file, checked against our child)."""
        if self.proc is None:
            raise RuntimeError("not started")
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            pid = self.proc.pid
        return pid

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = {self.proc.pid, self.pid}
        for pid in pids:
            procmon.stop_tree(pid)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._registry is not None and self.proc.returncode is not None:
            self._registry.discard(self.proc.pid)
        self.proc = None


def wait_http(url: str, *, timeout: float, proc=None, what="server", log=None) -> None:
    """Poll ``url`` until it answers HTTP 200 (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = ""
            if log and Path(log).exists():
                tail = Path(log).read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not answer {url} within {timeout:.0f} s ({last})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--variant", choices=VARIANTS, default="icu")
    ap.add_argument("--root", type=Path, default=None, help="work dir (default: a new temp dir)")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--serve-seconds", type=float, default=3600,
                    help="keep the server up this long (bounded), Ctrl-C stops it earlier")
    a = ap.parse_args(argv)
    import tempfile
    root = a.root or Path(tempfile.mkdtemp(prefix=f"zebra-{a.variant}-"))
    z = ZebraSetup(root, a.variant, a.port)
    print(z.index(a.files))
    try:
        z.start()
        print(f"zebrasrv pid {z.pid}: {z.base_url}  (root {root})", flush=True)
        time.sleep(a.serve_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        z.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
