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
