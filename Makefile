# Two entry points for a fresh machine (see README.md):
#   make demo   set up, load sample records of three libraries, serve SRU on 127.0.0.1:8210
#   make test   set up (Debian packages + venv) and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup sysdeps test test-slow demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,fast]'
	touch $@

# yaz-client (the real SRU client the peer tests drive); zebra + wrk for the benchmark
sysdeps:
	@command -v yaz-client >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq yaz; }

sysdeps-bench: sysdeps
	@command -v zebraidx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq idzebra-2.0 wrk; }

test: sysdeps setup
	$(VENV)/bin/pytest -q

# end-to-end tests on the 250,000 Library of Congress records (downloads pymarc 5.4.0's sdist once)
test-slow: sysdeps setup
	$(VENV)/bin/pytest -q -m slow

demo: setup
	$(VENV)/bin/unioncat demo --data-dir demo-data

bench: sysdeps-bench setup
	$(PY) bench/run_bench.py

clean:
	rm -rf $(VENV) demo-data
