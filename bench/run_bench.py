"""unioncat (Elasticsearch and embedded SQLite backends) vs Zebra, side by side,
on the same Library of Congress records.

One run does everything and stops everything it started:

1. gets the 250,000-record LoC file (``bench/loc_data.py``; ``--records N`` writes
   the first N records to a subset file),
2. derives the fixed 50-query CQL workload from it (``bench/workload.py``),
3. for each system -- unioncat on the embedded SQLite index (``unioncat-sqlite``),
   unioncat on Elasticsearch (``unioncat-es``: a single-node ES 8 started for the
   run by ``tools/elasticsearch_node.py`` in a temp dir, stopped afterwards), Zebra
   with ICU indexing, Zebra with its default ``string.chr`` indexing (see
   ``bench/zebra.py`` for the variants) -- loads the records (``unioncat ingest`` /
   ``zebraidx update``: wall time, records/s, peak RSS, size on disk), starts the
   server on 127.0.0.1, runs the workload once for hit counts, then sequentially
   (concurrency 1) and at concurrency 8 and 32 (``bench/http_load.py``: p50/p99
   latency, requests/s), optionally ``wrk`` on one fixed query, records the
   server's peak memory (for unioncat-es also the ES JVM's), and stops the server
   (by PID); for unioncat-es it then times ``unioncat reindex`` (documents/s),
4. prints the figures side by side with the ratios es/sqlite, es/zebra and
   sqlite/zebra, lists the queries where the ES and SQLite hit counts differ,
   and writes JSON.

``--scale N`` is the scaling run: ``bench/make_million.py`` writes N records (the
LoC records plus distinct copies), and only ingest records/s, index size on disk
and the sequential SRU latency of the same 50 queries (built from the LoC file,
as in the 250,000-record run) are measured, for unioncat-es and unioncat-sqlite
(add ``--systems sqlite,es,zebra`` for Zebra/ICU too).

usage::

    python bench/run_bench.py                       # all 250,000 records, all systems
    python bench/run_bench.py --records 20000       # quick run on the first 20,000
    python bench/run_bench.py --systems sqlite,es   # unioncat on both backends only
    python bench/run_bench.py --skip-es             # unioncat-sqlite and Zebra
    python bench/run_bench.py --skip-unioncat --zebra-variants icu
    python bench/run_bench.py --scale 1000000       # ingest/disk/sequential latency at 1M records
    python bench/run_bench.py --out bench/results.json --keep   # keep the work dir
    python bench/run_bench.py --workdir W --keep --skip-es --zebra-variants icu   # load once into W ...
    python bench/run_bench.py --workdir W --reuse --skip-es --zebra-variants icu  # ... serve it again
    python bench/run_bench.py --scale 1000000 --systems sqlite --workdir W --load-only   # load now ...
    python bench/run_bench.py --scale 1000000 --systems sqlite --workdir W --reuse       # ... query later
    python bench/run_bench.py --scale 1000000 --systems es --workdir W --keep        # load ES, node kept ...
    python bench/run_bench.py --scale 1000000 --systems es --workdir W --reuse       # ... its node started again
    python bench/run_bench.py --scale 1000000 --systems es --workdir W --reuse --es-node-dir D  # kept w/o marker

Every measured phase records the latency of each of the 50 queries (count, p50, p99,
max, and how many of its requests are in the phase's slowest 1 %) as ``per_query``
in the JSON, and prints the slowest (bench/per_query.py).  The Elasticsearch side
with ``--keep`` keeps the node directory and writes ``unioncat-es/loaded.json`` naming
it; ``--reuse`` starts that node again (its old ports if free, else new ones: the
gateway is given the URL by --es-url), serves and queries it, and stops it by its PID
at the end, also on errors, Ctrl-C and SIGTERM, leaving the directory
(bench/es_kept.py).

All servers bind to 127.0.0.1 on free ports.  Every loop is bounded (number of
requests *and* seconds per phase, time-outs on ingest/index/start-up).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO / "tools"))  # elasticsearch_node.py

import es_kept  # noqa: E402
import http_load  # noqa: E402
import per_query  # noqa: E402
import procmon  # noqa: E402
import workload as wl  # noqa: E402
import zebra  # noqa: E402

# the report: bench/sru_report.py (re-exported: z3950_bench.py and others use rb._fmt_table ...)
from sru_report import _disp_width as _disp_width  # noqa: E402
from sru_report import _fmt_table as _fmt_table  # noqa: E402
from sru_report import _legacy_names as _legacy_names  # noqa: E402
from sru_report import _ratio as _ratio  # noqa: E402
from sru_report import report as report  # noqa: E402

WRK_QUERY = "dc.title=history"


# ---------------------------------------------------------------- PID registry

STARTED = procmon.Registry()  # every PID this run started and has not reaped yet


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------- systems

def _dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20, 1)


class System:
    """Hooks every benchmarked system has; the defaults do nothing."""

    def side_pids(self) -> dict[str, int]:
        """Other server processes the system needs (name -> PID), measured too."""
        return {}

    def after_serve(self, out: dict, a) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def loaded_marker(self) -> Path | None:
        """Where a finished load's figures are kept for --reuse (None: not reusable)."""
        return None

    def reuse(self) -> dict | None:
        """Make a kept catalog servable again (--reuse); what it did, for the results."""
        return None


class UnioncatSystem(System):
    """unioncat on its embedded SQLite index (the data directory is the whole catalog)."""

    name = "unioncat-sqlite"

    def __init__(self, root: Path, cmd: list[str], library: str, env: dict, start_timeout: float):
        self.root = root
        self.data_dir = root / "data"
        self.cmd = cmd
        self.library = library
        self.env = env
        self.port = procmon.free_port()
        self.proc: subprocess.Popen | None = None
        self.start_timeout = start_timeout

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sru"

    @property
    def loaded_marker(self) -> Path | None:
        """The load figures of a finished load, kept beside the data for --reuse."""
        return self.root / "loaded.json"

    def reuse(self) -> dict | None:
        if not (self.data_dir / "catalog.sqlite").exists():
            raise RuntimeError(f"--reuse: no catalog in {self.data_dir}")
        return None

    # hooks the Elasticsearch variant fills in
    def backend_args(self) -> list[str]:
        return []

    def load(self, path: Path, timeout: float) -> dict:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        help_text = subprocess.run([*self.cmd, "ingest", "--help"], capture_output=True, text=True,
                                   env=self.env, timeout=60).stdout
        extra = [f for f in ("--quiet", "--json") if f in help_text]
        cmd = [*self.cmd, "ingest", "--data-dir", str(self.data_dir), *self.backend_args(),
               "--library", self.library, *extra, str(path)]
        print("  $", " ".join(cmd), flush=True)
        side = self._side_monitors()
        try:
            res = procmon.run_measured(cmd, log_path=self.root / "ingest.log", timeout=timeout,
                                       env=self.env, register=STARTED)
        finally:
            side_out = self._side_results(side)
        counts = parse_ingest_counts(res["output"])
        out = {
            "command": " ".join(cmd),
            "returncode": res["returncode"],
            "wall_s": round(res["wall_s"], 2),
            "counts": counts,
            "records": counts.get("read"),
            "peak_rss_mb": res["peak_rss_mb"],
            "peak_tree_rss_mb": res["tree"]["peak_rss_mb"],
            "peak_tree_anon_mb": res["tree"]["peak_anon_mb"],
            "user_s": res["user_s"],
            "sys_s": res["sys_s"],
            "cpu_s": res["tree_cpu_s"],
            "disk_mb": _dir_mb(self.data_dir) if self.data_dir.exists() else None,
        }
        out.update(side_out)
        if side_out.get("es_cpu_s") is not None:
            out["ingest_cpu_s"] = out["cpu_s"]
            out["cpu_s"] = round(out["cpu_s"] + side_out["es_cpu_s"], 2)  # all processes incl. the JVM
        if out["records"]:
            out["records_per_s"] = round(out["records"] / res["wall_s"], 1)
        self.check_load(out, res)
        return out

    def check_load(self, out: dict, res: dict) -> None:
        if res["returncode"] != 0:
            out["error"] = res["output"][-3000:]
            raise SystemFailed(self.name, out)

    def _side_monitors(self) -> dict:
        mons = {}
        for label, pid in self.side_pids().items():
            mons[label] = (pid, procmon.tree_cpu_s(pid), procmon.TreeMemory(pid, interval=0.2).start())
        return mons

    @staticmethod
    def _side_results(mons: dict) -> dict:
        out = {}
        for label, (pid, cpu0, mon) in mons.items():
            mem = mon.stop()
            out[f"{label}_cpu_s"] = round(procmon.tree_cpu_s(pid) - cpu0, 2)
            out[f"{label}_peak_rss_mb"] = mem["peak_rss_mb"]
            out[f"{label}_peak_anon_mb"] = mem["peak_anon_mb"]
        return out

    def start(self) -> int:
        log = open(self.root / "serve.log", "wb")
        # no Z39.50: this bench measures SRU, and the Z39.50 worker processes starting up
        # (seconds of CPU each on a loaded machine) were charged to the first SRU phases
        # as server CPU; port 2100 may also be another bench's
        cmd = [*self.cmd, "serve", "--data-dir", str(self.data_dir), *self.backend_args(),
               "--host", "127.0.0.1", "--port", str(self.port)]
        if "--z3950-port" not in cmd:   # (bench/z3950_bench.py's subclass asks for its port)
            cmd += ["--z3950-port", "0"]
        print("  $", " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env)
        log.close()
        STARTED.add(self.proc.pid)
        try:
            zebra.wait_http(f"{self.base_url}?operation=explain&version=1.2", timeout=self.start_timeout,
                            proc=self.proc, what="unioncat serve", log=self.root / "serve.log")
        except BaseException:
            self.stop()
            raise
        return self.proc.pid

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            procmon.stop_tree(self.proc.pid)
            try:
                self.proc.wait(timeout=5)
                STARTED.discard(self.proc.pid)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None


class EsSystem(UnioncatSystem):
    """unioncat on Elasticsearch: a single-node ES (tools/elasticsearch_node.py) in a
    directory of its own made with tempfile.mkdtemp (the node runs as an unprivileged
    user when we are root, and must be able to enter it), started before the ingest
    and stopped in :meth:`close` (always called, also on errors and SIGTERM).

    ``keep``: the node directory is kept and the load's figures, with the node
    directory, are written to ``<root>/loaded.json``; ``--reuse`` starts the node again
    from that directory (bench/es_kept.py) and stops it by its PID, leaving it."""

    @property
    def loaded_marker(self) -> Path | None:
        # without keep the node directory is removed at the end: nothing to reuse
        return es_kept.marker_path(self.root) if self.keep else None

    name = "unioncat-es"

    def __init__(self, root: Path, cmd: list[str], library: str, env: dict, start_timeout: float, *,
                 heap: str, index: str = "bench", config: Path | None = None, keep: bool = False,
                 reindex: bool = True):
        super().__init__(root, cmd, library, env, start_timeout)
        self.heap = heap
        self.index = index
        self.config = config
        self.keep = keep
        self.do_reindex = reindex
        self.node = None
        self.node_dir: Path | None = None
        self.node_info: dict = {}

    def start_node(self, kept: Path | None = None) -> None:
        """Start a node in a new temp dir, or (``kept``) the kept node of that directory."""
        from elasticsearch_node import ElasticsearchNode

        if kept is None:
            self.node_dir = Path(tempfile.mkdtemp(prefix="unioncat-bench-es-"))
            self.node = ElasticsearchNode(self.node_dir, heap=self.heap)
        else:
            self.node_dir = kept
            http, transport = es_kept.kept_ports(kept)
            self.node = ElasticsearchNode(kept, http_port=http, transport_port=transport, heap=self.heap)
        print(f"  starting Elasticsearch (heap {self.heap}) in {self.node_dir}", flush=True)
        t0 = time.perf_counter()
        try:
            self.node.start(timeout=self.start_timeout)
        finally:
            if self.node.pid:
                STARTED.add(self.node.pid)
        self.node_info = {"url": self.node.url, "pid": self.node.pid, "heap": self.heap,
                          "dir": str(self.node_dir), "start_s": round(time.perf_counter() - t0, 1),
                          "version": getattr(sys.modules["elasticsearch_node"], "VERSION", None),
                          "idle_rss_mb": round(procmon._status_kb(self.node.pid, "VmRSS") / 1024, 1)}
        print(f"  Elasticsearch {self.node.url} pid {self.node.pid} up after {self.node_info['start_s']} s, "
              f"RSS {self.node_info['idle_rss_mb']} MB", flush=True)

    def reuse(self) -> dict | None:
        """Start the kept node (its directory from the marker main() checked or wrote) and
        report it; the gateway gets its URL by --es-url (backend_args), so the URL the
        ingest remembered in the data dir's meta is not used and not rewritten."""
        super().reuse()
        marker = self.loaded_marker
        if marker is None:
            raise RuntimeError("--reuse of unioncat-es needs the kept node (keep)")
        try:
            node_dir = es_kept.check_node_dir(es_kept.node_dir_of(es_kept.read_marker(marker)))
        except es_kept.KeptCatalogError as e:
            raise RuntimeError(f"--reuse: {e}") from None
        self.start_node(kept=node_dir)
        return {"es_node": self.node_info, **self.index_size()}

    def backend_args(self) -> list[str]:
        args = ["--backend", "elasticsearch", "--es-url", self.node.url, "--es-index", self.index]
        if self.config:
            args += ["--config", str(self.config)]
        return args

    def side_pids(self) -> dict[str, int]:
        return {"es": self.node.pid} if self.node is not None and self.node.pid else {}

    def load(self, path: Path, timeout: float) -> dict:
        if self.node is None:
            self.start_node()
        out = super().load(path, timeout)
        out["es_node"] = self.node_info
        out["merge_settle"] = self.settle()
        out.update(self.index_size())
        out["store_mb"] = out["disk_mb"]  # the record store (catalog.sqlite) in the data dir
        if out.get("es_index_mb") is not None:
            out["disk_mb"] = round(out["store_mb"] + out["es_index_mb"], 1)
        return out

    def check_load(self, out: dict, res: dict) -> None:
        es = (out.get("counts") or {}).get("elasticsearch") or {}
        out["es_counts"] = es
        if res["returncode"] == 75:
            out["error"] = ("exit 75: records wait in the outbox (Elasticsearch push did not finish): "
                            + str(es) + "\n" + res["output"][-2000:])
            raise SystemFailed(self.name, out)
        super().check_load(out, res)
        if es.get("failed") or es.get("pending") or es.get("error"):
            out["warning"] = f"elasticsearch counts: {es}"
            print(f"  !! {out['warning']}", flush=True)

    def settle(self, limit: float = 600) -> dict:
        """Wait (bounded) until the node runs no segment merges any more, so the query
        phases do not share the CPU with the merges the bulk load left behind (the
        SQLite and Zebra loads leave no background work).  Reports the wait and the
        JVM CPU spent meanwhile."""
        from elasticsearch_node import http_json

        t0 = time.perf_counter()
        cpu0 = procmon.tree_cpu_s(self.node.pid)
        quiet = 0
        current = None
        while time.perf_counter() - t0 < limit:
            try:
                status, body = http_json(f"{self.node.url}/_nodes/stats/indices/merge", timeout=30)
                current = sum(n["indices"]["merges"]["current"] for n in body["nodes"].values())
            except (OSError, ValueError, KeyError, TypeError):
                current = None
            quiet = quiet + 1 if current == 0 else 0
            if quiet >= 3:  # three polls in a row without a running merge
                break
            time.sleep(1)
        out = {"wait_s": round(time.perf_counter() - t0, 1),
               "jvm_cpu_s": round(procmon.tree_cpu_s(self.node.pid) - cpu0, 1),
               "merges_running_at_end": current}
        print(f"  merges settled: {out}", flush=True)
        return out

    def index_size(self) -> dict:
        """_cat/indices of the alias's index (store size, docs) and the node's data dir."""
        from elasticsearch_node import http_json

        out: dict = {}
        try:
            http_json(f"{self.node.url}/{self.index}/_refresh", method="POST", timeout=120)
            status, body = http_json(f"{self.node.url}/_cat/indices/{self.index}?format=json&bytes=b",
                                     timeout=60)
            if status == 200 and isinstance(body, list):
                out["es_indices"] = [{k: r.get(k) for k in ("index", "docs.count", "docs.deleted", "store.size")}
                                     for r in body]
                out["es_index_mb"] = round(sum(int(r.get("store.size") or 0) for r in body) / 2**20, 1)
                out["es_docs"] = sum(int(r.get("docs.count") or 0) for r in body)
            status, body = http_json(f"{self.node.url}/_cat/segments/{self.index}?format=json", timeout=60)
            if status == 200 and isinstance(body, list):
                out["es_segments"] = len(body)
        except (OSError, ValueError) as e:
            out["es_index_error"] = f"{type(e).__name__}: {e}"
        if self.node_dir is not None:
            out["es_data_dir_mb"] = _dir_mb(self.node_dir / "data")
        return out

    def after_serve(self, out: dict, a) -> None:
        if not self.do_reindex:
            return
        print(f"== {self.name}: reindex", flush=True)
        cmd = [*self.cmd, "reindex", "--data-dir", str(self.data_dir), *self.backend_args()]
        print("  $", " ".join(cmd), flush=True)
        side = self._side_monitors()
        try:
            res = procmon.run_measured(cmd, log_path=self.root / "reindex.log", timeout=a.load_timeout,
                                       env=self.env, register=STARTED)
        finally:
            side_out = self._side_results(side)
        r = {"command": " ".join(cmd), "returncode": res["returncode"], "wall_s": round(res["wall_s"], 2),
             "peak_rss_mb": res["peak_rss_mb"], "cpu_s": res["tree_cpu_s"], **side_out,
             "output": res["output"][-2000:]}
        m = re.search(r"reindexed (\d+) union records into (\S+) in ([\d.]+) s", res["output"])
        if res["returncode"] == 0 and m:
            r["documents"] = int(m.group(1))
            r["index"] = m.group(2)
            r["reported_s"] = float(m.group(3))
            r["docs_per_s"] = round(r["documents"] / res["wall_s"], 1)
            r.update(self.index_size())
        else:
            r["error"] = f"exit {res['returncode']}: {res['output'][-1500:].strip()}"
            out.setdefault("problems", []).append(f"reindex failed: {r['error']}")
        out["reindex"] = r
        print("  ", {k: v for k, v in r.items() if k not in ("command", "output", "es_indices")}, flush=True)

    def close(self) -> None:
        if self.node is not None:
            pid = self.node.pid
            try:
                self.node.stop()
                print(f"  Elasticsearch pid {pid} stopped", flush=True)
            except Exception as e:  # noqa: BLE001 -- the registry's stop-by-PID is the fallback
                print(f"  !! stopping Elasticsearch: {e}", file=sys.stderr, flush=True)
            else:
                if pid:
                    STARTED.discard(pid)
            self.node = None
        if self.node_dir is not None and not self.keep:
            shutil.rmtree(self.node_dir, ignore_errors=True)


class ZebraSystem(System):
    def __init__(self, root: Path, variant: str, start_timeout: float):
        self.name = f"zebra-{variant}"
        self.z = zebra.ZebraSetup(root, variant)
        self.start_timeout = start_timeout

    @property
    def base_url(self) -> str:
        return self.z.base_url

    @property
    def loaded_marker(self) -> Path | None:
        return self.z.root / "loaded.json"

    def reuse(self) -> None:
        if not (self.z.root / "db" / "register").is_dir():
            raise RuntimeError(f"--reuse: no Zebra register in {self.z.root}")
        self.z.write_config()

    def load(self, path: Path, timeout: float) -> dict:
        print(f"  $ zebraidx -c conf/zebra.cfg update {path}   (in {self.z.root})", flush=True)
        out = self.z.index([path], timeout=timeout, register=STARTED)
        out["disk_mb"] = out.pop("register_mb")
        return out

    def start(self) -> int:
        pid = self.z.start(wait=self.start_timeout, register=STARTED)
        print(f"  zebrasrv pid {pid} on {self.base_url}", flush=True)
        return pid

    @property
    def pid(self) -> int:
        return self.z.pid

    def stop(self) -> None:
        self.z.stop()


class SystemFailed(Exception):
    def __init__(self, name, info):
        super().__init__(f"{name} failed")
        self.name = name
        self.info = info


def parse_ingest_counts(output: str) -> dict:
    """Counts from ``unioncat ingest`` output: the --json line, else the text line
    ``read N, added N, updated N, ..., quarantined N``."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                d = json.loads(line)
                if "read" in d:
                    return d
            except ValueError:
                pass
    counts = {}
    for key in ("read", "added", "updated", "unchanged", "withdrawn", "merged", "quarantined"):
        m = re.findall(rf"\b{key}\b[:=]?\s+(\d+)", output)
        if m:
            counts[key] = int(m[-1])
    return counts


def unioncat_command(arg: str | None) -> tuple[list[str], dict]:
    env = dict(os.environ)
    if arg:
        return arg.split(), env
    exe = Path(sys.executable).with_name("unioncat")
    if exe.exists():
        return [str(exe)], env
    found = shutil.which("unioncat")
    if found:
        return [found], env
    # not installed: run the CLI module from this checkout
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-m", "gateway.cli"], env


# ---------------------------------------------------------------- measuring one system

def measure(system, path: Path, queries: list[str], a, out: dict) -> None:
    """Load, serve, query; fills ``out`` as it goes (partial results survive errors).
    ``a.scale``: only the sequential phase (no concurrent phases, wrk or reindex)."""
    print(f"\n== {system.name}: load", flush=True)
    marker = system.loaded_marker
    if a.reuse and marker is not None and marker.exists():
        # --reuse: serve what a --keep run (this script's or bench/z3950_bench.py's, same layout) loaded
        out["load"] = json.loads(marker.read_text()) | {"reused": str(marker.parent)}
        print(f"  reusing the loaded catalog in {marker.parent} (load figures of the run that made it)",
              flush=True)
        info = system.reuse()
        if info:
            out["reuse"] = info
    else:
        out["load"] = system.load(path, a.load_timeout)
        if marker is not None:
            marker.write_text(json.dumps(out["load"]))
    print("  ", {k: v for k, v in out["load"].items() if k not in ("command", "counts", "es_indices")},
          flush=True)
    if a.load_only:
        return      # kept for a later --reuse run, which serves and queries it
    print(f"== {system.name}: serve", flush=True)
    t0 = time.perf_counter()
    pid = system.start()
    out["start_s"] = round(time.perf_counter() - t0, 2)
    side = system.side_pids()  # e.g. the Elasticsearch JVM: its memory and CPU count too
    mon = procmon.TreeMemory(pid, interval=0.2).start()
    side_mon = {k: procmon.TreeMemory(p, interval=0.2).start() for k, p in side.items()}

    def cpu():
        g = procmon.tree_cpu_s(pid)
        return g, g + sum(procmon.tree_cpu_s(p) for p in side.values())

    try:
        time.sleep(0.5)
        mon.poll()
        out["server_idle_rss_mb"] = round(mon.peak_rss_kb / 1024, 1)
        for k, m in side_mon.items():
            m.poll()
            out[f"{k}_idle_rss_mb"] = round(m.peak_rss_kb / 1024, 1)
        print("  hit counts (one sequential pass, also the warm-up)", flush=True)
        extra = a.extra if system.name.startswith("unioncat") else None  # see --result-set-ttl
        out["request_extra"] = extra
        out["hits"] = http_load.hit_counts(system.base_url, queries, extra=extra)
        bad = [h for h in out["hits"] if h.get("status") != 200 or h.get("diagnostic")]
        if bad:
            print(f"  {len(bad)} queries gave errors/diagnostics, e.g. {bad[0]}", flush=True)
        phases = [("seq", 1, a.seq_requests)]
        if not a.scale:
            phases += [(f"c{c}", c, a.conc_requests) for c in a.concurrency]
        for label, conc, nreq in phases:
            load = os.getloadavg()[0]
            g0, cpu0 = cpu()
            r = http_load.run_load(system.base_url, queries, concurrency=conc, max_requests=nreq,
                                   max_seconds=a.seconds, extra=extra, by_query=True)
            g1, cpu1 = cpu()
            r["per_query"] = per_query.stats(r.pop("by_query_ms"), queries)
            r["server_cpu_s"] = round(cpu1 - cpu0, 3)
            r["server_cpu_ms_per_req"] = round(1000 * (cpu1 - cpu0) / r["requests"], 3) if r["requests"] else None
            if side:
                r["gateway_cpu_ms_per_req"] = (round(1000 * (g1 - g0) / r["requests"], 3)
                                               if r["requests"] else None)
            r["loadavg_before"] = round(load, 2)
            out[label] = r
            print(f"  {label:4s} n={r['requests']} rps={r['rps']} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
                  f"server CPU {r['server_cpu_ms_per_req']}ms/req errors={r['errors']} "
                  f"diagnostics={r['diagnostics']} ({r['bounded_by']}; load avg before {load:.1f})",
                  flush=True)
            print(per_query.slowest_text(r["per_query"], k=8 if label == "seq" else 3), flush=True)
        if a.wrk and not a.scale and shutil.which("wrk"):
            url = http_load.sru_url(system.base_url, WRK_QUERY, extra=extra)
            out["wrk"] = {}
            for c in (1, 8):
                r = http_load.run_wrk(url, connections=c, seconds=a.wrk_seconds)
                out["wrk"][f"c{c}"] = r
                print(f"  wrk -c{c}: rps={r['rps']} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
                      f"non2xx={r['non2xx']}", flush=True)
        mon.poll()
        out["server_mem"] = mon.stop()
        out["server_mem"]["root_hwm_mb"] = round(procmon.hwm_kb(pid) / 1024, 1)
        for k, m in side_mon.items():
            m.poll()
            out[f"{k}_mem"] = m.stop()
            out[f"{k}_mem"]["root_hwm_mb"] = round(procmon.hwm_kb(side[k]) / 1024, 1)
    finally:
        mon.stop()
        for m in side_mon.values():
            m.stop()
        system.stop()
    if not a.scale:
        system.after_serve(out, a)




# ---------------------------------------------------------------- main

def host_info() -> dict:
    """The machine and the checkout a benchmark ran on (shared by every bench/ script)."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_mb"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True, timeout=10).stdout.strip()
        # unioncat runs from this checkout (editable install): note uncommitted changes
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        info["git_modified"] = [ln[3:] for ln in dirty if ln.strip()]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def machine_info() -> dict:
    info = host_info()
    try:
        v = subprocess.run(["zebraidx", "-V"], capture_output=True, text=True, timeout=10).stdout
        info["zebra"] = " ".join(v.split()[:4])
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def _count_records(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\x1d")
    return n


CODE_PATHS = ("indexers", "gateway", "sru", "config")


def _system_kind(name: str) -> str:
    """The --systems word of a system's name: unioncat-sqlite -> sqlite, unioncat-es -> es, zebra-* -> zebra."""
    return "zebra" if name.startswith("zebra") else name.removeprefix("unioncat-")


def code_state() -> str | None:
    """HEAD plus a digest of the uncommitted changes to the code unioncat runs from
    (an editable install: a commit or edit in the work tree during a run changes
    what the next ``unioncat`` process executes)."""
    import hashlib
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        diff = subprocess.run(["git", "-C", str(REPO), "diff", "HEAD", "--", *CODE_PATHS], capture_output=True,
                              timeout=30).stdout
        untracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "--others", "--exclude-standard", "--",
                                    *CODE_PATHS], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not diff and not untracked:
        return head
    return f"{head}+dirty:{hashlib.sha1(diff + untracked).hexdigest()[:10]}"


def get_data(a) -> Path:
    if a.data:
        return Path(a.data)
    try:
        from loc_data import loc_records_path
    except ImportError:
        from bench.loc_data import loc_records_path  # when run as a package module
    return loc_records_path()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="unioncat (Elasticsearch, SQLite) vs Zebra on the same LoC records",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--records", type=int, default=None, help="use only the first N records")
    ap.add_argument("--systems", default=None,
                    help="comma list of sqlite,es,zebra, measured in that order (default: all three; "
                         "with --scale: sqlite,es)")
    ap.add_argument("--skip-zebra", action="store_true")
    ap.add_argument("--skip-es", action="store_true", help="no unioncat-es (and no Elasticsearch node)")
    ap.add_argument("--skip-unioncat", action="store_true", help="neither unioncat-sqlite nor unioncat-es")
    ap.add_argument("--es-heap", default="2g", help="Elasticsearch JVM heap (-Xms = -Xmx; default 2g)")
    ap.add_argument("--es-index", default="bench", help="the alias unioncat-es uses (default: bench)")
    ap.add_argument("--es-config", type=Path, default=None, metavar="TOML",
                    help="a unioncat --config file for unioncat-es (e.g. refresh = \"interval\"); "
                    "--es-url/--es-index are passed as well")
    ap.add_argument("--no-reindex", dest="reindex", action="store_false",
                    help="do not time `unioncat reindex` on the unioncat-es catalog")
    ap.add_argument("--scale", type=int, default=None, metavar="N",
                    help="scaling run: N records made by bench/make_million.py (LoC + distinct copies); "
                    "measures ingest, disk and sequential latency only")
    ap.add_argument("--scale-file", type=Path, default=None,
                    help="with --scale: the file to write (or reuse if it has N records); default: in the work dir")
    ap.add_argument("--zebra-variants", default="icu,default",
                    help="comma list of icu,default,icu-words (default: icu,default; icu is the fair one "
                    "for Japanese, see bench/zebra.py)")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--data", type=Path, default=None,
                    help="MARC file to use instead of the LoC file from bench/loc_data.py")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="work directory (default: a new temp dir, removed afterwards unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--load-only", action="store_true",
                    help="only load each system into --workdir (figures and the loaded marker kept for a later "
                         "--reuse run); no serving, no queries")
    ap.add_argument("--reuse", action="store_true",
                    help="with --workdir: serve the catalogs a --keep run loaded there (its "
                    "unioncat-sqlite/data, unioncat-es/data and zebra-<variant>/, each with loaded.json: this "
                    "script's and bench/z3950_bench.py's layout) instead of loading again; unioncat-es: the kept "
                    "Elasticsearch node is started from its directory and stopped by PID afterwards (directory "
                    "left), and not reindexed; with --scale the scaling run's phases on the kept catalogs")
    ap.add_argument("--es-node-dir", type=Path, default=None, metavar="DIR",
                    help="with --reuse: the kept Elasticsearch node directory of WORKDIR/unioncat-es (for a "
                    "catalog kept before --keep wrote WORKDIR/unioncat-es/loaded.json, which is then written "
                    "from it)")
    ap.add_argument("--unioncat", default=None, help="command for the unioncat CLI (default: unioncat)")
    ap.add_argument("--library", default="loc", help="library code for unioncat ingest (default: loc)")
    ap.add_argument("--seed", type=int, default=wl.DEFAULT_SEED)
    ap.add_argument("--concurrency", default="8,32", help="concurrent phases (default: 8,32)")
    ap.add_argument("--seq-requests", type=int, default=1000, help="max requests, sequential phase")
    ap.add_argument("--conc-requests", type=int, default=5000, help="max requests, each concurrent phase")
    ap.add_argument("--seconds", type=float, default=30, help="max seconds per load phase")
    ap.add_argument("--result-set-ttl", type=int, default=0, metavar="N",
                    help="resultSetTTL sent with every request to unioncat (default 0: every request runs "
                    "its search.  unioncat reuses a live result set of the same query, and the workload "
                    "repeats its 50 queries; Zebra never reuses one between SRU requests -- and YAZ answers "
                    "resultSetTTL with diagnostic 8, so it is not sent to Zebra).  -1: do not send it")
    ap.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip the wrk runs")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--load-timeout", type=float, default=3 * 3600, help="max seconds for ingest/index")
    ap.add_argument("--start-timeout", type=float, default=300, help="max seconds for a server to answer")
    ap.add_argument("--report", type=Path, default=None, metavar="JSON",
                    help="only print the tables of saved results (several files are merged)")
    ap.add_argument("--merge", type=Path, nargs="*", default=[], metavar="JSON",
                    help="with --report: further result files whose systems are added")
    a = ap.parse_args(argv)
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c.strip() and int(c) != 1]  # c1 = seq
    systems_wanted = set((a.systems or ("sqlite,es" if a.scale else "sqlite,es,zebra")).split(","))
    systems_wanted = {x.strip() for x in systems_wanted if x.strip()}
    if systems_wanted - {"sqlite", "es", "zebra"}:
        ap.error(f"unknown system(s) in --systems: {sorted(systems_wanted - {'sqlite', 'es', 'zebra'})}")
    if a.skip_zebra:
        systems_wanted.discard("zebra")
    if a.skip_es or a.skip_unioncat:
        systems_wanted.discard("es")
    if a.skip_unioncat:
        systems_wanted.discard("sqlite")
    if a.scale and a.zebra_variants == "icu,default":
        a.zebra_variants = "icu"
    a.extra = {"resultSetTTL": str(a.result_set_ttl)} if a.result_set_ttl >= 0 else None
    if a.report:
        results = _legacy_names(json.loads(a.report.read_text()))
        for extra in a.merge:
            other = _legacy_names(json.loads(extra.read_text()))
            if other.get("workload") != results.get("workload"):
                print(f"warning: {extra} has a different workload; hit counts are not comparable",
                      file=sys.stderr)
            for n, r in other.get("systems", {}).items():
                results["systems"].setdefault(n, r)
        print(report(results, a.concurrency))
        return 0
    if a.reuse and a.workdir is None:
        ap.error("--reuse needs --workdir (the kept work dir)")
    if a.load_only and (a.workdir is None or a.reuse):
        ap.error("--load-only needs --workdir (where the catalogs are kept), and no --reuse")
    es_problem = check_es_reuse(a, systems_wanted)
    if es_problem:
        ap.error(es_problem)
    variants = [v.strip() for v in a.zebra_variants.split(",") if v.strip()]
    for v in variants:
        if v not in zebra.VARIANTS:
            ap.error(f"unknown Zebra variant {v!r}")

    signal.signal(signal.SIGTERM, _sigterm)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="unioncat-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv,
                              "request": {"version": "1.2", "maximumRecords": 10, "recordSchema": "marcxml",
                                          "unioncat_extra": a.extra},
                              "machine": machine_info(), "workdir": str(workdir)},
                     "systems": {}}

    def save():
        write_json(a.out, results)

    rc = 0
    try:
        t0 = time.perf_counter()
        full = get_data(a)
        results["data"] = {"file": str(full), "fetch_s": round(time.perf_counter() - t0, 2)}
        path = full
        if a.scale:
            path = a.scale_file or workdir / f"loc-{a.scale}.mrc"
            have = _count_records(path) if path.exists() else None
            if have != a.scale:
                import make_million
                t0 = time.perf_counter()
                print(f"writing {a.scale} records to {path} (bench/make_million.py)", flush=True)
                results["data"]["make_million"] = make_million.make(full, path, a.scale)
                results["data"]["make_million"]["seconds"] = round(time.perf_counter() - t0, 1)
            results["data"]["scale_file"] = str(path)
            results["data"]["records"] = a.scale
            results["data"]["file_mb"] = round(path.stat().st_size / 2**20, 1)
            print(f"data: {path} ({a.scale} records)", flush=True)
            # the same 50 queries as the run on the LoC file, so the figures compare
            t0 = time.perf_counter()
            queries = wl.build_workload(full, seed=a.seed, ja_source=full)
            results["data"]["workload_from"] = str(full)
        else:
            if a.records:
                path = workdir / f"first{a.records}.mrc"
                wl.write_subset(full, path, a.records)
                results["data"]["subset"] = str(path)
            t0 = time.perf_counter()
            raw = wl.split_records(path)
            results["data"]["records"] = len(raw)
            print(f"data: {path} ({len(raw)} records)", flush=True)
            queries = wl.build_workload(path, seed=a.seed, raw=raw, ja_source=full)
            del raw
        results["workload"] = [asdict(q) for q in queries]
        results["data"]["workload_s"] = round(time.perf_counter() - t0, 2)
        print(f"workload: {len(queries)} queries (seed {a.seed})", flush=True)
        cqls = [q.cql for q in queries]
        results["meta"]["systems"] = sorted(systems_wanted)
        results["meta"]["scale"] = bool(a.scale)

        systems = []
        if systems_wanted & {"sqlite", "es"}:
            cmd, env = unioncat_command(a.unioncat)
            if "sqlite" in systems_wanted:
                systems.append(UnioncatSystem(workdir / "unioncat-sqlite", cmd, a.library, env, a.start_timeout))
            if "es" in systems_wanted:
                # a kept node (--keep, --load-only) or a reused one is never removed; a reused
                # catalog is not reindexed (that would change what was kept)
                systems.append(EsSystem(workdir / "unioncat-es", cmd, a.library, env, a.start_timeout,
                                        heap=a.es_heap, index=a.es_index, config=a.es_config,
                                        keep=a.keep or a.load_only or a.reuse,
                                        reindex=a.reindex and not a.reuse))
        if "zebra" in systems_wanted:
            zebra.check_installed()
            for v in variants:
                systems.append(ZebraSystem(workdir / f"zebra-{v}", v, a.start_timeout))

        if a.systems:  # measured in the order --systems names them (e.g. es,sqlite: the ES side first)
            order = [x.strip() for x in a.systems.split(",") if x.strip()]
            systems.sort(key=lambda s: order.index(_system_kind(s.name)))
        for s in systems:
            res = results["systems"].setdefault(s.name, {})
            res["code_before"] = code_state()
            try:
                measure(s, path, cqls, a, res)
            except SystemFailed as e:
                res["load"] = e.info
                res["error"] = f"load failed (exit {e.info.get('returncode')})"
                print(f"!! {s.name}: {res['error']}\n{e.info.get('error', '')[-1500:]}", file=sys.stderr)
                rc = 1
            except (RuntimeError, TimeoutError, OSError) as e:
                res["error"] = f"{type(e).__name__}: {e}"
                print(f"!! {s.name}: {res['error']}", file=sys.stderr)
                rc = 1
            finally:
                s.close()  # the Elasticsearch node: stopped by PID, also on Ctrl-C/SIGTERM
                res["code_after"] = code_state()
                if s.name.startswith("unioncat") and res["code_after"] != res["code_before"]:
                    res.setdefault("problems", []).append(
                        f"the unioncat code changed during the measurement: {res['code_before']} -> "
                        f"{res['code_after']} (figures mix two versions)")
            save()

        results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        print()
        print(report(results, a.concurrency))
        save()
        print(f"\nresults: {a.out}")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        rc = 130
    finally:
        finish(save, a, workdir)
    return rc


def check_es_reuse(a, systems_wanted: set[str]) -> str | None:
    """The argument problem of --reuse/--es-node-dir for unioncat-es, or None.  With
    --reuse (and es) the kept catalog is checked and, given --es-node-dir, its marker
    written (bench/es_kept.py), before anything starts."""
    if a.es_node_dir is not None and not a.reuse:
        return "--es-node-dir goes with --reuse (a --keep run writes the marker itself)"
    if a.es_node_dir is not None and "es" not in systems_wanted:
        return "--es-node-dir is for unioncat-es: add es to --systems"
    if not a.reuse or "es" not in systems_wanted:
        return None
    try:
        es_kept.prepare_reuse(a.workdir / "unioncat-es", a.es_node_dir, index=a.es_index)
    except (es_kept.KeptCatalogError, OSError) as e:
        return str(e)
    return None


def write_json(path: Path, results: dict) -> None:
    """Write the results atomically (a half-written file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str))
    os.replace(tmp, path)


def finish(save, a, workdir: Path) -> None:
    """End of a benchmark run, also after a failure: stop every process started,
    write the results, remove the work dir unless kept (--keep / --workdir)."""
    STARTED.stop_all()
    try:
        save()
    except OSError:
        pass
    if not a.keep and a.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
