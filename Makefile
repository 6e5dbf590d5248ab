# Development loop. Every target installs what it needs into .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DIGEST := $(VENV)/bin/digest
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

# The main job on the bundled examples (examples/digest.toml): ingest, feedback, model,
# rank, then emails in out/outbox, feeds in out/feeds and wiki posts in out/wiki (a git
# repository, so the run commits its posts). A second `make run` delivers nothing new.
run: install
	mkdir -p build out/wiki
	test -s build/link-secret || $(PY) -c "import secrets; print(secrets.token_urlsafe(32))" > build/link-secret
	test -d out/wiki/.git || git init -q out/wiki
	$(DIGEST) --config examples/digest.toml run --date 2026-03-11

lint: install
	$(VENV)/bin/ruff check digest tests bench
	$(VENV)/bin/ruff format --check digest tests bench

fmt: install
	$(VENV)/bin/ruff format digest tests bench
	$(VENV)/bin/ruff check --fix digest tests bench

test: lint browser
	$(VENV)/bin/pytest

# Speed and memory targets, each written to its section of docs/benchmarks.md with the
# machine and the command. The whole set takes about half an hour on 2 cores.
bench: install
	$(PY) bench/bench_ingest.py --write docs/benchmarks.md
	$(PY) bench/bench_rank.py --write docs/benchmarks.md
	$(PY) bench/bench_train.py --write docs/benchmarks.md
	$(PY) bench/bench_tune.py --repeat 3 --write docs/benchmarks.md
	$(PY) bench/bench_embed_text.py --write docs/benchmarks.md
	$(PY) bench/bench_email.py --write docs/benchmarks.md
	$(PY) bench/bench_feeds.py --write docs/benchmarks.md
	$(PY) bench/bench_render.py --write docs/benchmarks.md
	$(PY) bench/bench_serve.py --write docs/benchmarks.md
	$(PY) bench/bench_run.py --write docs/benchmarks.md

eval: install
	$(DIGEST) evaluate --citeulike ../shared/datasets/citeulike-a --seeds 0,1,2 --write docs/evaluation.md

clean:
	rm -rf build out .pytest_cache .ruff_cache .hypothesis

# Real-browser tests need Debian's chromium and chromedriver; install them when
# missing (these machines run as root with Debian's package sources).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null; }
