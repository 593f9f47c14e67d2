# The two commands: `make run` and `make test`. Everything they need is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := tests/clients/node_modules/.installed

.PHONY: run test lint typecheck check bench clean clamd postgresql redis nginx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NODE_STAMP): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# ClamAV's daemon for the virus-scanner tests: installed once from Debian when missing. The tests
# start their own private clamd (chunkd.testing.clamd); the Debian services are switched off.
clamd:
	@command -v clamd >/dev/null || test -x /usr/sbin/clamd || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends clamav-daemon && \
		{ ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now \
			clamav-daemon.socket clamav-daemon.service clamav-freshclam.service \
			>/dev/null 2>&1 || true; }; }

# PostgreSQL's server binaries for the PostgreSQL catalog and locker tests: installed once from
# Debian when missing. The tests run their own private server (chunkd.testing.postgres, initdb into
# a temp dir); the Debian service is switched off where systemd runs it.
postgresql:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends postgresql && \
		{ ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now \
			postgresql.service >/dev/null 2>&1 || true; }; }

# Redis for the cross-instance event tests: installed once from Debian when missing; the tests
# run their own private redis-server on a free loopback port.
redis:
	@command -v redis-server >/dev/null || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends redis-server && \
		{ ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now \
			redis-server.service >/dev/null 2>&1 || true; }; }

# nginx for the multi-instance test (round-robin in front of three chunkd processes): installed
# once from Debian when missing; the test runs its own private nginx.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends nginx && \
		{ ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now \
			nginx.service >/dev/null 2>&1 || true; }; }

run: $(STAMP)
	$(BIN)/chunkd serve --host 127.0.0.1 --port 8080 --data-dir ./chunkd-data

test: $(STAMP) $(NODE_STAMP) clamd postgresql redis nginx
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The benchmark's peers: @tus/server (npm ci, pinned in bench/peers), nginx (Debian), the extra.
BENCH_NODE_STAMP := bench/peers/node_modules/.installed
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(BENCH_NODE_STAMP): bench/peers/package.json bench/peers/package-lock.json
	cd bench/peers && npm ci --no-audit --no-fund --loglevel=error
	touch $(BENCH_NODE_STAMP)

bench: $(STAMP) $(BENCH_NODE_STAMP)
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y nginx; }
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/tus_bench.py --out docs/benchmarks.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tests/clients/node_modules chunkd-data
