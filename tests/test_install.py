"""A plain install runs (issue 15: "A plain install does not run").

The wheel is built from the project's files as `pip install .` builds it (from a copy
of the work tree: the files git tracks or would track, so the tree itself stays clean),
installed with its dependencies into a fresh virtualenv, and the installed `unioncat`
is run from a temporary directory outside the project, with TZ=UTC: ingest, search,
the circulation database from the installed sample files, and serve (one SRU request
and one circulation API request over HTTP, then stopped by PID). Every data file the
code finds through config.locate() must come from the installed package."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest
from lxml import etree

import config
from gateway.demo import write_demo_files
from live_server import free_port

ROOT = Path(__file__).resolve().parents[1]
DATA_NAMES = ["marc21_fields.toml", "indexes.toml", "bib1.toml", "libraries.toml", "elasticsearch.toml",
              "elasticsearch-index.json", "profiles/iizuka.toml", "notices/hold_ready.ja.txt",
              "samples/patrons.csv", "sru/schemas/sru-2.0.xsd", "gateway/openapi/circulation.json",
              "indexers/data/kanji_variants.tsv"]


def _project_files() -> list[Path]:
    """The files a fresh clone of this work tree would hold (tracked, or new and not ignored)."""
    if shutil.which("git") and (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout
        return [Path(p) for p in out.decode().split("\0") if p and (ROOT / p).is_file()]
    skip = {".venv", ".git", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis", "demo-data"}
    return [p.relative_to(ROOT) for p in ROOT.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)]


def _shipped_data_files() -> set[str]:
    """Every data file under config/ and the code's data directories, as wheel paths."""
    names = set()
    dirs = [ROOT / "config", *(ROOT / pkg / sub for pkg, sub in config.CODE_DATA.items())]
    for top in dirs:
        for f in top.rglob("*"):
            if f.is_file() and f.suffix not in (".py", ".pyc") and "__pycache__" not in f.parts:
                names.add(f.relative_to(ROOT).as_posix())
    return names


def run(argv, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    assert res.returncode == 0 and "Traceback" not in res.stderr, \
        f"{argv}: exit status {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv directory, its environment) with the wheel installed."""
    base = tmp_path_factory.mktemp("install")
    src, dist, venv = base / "src", base / "dist", base / "venv"
    for rel in _project_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNIONCAT_", "PYTHON"))}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(src)], env=env,
        timeout=900)
    (wheel,) = dist.glob("unioncat-*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_shipped_data_files() - in_wheel)
    assert missing == [], f"not in the wheel: {missing}"
    run([sys.executable, "-m", "venv", str(venv)], env=env, timeout=300)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], env=env, timeout=1200)
    env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "TZ": "UTC",
           "UNIONCAT_ARGON2": "time_cost=1,memory_cost=8,parallelism=1"}
    return venv, env


def test_every_data_file_comes_from_the_installed_package(installed, tmp_path):
    venv, env = installed
    probe = (
        "import json, sys\n"
        "import config, gateway\n"
        "from circulation.notices import templates\n"
        "from lifecycle.profiles import load_all\n"
        f"names = {DATA_NAMES!r}\n"
        "templates()\n"
        "print(json.dumps({'gateway': gateway.__file__, 'profiles': sorted(load_all()),\n"
        "                  'paths': {n: str(config.locate(n)) for n in names}}))\n"
    )
    res = run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=env, timeout=120)
    got = json.loads(res.stdout)
    site = run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=tmp_path, env=env).stdout.strip()
    assert Path(got["gateway"]).is_relative_to(site)
    assert got["profiles"] == ["hiroshima", "iizuka", "komae"]
    for name, path in got["paths"].items():
        assert Path(path).is_relative_to(site) and not Path(path).is_relative_to(ROOT), (name, path)


def test_the_installed_command_ingests_searches_and_serves_from_another_directory(installed, tmp_path):
    venv, env = installed
    here = tmp_path / "elsewhere"
    here.mkdir()
    files = write_demo_files(tmp_path / "exports")
    unioncat = str(venv / "bin" / "unioncat")

    def cli(*args):
        return run([unioncat, *args], cwd=here, env=env, timeout=300)

    out = cli("ingest", "--data-dir", "cat", "--library", "iizuka", str(files["iizuka"])).stdout
    assert out.startswith("read 11, added 11")
    cli("ingest", "--data-dir", "cat", "--library", "komae", str(files["komae"]))
    hits = cli("search", "--data-dir", "cat", "dc.title=図書館 and dc.date>2000").stdout
    assert hits.splitlines()[0] == "2 hits"
    assert "union records: " in cli("stats", "--data-dir", "cat").stdout

    # the circulation database from the sample files the wheel carries
    samples = run([str(venv / "bin" / "python"), "-c", "from config import locate; print(locate('samples'))"],
                  cwd=here, env=env).stdout.strip()
    assert "iizuka: 飯塚市立図書館" in cli("circ", "init", "--data-dir", "cat").stdout
    assert cli("circ", "load", "patrons", f"{samples}/patrons.csv", "--data-dir", "cat").stdout.startswith(
        "patrons: read 13, added 13")

    http, z3950 = free_port(), free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([unioncat, "serve", "--data-dir", "cat", "--port", str(http), "--z3950-port",
                                 str(z3950), "--z3950-workers", "1"], cwd=here, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240        # a bound on start-up, not a measurement
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.2)
        q = urllib.parse.urlencode({"query": "dc.title=図書館", "maximumRecords": "3"})
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/sru?{q}", timeout=60) as r:
            assert r.status == 200
            root = etree.fromstring(r.read())
        assert root.findtext("{*}numberOfRecords") == "3"
        assert len(root.findall("{*}records/{*}record")) == 3
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v1/openapi.json", timeout=60) as r:
            assert json.load(r)["openapi"].startswith("3.")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
            raise AssertionError(f"serve did not stop on SIGINT\n{log.read_text(errors='replace')}") from None
    said = log.read_text(errors="replace")
    assert proc.returncode == 0 and "Traceback" not in said, said
