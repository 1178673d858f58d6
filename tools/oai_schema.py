#!/usr/bin/env python3
"""The official OAI-PMH 2.0 response schema (OAI-PMH.xsd), from a package registry.

PyPI's ``pyoai`` ships the schema in its source distribution (src/oaipmh/tests/
OAI-PMH.xsd) but does not install it.  ``path()`` fetches that sdist once with pip
(``pip download --no-deps --no-binary``), checks its sha256, and extracts the one
file into ``build/standards/`` (not part of the project; ``make clean`` removes
it).  The tests validate our provider's responses against it.

    python tools/oai_schema.py        # prints the path
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "pyoai==2.5.0"
SHA256 = "029521e1f6a819511feb4299a6181b5c312e8a71f7cddc4547e27001e7552be0"
MEMBER = "pyoai-2.5.0/src/oaipmh/tests/OAI-PMH.xsd"
CACHE = Path(__file__).resolve().parents[1] / "build" / "standards"


class Unavailable(Exception):
    pass


def path() -> Path:
    out = CACHE / "OAI-PMH.xsd"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            "-d", tmp, SDIST], capture_output=True, text=True, timeout=300)
        files = list(Path(tmp).glob("pyoai-*.tar.gz"))
        if r.returncode != 0 or not files:
            raise Unavailable(f"pip download {SDIST} failed: {r.stderr.strip()[-500:]}")
        data = files[0].read_bytes()
        if hashlib.sha256(data).hexdigest() != SHA256:
            raise Unavailable(f"{files[0].name}: sha256 differs from the pinned one")
        with tarfile.open(files[0]) as tf:
            member = tf.extractfile(MEMBER)
            if member is None:
                raise Unavailable(f"{MEMBER} is not in {files[0].name}")
            tmp_out = out.with_suffix(".tmp")
            tmp_out.write_bytes(member.read())
            tmp_out.replace(out)
    return out


if __name__ == "__main__":
    print(path())
