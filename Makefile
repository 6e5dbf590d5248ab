# Development loop. Every target installs what it needs into .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DIGEST := $(VENV)/bin/digest
RUN_DB ?= build/example.db
RUN_ENV = DIGEST_DB=$(RUN_DB) DIGEST_MODEL=build/example.model DIGEST_PROFILES=profiles
# torch is pinned to the CPU build that this machine kind keeps on disk; an
# unpinned torch would pull a multi-GB CUDA build from the registry.
TORCH  ?= torch==2.13.0

.PHONY: install install-base run test lint fmt bench eval clean browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev,embed]'
	touch $(STAMP)

install: $(STAMP)

# The light install (no torch): what a user gets from `pip install digest`.
install-base:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'

run: install
	mkdir -p build
	rm -f $(RUN_DB) $(RUN_DB)-wal $(RUN_DB)-shm
	$(RUN_ENV) $(DIGEST) ingest examples/dumps examples/feeds examples/items
	$(RUN_ENV) $(DIGEST) stats
	$(RUN_ENV) $(DIGEST) feedback import examples/feedback.csv
	$(RUN_ENV) $(DIGEST) train
	$(RUN_ENV) $(DIGEST) rank --all --new-on 2026-03-11

lint: install
	$(VENV)/bin/ruff check digest tests bench
	$(VENV)/bin/ruff format --check digest tests bench

fmt: install
	$(VENV)/bin/ruff format digest tests bench
	$(VENV)/bin/ruff check --fix digest tests bench

test: lint browser
	$(VENV)/bin/pytest

bench: install
	$(PY) bench/bench_ingest.py --write docs/benchmarks.md
	$(PY) bench/bench_rank.py --write docs/benchmarks.md

eval: install
	$(DIGEST) evaluate --citeulike ../shared/datasets/citeulike-a --seeds 0,1,2 --write docs/evaluation.md

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis

# Real-browser tests need Debian's chromium and chromedriver; install them when
# missing (these machines run as root with Debian's package sources).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null; }
