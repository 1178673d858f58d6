"""Shared fixtures."""
from __future__ import annotations

import pytest

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from live_server import Server


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The demo catalog (three libraries, both 880 conventions) served by the real
    aiohttp application on a loopback port."""
    d = tmp_path_factory.mktemp("demo")
    for lib, path in write_demo_files(d / "in").items():
        ingest(d, lib, [path], quiet=True)
    s = Server(d)
    yield s
    s.stop()
