"""A kept unioncat-es catalog for ``bench/run_bench.py --keep`` / ``--reuse``.

A unioncat-es catalog is two directories: the unioncat data dir (the record store,
``<workdir>/unioncat-es/data``) and the Elasticsearch node directory
(``tools/elasticsearch_node.py``: ``config/``, ``data/``, ``node.json`` ...), which
the bench makes with ``tempfile.mkdtemp`` outside the work dir (the node runs as an
unprivileged user when the bench runs as root, and must be able to enter it).

A ``--keep`` run keeps both and writes ``<workdir>/unioncat-es/loaded.json``, the
load's figures with ``es_node.dir`` naming the node directory.  ``--reuse`` reads
it, starts the node again from that directory, points the gateway at it with
``--es-url`` (which overrides the URL the ingest remembered in the data dir's meta:
the data dir is not written) and stops the node by its PID afterwards, leaving the
directory.  A catalog kept before the marker existed is named with
``--es-node-dir DIR``; the marker is then written from it (without load figures).

Pure functions and small file operations only; run_bench.py does the processes.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

MARKER = "loaded.json"
NO_FIGURES = ("written by --es-node-dir for a catalog kept before the marker existed: "
              "no load figures")


class KeptCatalogError(ValueError):
    """A kept unioncat-es catalog is missing, incomplete or its marker is unreadable."""


def marker_path(root: Path) -> Path:
    """The marker of the unioncat-es system whose files are under root (<workdir>/unioncat-es)."""
    return Path(root) / MARKER


def check_node_dir(node_dir: Path) -> Path:
    """node_dir as an absolute path if it holds a node made by tools/elasticsearch_node.py
    (node.json and data/), else KeptCatalogError."""
    d = Path(node_dir).absolute()
    if not d.is_dir():
        raise KeptCatalogError(f"Elasticsearch node directory {d}: no such directory")
    missing = [n for n in ("node.json", "data") if not (d / n).exists()]
    if missing:
        raise KeptCatalogError(f"{d} is not a node directory of tools/elasticsearch_node.py "
                               f"(no {' and no '.join(missing)})")
    return d


def check_data_dir(data_dir: Path) -> None:
    if not (Path(data_dir) / "catalog.sqlite").is_file():
        raise KeptCatalogError(f"no unioncat record store in {data_dir} (catalog.sqlite)")


def read_marker(path: Path) -> dict:
    """The marker's load figures; KeptCatalogError if it is not a JSON object naming a node dir."""
    try:
        m = json.loads(Path(path).read_text())
    except OSError as e:
        raise KeptCatalogError(f"{path}: {e.strerror or e}") from None
    except ValueError as e:
        raise KeptCatalogError(f"{path}: not JSON ({e})") from None
    if not isinstance(m, dict) or not isinstance(m.get("es_node"), dict) or not m["es_node"].get("dir"):
        raise KeptCatalogError(f"{path}: no es_node.dir (the Elasticsearch node directory)")
    return m


def node_dir_of(marker: dict) -> Path:
    return Path(marker["es_node"]["dir"])


def with_node_dir(old: dict | None, node_dir: Path, *, index: str) -> dict:
    """A marker naming node_dir: old's load figures (if any) with es_node.dir replaced."""
    m = dict(old or {})
    if not old:
        m["note"] = NO_FIGURES
    es_node = dict(m.get("es_node") or {})
    es_node["dir"] = str(Path(node_dir).absolute())
    m["es_node"] = es_node
    m.setdefault("es_index_alias", index)
    return m


def write_marker(path: Path, marker: dict) -> None:
    """Write the marker atomically (a half-written file never replaces a good one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(marker, ensure_ascii=False, default=str))
    os.replace(tmp, path)


def prepare_reuse(root: Path, node_dir: Path | None, *, index: str) -> Path:
    """For --reuse of the unioncat-es catalog under root: check it and return its node
    directory.  With node_dir (--es-node-dir) the marker is written (or its es_node.dir
    replaced) from it; without, the marker must exist.  KeptCatalogError says what is missing."""
    root = Path(root)
    check_data_dir(root / "data")
    path = marker_path(root)
    if node_dir is not None:
        d = check_node_dir(node_dir)
        old = read_marker(path) if path.exists() else None
        if old is None or node_dir_of(old).absolute() != d:
            write_marker(path, with_node_dir(old, d, index=index))
        return d
    if not path.exists():
        raise KeptCatalogError(f"--reuse: no {path} (written by a --keep run); for a catalog kept "
                               "without it, name the node directory with --es-node-dir DIR")
    return check_node_dir(node_dir_of(read_marker(path)))


def _port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (a port in TIME_WAIT after the node's last stop is
    free for it: Elasticsearch binds with SO_REUSEADDR too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kept_ports(node_dir: Path) -> tuple[int, int]:
    """(http, transport) ports to start the kept node on: the ones in its node.json when
    both are free (the usual case: the same URL as before), else new free ones (the
    node tool then writes them to node.json; the gateway gets the URL by --es-url)."""
    try:
        saved = json.loads((Path(node_dir) / "node.json").read_text())
        http, transport = int(saved["http_port"]), int(saved["transport_port"])
    except (OSError, ValueError, KeyError, TypeError):
        http = transport = 0
    if http and transport and http != transport and _port_free(http) and _port_free(transport):
        return http, transport
    http = _free_port()
    while (transport := _free_port()) == http:
        pass
    return http, transport
