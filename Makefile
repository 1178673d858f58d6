# Two entry points for a fresh machine (see README.md):
#   make demo   set up, load sample records of three libraries and the sample circulation data
#               (logins printed), serve SRU and the circulation API on 127.0.0.1:8210, Z39.50 on 2100
#   make test   set up (Debian packages + venv), run the linter and the type checker (make lint),
#               then the test suite, which also builds the wheel,
#               installs it into a fresh venv and runs it (tests/test_install.py), and runs every
#               example of README.md and docs/ (tests/test_readme_examples.py)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup sysdeps sysdeps-bench sysdeps-browser sysdeps-es sysdeps-pg lint test test-slow demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,fast]'
	touch $@

# The real peers the tests drive: yaz (yaz-client, zoomsh, yaz-ztest) and Zebra (zebrasrv,
# zebraidx), from Debian; checked afterwards so that no peer test can be skipped for lack of them
PEERS := yaz-client zoomsh yaz-ztest zebrasrv zebraidx
sysdeps:
	@for c in $(PEERS); do command -v $$c >/dev/null || missing=1; done; \
	 [ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq yaz idzebra-2.0; }
	@for c in $(PEERS); do command -v $$c >/dev/null || { echo "missing $$c after install" >&2; exit 1; }; done

# Debian's Chromium for the browser tests (tests/test_web_browser.py, driven by Playwright; Playwright's own
# browser download is not used) and a Japanese font for its screenshots; checked afterwards so that no
# browser test can be skipped for lack of them. axe-core comes from the npm registry (the machine's npm).
sysdeps-browser:
	@{ [ -x /usr/bin/chromium ] && fc-list :lang=ja | grep -q .; } || \
	 { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; }
	@[ -x /usr/bin/chromium ] || { echo "missing /usr/bin/chromium after install" >&2; exit 1; }
	@command -v npm >/dev/null || { echo "missing npm (Node.js) for axe-core" >&2; exit 1; }

# a JDK >= 17 for the Elasticsearch test node (Debian's openjdk-17-jre-headless if there is none)
sysdeps-es:
	@python3 tools/elasticsearch_node.py java >/dev/null

# PostgreSQL server binaries for the test server (Debian's postgresql if there are none)
sysdeps-pg:
	@python3 tools/postgres_node.py install >/dev/null

sysdeps-bench: sysdeps
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

# One Elasticsearch node for the whole run (tools/elasticsearch_node.py: fetched from Maven
# Central once, cached, passed to the tests as UNIONCAT_ES_URL, stopped by PID afterwards)
ES_RUN := $(PY) tools/elasticsearch_node.py run --
# and one PostgreSQL server (tools/postgres_node.py: 127.0.0.1 only, a fresh temporary
# cluster, passed to the tests as UNIONCAT_PG_URL, stopped by PID afterwards)
PG_RUN := $(PY) tools/postgres_node.py run --

# ruff on every Python file (rules in pyproject.toml [tool.ruff]) and mypy on the protocol
# cores, lifecycle/, indexers/ and search/ ([tool.mypy]); a finding fails `make test`
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The tests run in UTC, a zone that is not the seed systems' (Asia/Tokyo): the service
# must compute its days and deadlines in its profiles' zone whatever the host's is.
test: export TZ = UTC
test: sysdeps sysdeps-browser sysdeps-es sysdeps-pg setup lint
	$(ES_RUN) $(PG_RUN) $(VENV)/bin/pytest -q

# end-to-end tests on the 250,000 Library of Congress records (downloads pymarc 5.4.0's sdist once)
test-slow: export TZ = UTC
test-slow: sysdeps sysdeps-browser sysdeps-es sysdeps-pg setup
	$(ES_RUN) $(PG_RUN) $(VENV)/bin/pytest -q -m slow

demo: setup
	$(VENV)/bin/unioncat demo --data-dir demo-data

bench: sysdeps-bench sysdeps-es setup
	$(PY) bench/run_bench.py
	$(PY) bench/z3950_bench.py

clean:
	rm -rf $(VENV) demo-data build dist *.egg-info .ruff_cache .mypy_cache
