# `make up` runs the whole platform; `make test` runs the suite. Both install what is missing first.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
DEBIAN_TOOLS := rclone postgresql-client redis-tools redis-server zstd ffmpeg espeak-ng chromium socat iproute2
TOOL_BINARIES := rclone pg_dump redis-cli redis-check-rdb redis-server zstd ffmpeg espeak-ng chromium socat ip

.PHONY: up test lint deps tools python services

up: deps
	$(UV) run vigia up

test: deps services lint
	$(UV) run pytest -q -n 2 --dist loadfile

lint: python
	$(UV) run ruff check --quiet .
	$(UV) run ruff format --check --quiet .

deps: tools python

tools:
	@missing=""; for bin in $(TOOL_BINARIES); do command -v $$bin >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian tools: $(DEBIAN_TOOLS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TOOLS) >/dev/null; \
	fi

python:
	@command -v uv >/dev/null || [ -x $(HOME)/.local/bin/uv ] || python3 -m pip install --quiet --user uv
	$(UV) sync --frozen --quiet --compile-bytecode

services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; \
	  echo "PostgreSQL or Redis did not start on 127.0.0.1" >&2; exit 1
