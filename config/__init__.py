"""Configuration is data: the files beside this module, shipped in the wheel as the
package ``config``, and found by one function, :func:`locate`.

What is here: the MARC 21 field mapping (``marc21_fields.toml``), CQL indexes
(``indexes.toml``), Bib-1 (``bib1.toml``), member libraries (``libraries.toml``),
Elasticsearch settings (``elasticsearch.toml``, ``elasticsearch-index.json``), the
policy profiles of the city systems with their university partners
(``profiles/<system>.toml``, ``[partners.<code>]``), notice templates (``notices/``)
and sample CSVs (``samples/``).

:func:`locate` also finds the data files that belong to the code rather than to a
deployment (:data:`CODE_DATA`: the SRU and record XSDs in ``sru/schemas``, the OpenAPI
document in ``gateway/openapi``, the kanji table in ``indexers/data``); those are
shipped inside their package and never replaced by configuration.

A deployment puts its own configuration in a directory named by the environment
variable ``UNIONCAT_CONFIG_DIR`` (several directories separated by ``os.pathsep``,
searched in order). Each name is looked up there first and then in the shipped
configuration, so a deployment may replace only ``libraries.toml`` or only the
``profiles/`` directory (a directory is taken whole: a ``profiles/`` of its own hides
every shipped profile).

This module imports nothing of the project; every room may import it.
"""
from __future__ import annotations

import os
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path, PurePosixPath

ENV = "UNIONCAT_CONFIG_DIR"
SHIPPED = Path(__file__).resolve().parent

# data that belongs to the code, shipped inside its package: package -> data directory
CODE_DATA = {"sru": "schemas", "gateway": "openapi", "indexers": "data"}


def search_path() -> list[Path]:
    """Where configuration is looked up, in order: $UNIONCAT_CONFIG_DIR's directories,
    then the shipped configuration."""
    env = os.environ.get(ENV, "")
    return [Path(p) for p in env.split(os.pathsep) if p] + [SHIPPED]


def locate(name: str | os.PathLike) -> Path:
    """The file or directory ``name`` (a relative path with ``/``):

    * ``"sru/schemas/..."``, ``"gateway/openapi/..."``, ``"indexers/data/..."``: the
      code's own data, in the installed package;
    * anything else, configuration: the first of :func:`search_path` that has it, e.g.
      ``locate("indexes.toml")``, ``locate("profiles")``, ``locate("samples/patrons.csv")``.

    Raises FileNotFoundError (saying where it looked) when there is no such file,
    ValueError for a name that is not a plain relative path."""
    pure = PurePosixPath(os.fspath(name))
    parts = pure.parts
    if not parts or pure.is_absolute() or any(p in ("..", ".") for p in parts):
        raise ValueError(f"not a data file name: {os.fspath(name)!r}")
    if len(parts) >= 2 and CODE_DATA.get(parts[0]) == parts[1]:
        places = [_package_dir(parts[0])]
        rel = parts[1:]
    else:
        places = search_path()
        rel = parts
    for base in places:
        path = base.joinpath(*rel)
        if path.exists():
            return path
    raise FileNotFoundError(f"{pure}: no such data file (looked in {', '.join(str(p) for p in places)})")


@lru_cache(maxsize=None)
def _package_dir(package: str) -> Path:
    """The directory of an installed top-level package, without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0]).resolve()
