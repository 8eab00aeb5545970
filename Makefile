# Warren — build, test, demo, bench.
# `make demo` and `make test` do all set-up themselves (as root on Debian).

SHELL := /bin/bash
NODE ?= node
APT_PACKAGES := gcc g++ make python3 libc6-dev libssl-dev pkg-config iproute2 nftables iptables conntrack \
	wireguard-go wireguard-tools iperf3 iputils-ping faketime tshark dnsutils procps psmisc \
	coturn stun-client miniupnpd-nftables miniupnpc natpmpc
NATIVE_LIB := native/build/libwarren_native.so
# Test files are listed when the recipe runs (after the build), never at parse time.
UNIT_TESTS = $$(ls dist/test/unit/*.test.js)
LAB_TESTS = $$(ls dist/test/lab/*.test.js)

.PHONY: all setup apt npm native build lint test test-unit demo bench clean

all: build

# --- set-up -------------------------------------------------------------
setup: apt npm native build

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

# better-sqlite3 is compiled from source (install scripts are off in .npmrc, and
# nothing may be downloaded but from the registries): node-gyp with the system compiler.
SQLITE_ADDON := node_modules/better-sqlite3/build/Release/better_sqlite3.node
$(SQLITE_ADDON): node_modules/.package-lock.json
	npm_config_build_from_source=true npm rebuild better-sqlite3 --ignore-scripts=false
	@test -f $@

npm: node_modules/.package-lock.json $(SQLITE_ADDON)

# --- native helpers (built from source with the system compiler) --------
$(NATIVE_LIB): $(wildcard native/*.c native/*.h)
	@mkdir -p native/build
	$(CC) -O2 -fPIC -shared -Wall -Wextra -o $@ native/*.c -lcrypto -lpthread

native: $(NATIVE_LIB)

# --- TypeScript ------------------------------------------------------------
build: npm
	rm -rf dist
	npx tsc -p tsconfig.json

lint: npm
	npx eslint src test

# --- tests -----------------------------------------------------------------
test: setup
	@if [ "$$(id -u)" != 0 ]; then echo "make test needs root (network namespaces, TUN)"; exit 1; fi
	$(NODE) dist/test/run-tests.js $(UNIT_TESTS) $(LAB_TESTS)

test-unit: build native
	$(NODE) dist/test/run-tests.js $(UNIT_TESTS)

demo: setup
	$(NODE) dist/test/demo/demo.js

bench: setup
	$(NODE) dist/test/bench/bench.js
	$(NODE) dist/test/bench/control-bench.js
	$(NODE) dist/test/bench/nat-bench.js
	$(NODE) dist/test/bench/footprint-bench.js

clean:
	rm -rf dist native/build
