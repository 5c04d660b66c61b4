# attestation-ledger. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)

.DEFAULT_GOAL := help
.PHONY: help install test test-db lint format bench faketime wrk chromium tpm run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-virtualenv -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv with the pinned dependencies and the project (editable)

test: $(STAMP) chromium tpm ## run the whole test suite (exit code 5, "no tests ran", fails too)
	$(PY) -m pytest

test-db: $(STAMP) chromium ## run only the database tests (TEST_DATABASE_URL selects the server)
	$(PY) -m pytest -m db

lint: $(STAMP) ## ruff (format and lint) and mypy strict
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

PEERS_VENV := bench/.peers-venv

$(PEERS_VENV)/.installed: bench/requirements-peers.txt
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-peers.txt
	@touch $@

faketime: ## install libfaketime (Debian package), which runs the peer verifiers at a document's time
	@ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get install -y -qq faketime >/dev/null; } || \
	  echo "libfaketime missing and not installable here: peers will be skipped"

wrk: ## install wrk (Debian package), the C load generator of the service benchmark
	@command -v wrk >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk missing and not installable here: the service benchmark uses Python threads"

chromium: ## install Chromium (Debian package), the browser of the portal tests
	@command -v chromium >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    { apt-get install -y -qq chromium >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }; }; } || \
	  echo "chromium missing and not installable here: the portal's browser tests will fail"

tpm: ## install swtpm and tpm2-tools (Debian packages), the software TPM of the TPM attester's tests
	@{ command -v swtpm && command -v swtpm_setup && command -v tpm2_quote; } >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    { apt-get install -y -qq swtpm swtpm-tools tpm2-tools >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && apt-get install -y -qq swtpm swtpm-tools tpm2-tools >/dev/null; }; }; } || \
	  echo "swtpm or tpm2-tools missing and not installable here: the TPM attester's tests will fail"

# `make bench snp nvidia`: the words after `bench` name benchmarks (as BENCH="snp nvidia"
# does); those that are not targets here do nothing as targets.
ifeq (bench,$(firstword $(MAKECMDGOALS)))
BENCH ?= $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
BENCH_ONLY := $(filter-out help install test test-db lint format bench faketime wrk chromium tpm run clean,$(BENCH))
ifneq ($(strip $(BENCH_ONLY)),)
$(eval $(BENCH_ONLY):;@:)
endif
endif

bench: $(STAMP) $(PEERS_VENV)/.installed faketime wrk ## run the benchmarks in bench/ (`make bench snp`; prints tables; never fails on speed)
	$(PY) -m bench $(BENCH)

run: $(STAMP) tpm ## set up a demo ledger, start the service on 127.0.0.1:8000, feed it (Ctrl-C stops)
	$(VENV)/bin/attest-ledger demo

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
