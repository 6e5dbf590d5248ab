"""Shared fixtures: a real SQLite file per test, the CLI runner, the seed dumps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.store import Store

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The five real Daily Papers dumps (copied in, so a clone of the repository alone passes).
SEEDS = FIXTURES / "seeds"
TODAY = date(2026, 11, 22)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "digest.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path)
    yield s
    s.close()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _hostile_corpus() -> dict:
    """tests/fixtures/render/hostile.json (the one corpus every renderer's tests use),
    with `times` entries expanded."""
    import json

    corpus = json.loads((FIXTURES / "render" / "hostile.json").read_text(encoding="utf-8"))
    texts = []
    for entry in corpus["texts"]:
        value = entry["value"] * entry.get("times", 1)
        shown = " ".join(entry.get("shown", value).split())
        texts.append({"name": entry["name"], "value": value, "shown": shown})
    return {"texts": texts, "urls": corpus["urls"], "names": corpus["names"]}


HOSTILE = _hostile_corpus()


@pytest.fixture(params=HOSTILE["texts"], ids=lambda entry: entry["name"])
def hostile_text(request: pytest.FixtureRequest) -> dict:
    """One hostile text field value (a test per entry): `value`, and `shown`, what a
    reader should see (whitespace collapsed, control and bidi characters dropped)."""
    return request.param


@pytest.fixture(params=HOSTILE["urls"], ids=lambda entry: entry["name"])
def hostile_url(request: pytest.FixtureRequest) -> dict:
    """One hostile URL (a test per entry): `value`, and `link`, True when it may be linked."""
    return request.param
