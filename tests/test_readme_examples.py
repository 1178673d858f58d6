"""Every example in README.md and docs/*.md, run as written (issue 15: "Every example
in README and docs is run by a test as written").

The example blocks (indented or fenced code) of each document are read, and their
command lines are run in order, in a fresh working directory per document, as a user
following the document would:

* the working directory holds what the documents presume: ``config/`` (the
  clone's: the README's commands are typed at the top of a clone) and the library
  exports the examples name (``iizuka-2026-11.mrc``, ``hu-all.xml.gz``,
  ``iizuka.mrc``: the demo's sample records of those libraries);
* ``make demo`` runs the Makefile's demo recipe (its setup step is what
  tests/test_install.py and CI check); other make targets are checked with
  ``make -n`` (CI runs them); the benchmark scripts are not run (minutes to hours),
  but every option an example gives them must be one their ``--help`` lists;
* a ``unioncat serve`` or ``unioncat demo`` keeps running in the background until the
  next one or the end of the document, then it is stopped by its PID (process group);
  a client example (curl, yaz-client, zoomsh) before any server of its document runs
  against the served demo catalog (``unioncat demo``, as ``make demo`` serves it);
* the only rewrites: the loopback ports (8210 and 2100 become free ports, and a
  ``unioncat serve``/``demo`` gets ``--port``/``--z3950-port`` when it has none), so
  that two runs side by side do not collide; Elasticsearch URLs (``http://HOST:9200``)
  become the test node's, and the default index alias is made unique to the run by a
  deployment configuration directory (``UNIONCAT_CONFIG_DIR`` with an
  ``elasticsearch.toml``), so that runs sharing a node do not collide; password hashing
  runs with cheap Argon2 parameters (``UNIONCAT_ARGON2``, the same code).

An example works when it exits with status 0 without a traceback, and: ``unioncat
search`` finds something; an SRU answer is XML without a diagnostic and with records
(scan: terms); an API answer is JSON and not an error; a yaz-client or zoomsh session
finds something with every search, without a diagnostic or error; a server comes up
and stops cleanly.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pymarc
import pytest
from lxml import etree

from gateway.demo import write_demo_files
from live_server import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VENV_BIN = Path(sys.executable).parent

# the programs an example may start with (anything else in a block is not a command)
PROGRAMS = {"unioncat", "curl", "yaz-client", "zoomsh", "make", "python"}
BENCH_SCRIPT = re.compile(r"^bench/[\w-]+\.py$")
SERVER = re.compile(r"\bunioncat (serve|demo)\b")
START_BUDGET = 240          # seconds a server may take to listen (a bound, not a measurement)
STOP_BUDGET = 60
HELP: dict[str, subprocess.CompletedProcess] = {}      # a benchmark script's --help, once

# examples that fail on this branch for a reason fixed elsewhere: (document, command as written)
KNOWN_FAILURES: dict[tuple[str, str], str] = {}    # (document, example) -> why it fails for now


# --------------------------------------------------------------------------- reading the documents

@dataclass
class Example:
    doc: str                        # path relative to the project
    line: int
    text: str                       # as written (continuation lines joined)
    program: str
    session: list[str] = field(default_factory=list)    # yaz-client: what is typed at Z>

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def code_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced block and each indented block."""
    blocks: list[tuple[int, list[str]]] = []
    lines = text.split("\n")
    i = 0
    prev_blank = True
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            blocks.append((i + 2, [ln[indent:] for ln in lines[i + 1:j]]))
            i, prev_blank = j + 1, False
            continue
        if line.startswith("    ") and line.strip() and prev_blank:
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            blocks.append((i + 1, [ln[4:] for ln in lines[i:j]]))
            i, prev_blank = j, True
            continue
        prev_blank = not line.strip()
        i += 1
    return blocks


def program_of(command: str) -> str | None:
    """The program a command line starts (after NAME=value assignments; for
    ``NAME=$(prog ...)`` the program of the substitution), or None: not a command."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    for w in words:
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*=(.*)", w, re.S)
        if m is None:
            base = w.rsplit("/", 1)[-1]
            name = "python" if base in ("python", "python3") else w
            return name if name in PROGRAMS else None
        if m.group(1).startswith("$("):
            return program_of(m.group(1)[2:])
    return None


def examples(path: Path) -> list[Example]:
    doc = path.relative_to(ROOT).as_posix()
    found: list[Example] = []
    for start, lines in code_blocks(path.read_text(encoding="utf-8")):
        i = 0
        while i < len(lines):
            text, j = lines[i].strip(), i
            while text.endswith("\\") and j + 1 < len(lines):
                j += 1
                text = text[:-1].rstrip() + " " + lines[j].strip()
            prog = program_of(text) if text else None
            if prog == "yaz-client":
                session, k = [], j + 1
                while k < len(lines) and lines[k].strip().startswith("Z>"):
                    typed = lines[k].strip()[2:].strip()
                    session.append(re.sub(r"\s{2,}#.*$", "", typed))
                    k += 1
                found.append(Example(doc, start + i, text, prog, session))
                i = k
                continue
            if prog is not None:
                found.append(Example(doc, start + i, text, prog))
            i = j + 1
    return found


ALL = {p.relative_to(ROOT).as_posix(): examples(p) for p in DOCS}


def test_the_examples_are_found():
    """The reader finds the README's examples of each kind (a reader that finds
    nothing would make every other test here pass vacuously)."""
    readme = ALL["README.md"]
    programs = [e.program for e in readme]
    assert programs.count("unioncat") >= 10 and programs.count("curl") >= 8
    assert programs.count("yaz-client") == 2 and programs.count("make") >= 3
    assert any(e.text.startswith("TOKEN=$(curl") for e in readme)
    yaz = [e for e in readme if e.program == "yaz-client"]
    assert yaz[0].session == ["open tcp:127.0.0.1:2100", "find @attr 1=4 図書館", "format opac", "show 1"]
    assert ALL["docs/z3950.md"] and ALL["docs/elasticsearch.md"]


# --------------------------------------------------------------------------- running them

@dataclass
class Outcome:
    ok: bool
    detail: str = ""


class Walk:
    """One document's examples, run in order in a fresh directory."""

    def __init__(self, doc: str, work: Path, es_url):
        self.doc = doc
        self.work = work
        self.es_url_of = es_url                 # called when an example names Elasticsearch
        self.http, self.z3950 = free_port(), free_port()
        self.server: subprocess.Popen | None = None
        self.server_example: Example | None = None
        self.server_log: Path | None = None
        self.server_read = 0
        self.clients: list[int] = []           # examples run while the server was up
        self.outcomes: dict[int, Outcome] = {}
        self.used_es: Example | None = None     # the first example that named Elasticsearch
        self.current: Example | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCAT_")}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["UNIONCAT_ARGON2"] = "time_cost=1,memory_cost=8,parallelism=1"
        env.setdefault("LANG", "C.UTF-8")
        self.alias = f"readme-{os.getpid()}-{free_port()}"
        env["UNIONCAT_CONFIG_DIR"] = str(work.parent / f"{work.name}-config")
        self.env = env

    # -- setting up the directory
    def prepare(self) -> None:
        self.work.mkdir(parents=True)
        deployment = Path(self.env["UNIONCAT_CONFIG_DIR"])
        deployment.mkdir()
        shipped = (ROOT / "config" / "elasticsearch.toml").read_text(encoding="utf-8")
        assert '\nindex = "unioncat"\n' in shipped
        (deployment / "elasticsearch.toml").write_text(
            shipped.replace('\nindex = "unioncat"\n', f'\nindex = "{self.alias}"\n'), encoding="utf-8")
        (self.work / "config").symlink_to(ROOT / "config")
        samples = write_demo_files(self.work.parent / f"{self.work.name}-samples")
        shutil.copy(samples["iizuka"], self.work / "iizuka-2026-11.mrc")
        shutil.copy(samples["iizuka"], self.work / "iizuka.mrc")
        with open(samples["hiroshima-u"], "rb") as fh, gzip.open(self.work / "hu-all.xml.gz", "wb") as out:
            writer = pymarc.XMLWriter(out)
            for rec in pymarc.MARCReader(fh, to_unicode=True, force_utf8=True):
                writer.write(rec)
            writer.close(close_fh=False)

    # -- rewriting
    def rewrite(self, text: str) -> str:
        text = text.replace("127.0.0.1:8210", f"127.0.0.1:{self.http}")
        text = text.replace("127.0.0.1:2100", f"127.0.0.1:{self.z3950}")
        if re.search(r"https?://[A-Za-z0-9.-]+:9200", text):
            self.used_es = self.used_es or self.current
            text = re.sub(r"https?://[A-Za-z0-9.-]+:9200", self.es_url_of(), text)
        if SERVER.search(text) and "--no-serve" not in text:
            text = re.sub(r"(?<![\w-])--port[ =]\d+", f"--port {self.http}", text)
            extra = ("" if re.search(r"(?<![\w-])--port\b", text) else f" --port {self.http}") + \
                    ("" if "--z3950-port" in text else f" --z3950-port {self.z3950}")
            text = SERVER.sub(lambda m: m.group(0) + extra, text, count=1)
        return text

    # -- running
    def run(self) -> dict[int, Outcome]:
        self.prepare()
        try:
            for ex in ALL[self.doc]:
                self.current = ex
                try:
                    self.outcomes[ex.line] = self.one(ex)
                    if self.server is not None and self.server_example is not ex:
                        self.clients.append(ex.line)
                        said = self.server_said()
                        if "Traceback" in said:          # the server logged a traceback for this client
                            self.outcomes[ex.line] = Outcome(False, f"the server logged a traceback:\n{said[-4000:]}")
                except Exception as e:  # noqa: BLE001 - recorded as the example's failure
                    self.outcomes[ex.line] = Outcome(False, f"{type(e).__name__}: {e}")
        finally:
            self.stop_server()
            if self.used_es and not self.clean_es():
                self.outcomes[self.used_es.line] = Outcome(False, f"no index behind the run's alias {self.alias}")
        return self.outcomes

    def one(self, ex: Example) -> Outcome:
        if ex.program == "make":
            return self.make(ex)
        if ex.program == "python":
            return self.bench(ex)
        if ex.program == "yaz-client":
            self.ensure_server()
            return self.yaz(ex)
        cmd = self.rewrite(ex.text)
        if SERVER.search(cmd) and "--no-serve" not in cmd:
            return self.start_server(ex, cmd)
        if ex.program in ("curl", "zoomsh"):
            self.ensure_server()
        res, state = self.shell(cmd)
        return self.judge(ex, res, state)

    def shell(self, cmd: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
        """Run one command line in bash; variables it assigns (TOKEN=$(...)) are kept
        for the next lines."""
        state_file = self.work.parent / f"{self.work.name}.env"
        script = f"set -a -o pipefail\n{cmd}\n__rc=$?\nenv -0 > {shlex.quote(str(state_file))}\nexit $__rc\n"
        res = subprocess.run(["bash", "-c", script], cwd=self.work, env=self.env, capture_output=True,
                             text=True, timeout=600, stdin=subprocess.DEVNULL)
        state: dict[str, str] = {}
        if state_file.exists():
            for item in state_file.read_text(encoding="utf-8", errors="replace").split("\0"):
                k, sep, v = item.partition("=")
                if sep and not k.startswith("__") and k not in ("_", "SHLVL", "PWD", "OLDPWD"):
                    state[k] = v
            state_file.unlink()
            self.env = state
        return res, state

    def judge(self, ex: Example, res: subprocess.CompletedProcess, state: dict[str, str]) -> Outcome:
        said = f"exit status {res.returncode}\nstdout: {res.stdout[-3000:]}\nstderr: {res.stderr[-3000:]}"
        if res.returncode != 0 or "Traceback" in res.stderr:
            return Outcome(False, said)
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=\$\(", ex.text)
        if m:
            return Outcome(bool(state.get(m.group(1), "").strip()), f"{m.group(1)} is empty\n{said}")
        words = shlex.split(ex.text, comments=True)
        if ex.program == "unioncat" and words[1:2] == ["search"]:
            hits = re.match(r"(\d+) hits", res.stdout)
            return Outcome(bool(hits and int(hits.group(1)) > 0), f"found nothing\n{said}")
        if ex.program == "curl":
            url = next(w for w in words if w.startswith("http"))
            if "/sru" in url:
                return check_sru(res.stdout, said)
            if "/api/" in url:
                return check_api(res.stdout, said)
        if ex.program == "zoomsh":
            hits = [int(n) for n in re.findall(r"(\d+) hits", res.stdout)]
            bad = re.search(r"(?i)error|diagnostic", res.stdout + res.stderr)
            return Outcome(bool(hits) and min(hits) > 0 and bad is None, said)
        return Outcome(True)

    def yaz(self, ex: Example) -> Outcome:
        typed = [self.rewrite(line) for line in ex.session] + ["quit"]
        res = subprocess.run(["yaz-client"], input="\n".join(typed) + "\n", cwd=self.work, env=self.env,
                             capture_output=True, text=True, timeout=120)
        out = res.stdout + res.stderr
        said = f"typed: {typed}\noutput: {out[-4000:]}"
        finds = [t for t in typed if t.split()[0] == "find"]
        hits = [int(n) for n in re.findall(r"Number of hits: (\d+)", out)]     # (over SRU, show too)
        if len(hits) < len(finds) or not all(hits):
            return Outcome(False, f"hits {hits} for {len(finds)} searches\n{said}")
        if re.search(r"[Dd]iagnostic|[Ee]rror|Connection (rejected|closed)|Target closed", out):
            return Outcome(False, said)
        shows = [t for t in typed if t.split()[0] == "show"]
        # a record shown: "Records: N" (Z39.50), "pos=N schema=..." (SRU)
        if len(re.findall(r"^Records: [1-9]|^pos=[1-9]\d* ", out, re.M)) < len(shows):
            return Outcome(False, f"a show printed no record\n{said}")
        return Outcome(res.returncode == 0, said)

    def make(self, ex: Example) -> Outcome:
        words = shlex.split(ex.text, comments=True)
        target = words[1] if len(words) > 1 else ""
        if target != "demo":
            res = subprocess.run(["make", "-n", target], cwd=ROOT, env=self.env, capture_output=True,
                                 text=True, timeout=120)
            return Outcome(res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:])
        recipe = makefile_recipe("demo")
        assert len(recipe) == 1, recipe
        cmd = recipe[0].replace("$(VENV)/bin/", "")
        assert "$(" not in cmd, cmd
        return self.start_server(ex, self.rewrite(cmd))

    def bench(self, ex: Example) -> Outcome:
        words = [w.strip("[]") for w in shlex.split(ex.text, comments=True)]
        interpreter, script = words[0], words[1] if len(words) > 1 else ""
        if interpreter.startswith("/") or not BENCH_SCRIPT.match(script) or not (ROOT / script).exists():
            return Outcome(False, f"{interpreter} {script}: not a benchmark script run from a clone")
        if script not in HELP:
            HELP[script] = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, env=self.env,
                                          capture_output=True, text=True, timeout=120)
        res = HELP[script]
        options = {w.split("=")[0] for w in words[2:] if w.startswith("--")}
        unknown = sorted(o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", res.stdout))
        return Outcome(res.returncode == 0 and not unknown, f"unknown options {unknown}\n{res.stderr[-2000:]}")

    # -- servers
    def ensure_server(self) -> None:
        if self.server is None:
            demo = Example(self.doc, 0, "unioncat demo --data-dir demo-data", "unioncat")
            got = self.start_server(demo, self.rewrite(demo.text))
            if not got.ok:
                raise RuntimeError(f"the demo server (for the examples' client commands) did not start: "
                                   f"{got.detail}")

    def start_server(self, ex: Example, cmd: str) -> Outcome:
        self.stop_server()
        self.server_log = self.work.parent / f"{self.work.name}-server-{ex.line}.log"
        self.server_read = 0
        log = open(self.server_log, "wb")
        self.server = subprocess.Popen(["bash", "-c", cmd], cwd=self.work, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.server_example = ex
        deadline = time.monotonic() + START_BUDGET
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                out = self.server_log.read_text(errors="replace")
                code, self.server = self.server.returncode, None
                return Outcome(False, f"{cmd}: exited with status {code}\n{out[-4000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.http), timeout=1).close()
            except OSError:
                time.sleep(0.2)
                continue
            said = self.server_said()
            return Outcome("Traceback" not in said, f"a traceback as it started:\n{said[-4000:]}")
        self.stop_server()
        return Outcome(False, f"{cmd}: not listening on {self.http} after {START_BUDGET} s")

    def stop_server(self) -> None:
        proc, ex = self.server, self.server_example
        if proc is None:
            return
        self.server = None
        try:
            os.killpg(proc.pid, signal.SIGINT)          # Ctrl-C, as a user stops it
        except ProcessLookupError:
            pass
        try:
            proc.wait(STOP_BUDGET)
            stopped = True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            stopped = False
        out = self.server_said()
        clients, self.clients = self.clients, []
        problem = (f"did not stop within {STOP_BUDGET} s of SIGINT" if not stopped else
                   "a traceback in its output" if "Traceback" in out else None)
        if problem and ex is not None:
            # the server's own example fails; a demo started for client examples fails them
            for line in [ex.line] if ex.line else clients:
                self.outcomes[line] = Outcome(False, f"{ex.text}: {problem}\n{out[-4000:]}")

    def server_said(self) -> str:
        """What the server wrote since the last look."""
        data = self.server_log.read_bytes() if self.server_log and self.server_log.exists() else b""
        new, self.server_read = data[self.server_read:], len(data)
        return new.decode("utf-8", errors="replace")

    # -- Elasticsearch: the indexes behind the run's alias
    def clean_es(self) -> int:
        """Delete the run's indexes; how many there were."""
        base = self.es_url_of()
        with urllib.request.urlopen(f"{base}/_cat/indices/{self.alias}*?format=json", timeout=30) as r:
            names = [i["index"] for i in json.load(r)]
        if names:
            req = urllib.request.Request(f"{base}/{','.join(names)}", method="DELETE")
            urllib.request.urlopen(req, timeout=60).close()
        return len(names)


def makefile_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if re.match(rf"{re.escape(target)}\s*:", line):
            recipe = []
            for nxt in lines[i + 1:]:
                if not nxt.startswith("\t"):
                    break
                recipe.append(nxt.strip())
            return recipe
    raise AssertionError(f"no target {target} in the Makefile")


def check_sru(body: str, said: str) -> Outcome:
    try:
        root = etree.fromstring(body.encode("utf-8"))
    except etree.XMLSyntaxError as e:
        return Outcome(False, f"not XML: {e}\n{said}")
    names = [etree.QName(el).localname for el in root.iter() if isinstance(el.tag, str)]
    kind = etree.QName(root).localname
    if "diagnostic" in names:
        return Outcome(False, f"an SRU diagnostic\n{said}")
    if kind == "searchRetrieveResponse":
        n = root.find(".//{*}numberOfRecords")
        return Outcome(n is not None and int(n.text) > 0 and "record" in names, f"no records\n{said}")
    if kind == "scanResponse":
        return Outcome("term" in names, f"no terms\n{said}")
    return Outcome(kind == "explainResponse", f"not an SRU response: {kind}\n{said}")


def check_api(body: str, said: str) -> Outcome:
    try:
        data = json.loads(body)
    except ValueError:
        return Outcome(False, f"not JSON\n{said}")
    return Outcome(isinstance(data, dict) and "error" not in data, said)


# --------------------------------------------------------------------------- the tests

@pytest.fixture(scope="module")
def walks(request, tmp_path_factory):
    done: dict[str, dict[int, Outcome]] = {}

    def es_url():
        return request.getfixturevalue("es_url")

    def outcome(doc: str, line: int) -> Outcome:
        if doc not in done:
            work = tmp_path_factory.mktemp("examples") / Path(doc).stem
            done[doc] = Walk(doc, work, es_url).run()
        return done[doc][line]

    return outcome


def _params():
    for doc, exs in ALL.items():
        for ex in exs:
            reason = KNOWN_FAILURES.get((doc, ex.text))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(doc, ex.line, ex.text, id=ex.id, marks=marks)


@pytest.mark.peer
@pytest.mark.parametrize("doc, line, text", list(_params()))
def test_example_works_as_written(walks, doc, line, text):
    got = walks(doc, line)
    assert got.ok, f"{doc}:{line}: {text}\n{got.detail}"


def test_known_failures_name_real_examples():
    for doc, text in KNOWN_FAILURES:
        assert any(e.text == text for e in ALL[doc]), (doc, text)


def test_the_only_rewrites_are_ports_and_elasticsearch_urls(tmp_path):
    w = Walk("README.md", tmp_path / "w", lambda: "http://127.0.0.1:9999")
    w.http, w.z3950 = 1111, 2222
    assert w.rewrite("unioncat serve  --data-dir cat --host 127.0.0.1 --port 8210") == \
        "unioncat serve --z3950-port 2222  --data-dir cat --host 127.0.0.1 --port 1111"
    assert w.rewrite("unioncat serve   --data-dir escat        # remembers") == \
        "unioncat serve --port 1111 --z3950-port 2222   --data-dir escat        # remembers"
    assert w.rewrite("unioncat demo --no-serve") == "unioncat demo --no-serve"
    assert w.rewrite("curl 'http://127.0.0.1:8210/sru?query=x'") == "curl 'http://127.0.0.1:1111/sru?query=x'"
    assert w.rewrite("open tcp:127.0.0.1:2100") == "open tcp:127.0.0.1:2222"
    assert w.rewrite("unioncat ingest --es-url http://es1:9200 --es-url http://127.0.0.1:9200 x") == \
        "unioncat ingest --es-url http://127.0.0.1:9999 --es-url http://127.0.0.1:9999 x"
    assert program_of('TOKEN=$(curl -s -d \'{"a": 1}\' | python3 -c "x")') == "curl"
    assert program_of("UNIONCAT_STAFF_PASSWORD=x unioncat circ staff passwd u") == "unioncat"
    assert program_of("records: 250000   machine: 2 CPUs") is None
    assert program_of(".venv/bin/python bench/run_bench.py") == "python"
