"""Loopback checks shared by the server-tool tests (tests/test_postgres_node.py,
tests/test_elasticsearch_node.py)."""
from __future__ import annotations

import socket
import urllib.parse


def url_port(url: str) -> int:
    return urllib.parse.urlsplit(url).port


def refuses(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to host:port is refused (nothing listens there)."""
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr
