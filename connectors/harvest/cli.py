"""The body of ``unioncat harvest`` (gateway/cli.py parses the command line)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from indexers.ingest import BackendMismatch, Busy, StorageError

from .config import ConfigError, load_sources
from .report import Progress, describe
from .runner import harvest


def run(data_dir: Path, config: Path, names: list[str], *, full: bool = False, quiet: bool = False,
        as_json: bool = False, es=None) -> int:
    """Exit status: 0 every source complete, 1 some failed or were interrupted,
    2 bad configuration or usage, 74 the data directory cannot be written."""
    try:
        sources = load_sources(config)
    except ConfigError as e:
        print(f"unioncat harvest: {e}", file=sys.stderr)
        return 2
    if not sources:
        print(f"unioncat harvest: no [harvest.<library>] sources in {config}", file=sys.stderr)
        return 2
    unknown = [n for n in names if n not in sources]
    if unknown:
        print(f"unioncat harvest: no source {unknown[0]!r} in {config} (there are: {', '.join(sources)})",
              file=sys.stderr)
        return 2
    status = 0
    for name in names or list(sources):
        progress = Progress(quiet or as_json)
        try:
            rep = harvest(data_dir, sources[name], full=full, progress=progress, es=es)
        except (BackendMismatch, Busy) as e:
            print(f"unioncat harvest: {e}", file=sys.stderr)
            return 2
        except StorageError as e:
            print(f"unioncat harvest: {e}", file=sys.stderr)
            return 74
        except KeyboardInterrupt:
            progress.close()
            print(f"unioncat harvest: interrupted; `unioncat harvest {name}` resumes it", file=sys.stderr)
            return 130
        finally:
            progress.close()
        print(json.dumps(rep.as_dict(), ensure_ascii=False) if as_json else describe(rep), flush=True)
        if rep.outcome == "interrupted":
            return 130
        if rep.outcome != "complete":
            status = 1
    return status
