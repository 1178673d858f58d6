# Two entry points for a fresh machine (see README.md):
#   make demo   set up, load sample records of three libraries, serve SRU on 127.0.0.1:8210
#   make test   set up (Debian packages + venv) and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup sysdeps sysdeps-bench sysdeps-es test test-slow demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,fast]'
	touch $@

# yaz-client (the real SRU client the peer tests drive); zebra + wrk for the benchmark
sysdeps:
	@command -v yaz-client >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq yaz; }

# a JDK >= 17 for the Elasticsearch test node (Debian's openjdk-17-jre-headless if there is none)
sysdeps-es:
	@python3 tools/elasticsearch_node.py java >/dev/null

sysdeps-bench: sysdeps
	@command -v zebraidx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq idzebra-2.0 wrk; }

# One Elasticsearch node for the whole run (tools/elasticsearch_node.py: fetched from Maven
# Central once, cached, passed to the tests as UNIONCAT_ES_URL, stopped by PID afterwards)
ES_RUN := $(PY) tools/elasticsearch_node.py run --

test: sysdeps sysdeps-es setup
	$(ES_RUN) $(VENV)/bin/pytest -q

# end-to-end tests on the 250,000 Library of Congress records (downloads pymarc 5.4.0's sdist once)
test-slow: sysdeps sysdeps-es setup
	$(ES_RUN) $(VENV)/bin/pytest -q -m slow

demo: setup
	$(VENV)/bin/unioncat demo --data-dir demo-data

bench: sysdeps-bench sysdeps-es setup
	$(PY) bench/run_bench.py

clean:
	rm -rf $(VENV) demo-data
