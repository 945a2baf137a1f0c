# greenchat — everyday commands. `make serve` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve join test test-deps screenshot lint bench-fanout bench loadtest clean

# Create or refresh the virtualenv whenever pyproject.toml changes.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,loadtest,bench]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/greenchat-serve $(ARGS)

# The terminal client, joined to #lobby on the server `make serve` started.
join: $(STAMP)
	$(BIN)/greenchat-join $(ARGS)

# Real programs the tests drive, as "command:debian-package": irssi and weechat in tmux
# (tests/e2e/test_real_clients.py), a headless Chromium (tests/e2e/test_browser.py) and
# a redis-server for the Redis store (tests/contract, tests/redis_server.py).
CLIENT_DEPS := irssi:irssi weechat-headless:weechat-headless tmux:tmux \
	chromium:chromium chromedriver:chromium-driver redis-server:redis-server

# Install the missing ones with apt-get (non-interactive; sudo only when not root).
# Without a way to install, warn and go on (those tests skip), except under CI.
test-deps:
	@missing=""; \
	for dep in $(CLIENT_DEPS); do \
		command -v "$${dep%%:*}" >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else sudo="none"; fi; \
	if [ "$$sudo" = none ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "test-deps: cannot install$$missing (need apt-get and root or sudo)" >&2; \
		if [ -n "$$CI" ]; then exit 1; fi; \
		echo "test-deps: the real-client tests will be skipped" >&2; exit 0; \
	fi; \
	echo "test-deps: installing$$missing"; \
	$$sudo apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends $$missing

test: $(STAMP) test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The README's picture of the web page, taken by the browser test itself.
screenshot: $(STAMP) test-deps
	GREENCHAT_README_SCREENSHOT=$(CURDIR)/docs/web-client.png $(BIN)/python -m pytest -q \
		tests/e2e/test_browser.py::test_pick_a_nick_and_chat_with_irc_both_ways

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Load test: make loadtest ARGS="--headless -u 500 -r 100 -t 60s --host irc://127.0.0.1:8546"
loadtest: $(STAMP)
	$(BIN)/locust -f loadtest/locustfile.py $(ARGS)

bench-fanout: $(STAMP)
	$(BIN)/python benchmarks/fanout.py $(ARGS)

# Every workload against every available server: make bench ARGS="--workloads fanout --quick"
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(ARGS)

# Peer IRC servers the benchmarks compare against (benchmarks/servers.py runs them
# in the foreground from benchmarks/peers/ configs). Installs the missing Debian
# packages; a daemon the package itself started is stopped (and, under systemd,
# disabled) so nothing listens on the default port 6667. See benchmarks/peers/README.md.
BENCH_PEERS := ngircd inspircd

.PHONY: bench-peers
bench-peers:
	@missing=""; \
	for pkg in $(BENCH_PEERS); do \
		command -v "$$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$$pkg" ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; \
		elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
		else sudo="none"; fi; \
		if [ "$$sudo" = none ] || ! command -v apt-get >/dev/null 2>&1; then \
			echo "bench-peers: cannot install$$missing (need apt-get and root or sudo)" >&2; \
			exit 1; \
		fi; \
		echo "bench-peers: installing$$missing"; \
		$$sudo apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $$missing || exit 1; \
		for pkg in $$missing; do \
			if [ -d /run/systemd/system ]; then \
				if systemctl is-active --quiet "$$pkg"; then \
					echo "bench-peers: stopping the $$pkg service the package started"; \
					$$sudo systemctl stop "$$pkg"; \
				fi; \
				$$sudo systemctl disable --quiet "$$pkg" 2>/dev/null || true; \
			elif command -v service >/dev/null 2>&1 && \
				$$sudo service "$$pkg" status >/dev/null 2>&1; then \
				echo "bench-peers: stopping the $$pkg service the package started"; \
				$$sudo service "$$pkg" stop; \
			fi; \
		done; \
	fi; \
	PATH="$$PATH:/usr/sbin"; \
	echo "bench-peers: $$(ngircd --version | head -n 1)"; \
	echo "bench-peers: $$(inspircd --version)"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
