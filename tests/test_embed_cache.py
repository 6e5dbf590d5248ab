"""Each item is embedded once in its life: stored by model, recipe and the text it read.

These tests use the real sentence model (`make test` installs the embed extra) and
count the texts that reach it, by wrapping `embed.encode`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digest import embed
from digest.cli import cli
from digest.features import ItemDoc, doc_of
from digest.ingest import ingest
from digest.model import Recommender
from digest.records import StoredItem
from digest.store import Store
from digest.training import item_vectors

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the sentence model is asked to encode, in order."""
    seen: list[str] = []
    real = embed.encode

    def counting(texts: list[str], **kwargs) -> np.ndarray:
        seen.extend(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(embed, "encode", counting)
    return seen


ROWS = [
    {"id": "a", "title": "Sparse mixture of experts routing", "abstract": "Route tokens."},
    {"id": "b", "title": "Quantization of large language models", "abstract": "Four bits."},
    {"id": "c", "title": "Robot grasping with tactile sensing"},
]


def stored(tmp_path: Path) -> tuple[Store, list[ItemDoc]]:
    """A real database holding ROWS (ingested as a JSON list), and what the model reads."""
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    store = Store.open(str(tmp_path / "d.db"))
    ingest(store, [str(path)])
    return store, [doc_of(item) for item in store.stored_items()]


def test_a_second_call_encodes_nothing_and_returns_the_same_vectors(
    tmp_path: Path, encoded: list[str]
) -> None:
    store, docs = stored(tmp_path)
    first = item_vectors(store, docs)
    assert sorted(encoded) == sorted(r["title"] for r in ROWS)  # the default reads titles
    again = item_vectors(store, docs)
    assert len(encoded) == 3
    for doc in docs:
        assert np.array_equal(first[doc.id], again[doc.id])
        assert first[doc.id].shape == (embed.DIMENSIONS,)


def test_a_vector_counts_only_for_the_text_it_was_made_from(
    tmp_path: Path, encoded: list[str]
) -> None:
    store, docs = stored(tmp_path)
    recipe = "title+abstract:128"
    item_vectors(store, docs, recipe=recipe)
    assert len(encoded) == 3
    bare = next(d for d in docs if not d.abstract)
    enriched = [d if d is not bare else replace(d, abstract="Now with an abstract.") for d in docs]
    item_vectors(store, enriched, recipe=recipe)
    assert encoded[3:] == [f"{bare.title}. Now with an abstract."]
    # The title recipe never read the abstract: a new abstract changes nothing for it.
    item_vectors(store, docs)
    item_vectors(store, enriched)
    assert len(encoded) == 4 + 3


def test_vectors_stored_before_texts_were_hashed_are_made_again_once(
    tmp_path: Path, encoded: list[str]
) -> None:
    store, docs = stored(tmp_path)
    item_vectors(store, docs)
    with store.transaction():
        store.conn.execute("UPDATE embeddings SET text_hash = NULL")
    item_vectors(store, docs)
    item_vectors(store, docs)
    assert len(encoded) == 6


class Day:
    """A real database trained on the first seed day (embeddings on), driven through the CLI."""

    def __init__(self, tmp_path: Path) -> None:
        self.db, self.model = str(tmp_path / "d.db"), str(tmp_path / "d.model")
        self.profiles = str(FIXTURES.parent.parent / "profiles")
        self.seeds = sorted((FIXTURES / "seeds").glob("*.txt"))
        self.runner = CliRunner()
        self("ingest", str(self.seeds[0]))
        self("feedback", "add", "ada", self.items()[0].id, "click")
        self("train", "--model", self.model, "--embeddings", "on", "--profiles", self.profiles)
        self.known = {i.id for i in self.items()}

    def __call__(self, *args: str) -> None:
        done = self.runner.invoke(cli, ["--db", self.db, *args])
        assert done.exit_code == 0, done.output

    def items(self) -> list[StoredItem]:
        return Store.open(self.db, create=False).stored_items()

    def next_day(self) -> list[StoredItem]:
        """Ingest the second seed day; its new items."""
        self("ingest", str(self.seeds[1]))
        return [i for i in self.items() if i.id not in self.known]


def test_rank_stores_the_vectors_of_candidates_newer_than_the_model(
    tmp_path: Path, encoded: list[str]
) -> None:
    """`digest rank` on a day the model has not seen encodes those items once, ever."""
    day = Day(tmp_path)
    assert {i.title for i in day.items()} <= set(encoded)
    trained = len(encoded)
    fresh = day.next_day()
    day("rank", "--all", "--model", day.model, "--profiles", day.profiles)
    assert sorted(encoded[trained:]) == sorted(i.title for i in fresh)
    day("rank", "--all", "--model", day.model, "--profiles", day.profiles)
    day("train", "--update", "--model", day.model, "--profiles", day.profiles)
    assert len(encoded) - trained == len(fresh), "a second rank or an update encodes nothing"


def test_an_update_encodes_new_items_beside_training_and_stores_them(
    tmp_path: Path, encoded: list[str]
) -> None:
    """`train --update` encodes the new items once (in a thread beside LightFM) and keeps them."""
    day = Day(tmp_path)
    trained = len(encoded)
    fresh = day.next_day()
    day("train", "--update", "--model", day.model, "--profiles", day.profiles)
    assert sorted(encoded[trained:]) == sorted(i.title for i in fresh)
    store = Store.open(day.db, create=False)
    vectors = item_vectors(store, [doc_of(i) for i in fresh])  # stored: nothing encoded
    assert len(encoded) - trained == len(fresh) and set(vectors) == {i.id for i in fresh}
    updated = Recommender.load(day.model)
    rows = [updated.item_index[i.id] for i in fresh]
    expected = np.stack([vectors[i.id] for i in fresh])
    assert np.allclose(updated.item_embed[rows], expected, atol=1e-5)


def test_a_search_process_killed_after_encoding_leaves_no_semaphore_behind(
    tmp_path: Path,
) -> None:
    """`digest train`'s weight search encodes profile interests in a spawned process, and
    is killed when it runs past its time budget: at exit, Python's resource tracker must
    find nothing of it left over to warn about."""
    script = tmp_path / "search.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, time
            from digest import embed

            def search(conn):
                embed.encode(["a paper title"])
                conn.send("encoded")
                time.sleep(60)

            if __name__ == "__main__":
                context = multiprocessing.get_context("spawn")
                ours, theirs = context.Pipe()
                process = context.Process(target=search, args=(theirs,))
                process.start()
                theirs.close()  # a child that dies early ends the wait below
                assert ours.recv() == "encoded"
                process.kill()
                process.join()
            """
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr, done.stderr
