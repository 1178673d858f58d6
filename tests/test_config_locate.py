"""config.locate(): the one function that finds configuration and the code's data
files, and $UNIONCAT_CONFIG_DIR honoured by every loader (mapping, indexes, Bib-1,
libraries, Elasticsearch, profiles, notice templates)."""
from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest

import config
from config import locate

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("gateway", "sru", "indexers", "connectors", "z3950", "lifecycle", "circulation", "config")


def test_configuration_and_code_data_are_found_in_the_source_tree(monkeypatch):
    monkeypatch.delenv(config.ENV, raising=False)
    assert locate("indexes.toml") == ROOT / "config" / "indexes.toml"
    assert locate("profiles") == ROOT / "config" / "profiles"
    assert locate("samples/patrons.csv") == ROOT / "config" / "samples" / "patrons.csv"
    assert locate("notices/hold_ready.ja.txt").read_text(encoding="utf-8").startswith("Subject:")
    assert locate("sru/schemas/sru-2.0.xsd") == ROOT / "sru" / "schemas" / "sru-2.0.xsd"
    assert locate("gateway/openapi/circulation.json") == ROOT / "gateway" / "openapi" / "circulation.json"
    assert locate("indexers/data/kanji_variants.tsv") == ROOT / "indexers" / "data" / "kanji_variants.tsv"


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../pyproject.toml", "profiles/../../x"])
def test_a_name_that_is_not_a_plain_relative_path_is_refused(bad):
    with pytest.raises(ValueError):
        locate(bad)


def test_a_missing_file_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        locate("profiles/atlantis.toml")
    assert str(tmp_path) in str(e.value) and str(config.SHIPPED) in str(e.value)
    with pytest.raises(FileNotFoundError):
        locate("sru/schemas/nothing.xsd")


def test_the_deployment_directory_comes_first_and_falls_back_to_the_shipped_files(tmp_path, monkeypatch):
    (tmp_path / "libraries.toml").write_text('[library.loc]\nname = "Library of Congress"\n', encoding="utf-8")
    other = tmp_path / "second"
    (other / "profiles").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "profiles" / "komae.toml", other / "profiles" / "komae.toml")
    monkeypatch.setenv(config.ENV, os.pathsep.join([str(tmp_path), str(other)]))
    assert locate("libraries.toml") == tmp_path / "libraries.toml"
    assert locate("profiles") == other / "profiles"                 # a directory is taken whole
    assert locate("indexes.toml") == ROOT / "config" / "indexes.toml"
    # the code's own data is never taken from a deployment's directory
    (tmp_path / "sru" / "schemas").mkdir(parents=True)
    (tmp_path / "sru" / "schemas" / "sru-2.0.xsd").write_text("<nonsense/>")
    assert locate("sru/schemas/sru-2.0.xsd") == ROOT / "sru" / "schemas" / "sru-2.0.xsd"


def test_every_loader_reads_the_deployment_directory(tmp_path, monkeypatch):
    """Profiles and notice templates used to ignore $UNIONCAT_CONFIG_DIR."""
    from circulation.notices import Templates
    from indexers.holdings import load_libraries
    from lifecycle.profiles import load_all, load_profile

    (tmp_path / "profiles").mkdir()
    text = (ROOT / "config" / "profiles" / "komae.toml").read_text(encoding="utf-8")
    assert 'name = "狛江市立図書館"' in text
    (tmp_path / "profiles" / "komae.toml").write_text(text.replace('name = "狛江市立図書館"',
                                                                   'name = "狛江市図書館 (試験)"', 1),
                                                      encoding="utf-8")
    notices = tmp_path / "notices"
    shutil.copytree(ROOT / "config" / "notices", notices)
    (notices / "test_mail.en.txt").write_text("Subject: deployment's own\n\nHello {{ addressee }}\n")
    (tmp_path / "libraries.toml").write_text('[library.loc]\nname = "Library of Congress"\n', encoding="utf-8")
    monkeypatch.setenv(config.ENV, str(tmp_path))

    assert set(load_all()) == {"komae"}
    assert load_profile("komae").name == "狛江市図書館 (試験)"
    assert Templates().render("test_mail", "en", {"addressee": "A"}).subject == "deployment's own"
    assert load_libraries().names() == {"loc": "Library of Congress"}


def test_the_university_partners_are_configuration():
    """They come from the profiles' [partners.*], not from a constant in the code."""
    import gateway.cli as cli
    from lifecycle.profiles import load_profile

    assert not hasattr(cli, "UNIVERSITY_PARTNERS")
    assert set(load_profile("hiroshima").partners) == {"hiroshima-u", "hiroshima-cu"}


def _python_files():
    for room in ROOMS:
        yield from sorted((ROOT / room).rglob("*.py"))


def test_no_module_but_config_computes_a_path_to_a_data_file_from_its_own_location():
    """Every data file is found by config.locate (so that it is found the same way in a
    checkout, an editable install and a wheel): no other module builds a path from
    ``__file__`` or asks importlib.resources."""
    offenders = []
    for path in _python_files():
        if path == ROOT / "config" / "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "__file__":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: __file__")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n == "importlib.resources" or n.startswith("importlib.resources.") for n in names) or \
                        (isinstance(node, ast.ImportFrom) and node.module == "importlib"
                         and any(a.name == "resources" for a in node.names)):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: importlib.resources")
    assert offenders == []


def test_every_data_file_in_the_package_directories_is_package_data():
    """What the wheel ships (pyproject's package-data) covers every file under config/
    and the code's data directories, so a file added there cannot be left out."""
    import fnmatch
    import tomllib

    from setuptools import find_packages

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    shipped = find_packages(str(ROOT), include=setup["packages"]["find"]["include"])
    assert "config" in shipped
    # every package of the rooms (a directory with __init__.py) ships
    rooms = {p for p in find_packages(str(ROOT)) if not p.startswith(("tests", "bench", "tools"))}
    assert rooms <= set(shipped), rooms - set(shipped)
    globs = setup["package-data"]
    missing = []
    dirs = {"config": ROOT / "config", **{pkg: ROOT / pkg / sub for pkg, sub in config.CODE_DATA.items()}}
    for pkg, top in dirs.items():
        for f in sorted(top.rglob("*")):
            if f.is_dir() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
                continue
            rel = f.relative_to(ROOT / pkg).as_posix()
            if not any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs.get(pkg, [])):
                missing.append(f"{pkg}/{rel}")
    assert missing == []
