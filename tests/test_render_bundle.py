"""Rendering a run's jobs: worker processes give exactly what rendering in-process gives.

A big run renders in spawned workers, which get every paper once and jobs that name
papers by number (`Papers.numbered`); the outputs must not depend on that.
"""

from __future__ import annotations

import email
import email.policy
import mmap
import pickle
from datetime import UTC, date, datetime

import pytest

from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render import bundle
from digest.render.bundle import (
    Papers,
    RenderContext,
    Rendered,
    RenderJob,
    render_all,
    render_job,
    with_papers,
)

DAY = date(2026, 3, 11)
CTX = RenderContext(
    sender="digest <digest@example.org>",
    list_id="digest.example.org",
    now=datetime(2026, 3, 11, 7, tzinfo=UTC),
    base_url="https://digest.example.org",
    secret="s" * 32,
    unsubscribe_mailbox="u@example.org",
    authority="digest.example.org",
)


def paper(n: int, **fields: object) -> StoredItem:
    values: dict = {
        "id": f"p{n}", "title": f"Paper {n} <b>&</b>", "abstract": f"Abstract {n} é…",
        "url": f"https://arxiv.org/abs/{n}", "authors": ("Ada", "Grace"),
        "code_url": f"https://github.com/x/{n}",
    }  # fmt: skip
    return StoredItem(**(values | fields))


def jobs(readers: int) -> list[RenderJob]:
    papers = [paper(n) for n in range(12)]
    # An equal paper that is another object, as the store gives for older digests.
    twin = paper(3)
    out = []
    for r in range(readers):
        picks = tuple(
            Pick(papers[(r + k) % 12], k + 1, 1.0, Explanation(interest=f"topic {r % 3}"))
            for k in range(5)
        )
        today = ReaderDigest(f"r{r}", DAY, picks)
        older = ReaderDigest(f"r{r}", date(2026, 3, 10), (Pick(twin, 1, 1.0, Explanation()),))
        who = Recipient(f"r{r}", f"Reader {r}", f"r{r}@example.org", ("email", "feed", "wiki"))
        urls = {k: f"https://digest.example.org/feeds/t{r}.{k}" for k in ("atom", "rss")}
        out.append(RenderJob(today, who, ("email", "feed", "wiki"), (today, older), urls))
    return out


def comparable(rendered: Rendered) -> tuple:
    """A rendering with the email's random MIME boundary taken out."""
    assert rendered.email is not None
    boundary = email.message_from_bytes(rendered.email, policy=email.policy.default).get_boundary()
    mail = rendered.email.replace(boundary.encode(), b"B")
    return (rendered.audience, mail, rendered.subject, rendered.shown, rendered.feeds,
            rendered.post)  # fmt: skip


@pytest.mark.parametrize("ring", ["shared", "overflowing", "none"])
def test_workers_render_what_this_process_renders(
    monkeypatch: pytest.MonkeyPatch, ring: str
) -> None:
    """Outputs come back the same whether their bytes travel through the shared ring,
    partly through it (a slot too small for a whole task), or through the pipe."""
    work = jobs(40)
    monkeypatch.setattr(bundle, "POOL_THRESHOLD", 10)
    monkeypatch.setattr(bundle, "_CHUNK", 3)
    if ring == "overflowing":
        monkeypatch.setattr(bundle, "_RING_SLOT", 20_000)  # two emails, not three
    if ring == "none":
        monkeypatch.setattr(bundle._Ring, "create", lambda slots, slot: bundle._Ring(None, None))
    stowed, piped = [], []
    take = bundle._Ring.take

    def counting(self: bundle._Ring, outputs: list) -> list[Rendered]:
        for rendered, spans in outputs:
            stowed.extend(spans)
            piped.extend([rendered.email] if rendered.email else [])
        return take(self, outputs)

    monkeypatch.setattr(bundle._Ring, "take", counting)
    pooled = [comparable(r) for r in render_all(work, CTX)]
    assert pooled == [comparable(render_job(job, CTX)) for job in work]
    expected = {"shared": (120, 0), "overflowing": (True, True), "none": (0, 40)}[ring]
    if ring == "overflowing":
        assert stowed and piped
    else:
        assert (len(stowed), len(piped)) == expected


def test_a_task_stows_what_fits_in_its_slot_and_leaves_the_rest() -> None:
    """Each output's bytes go into the task's own slot while they fit, never past it."""
    outputs = [render_job(job, CTX) for job in jobs(3)]
    size = len(outputs[0].email or b"") + 10
    view = mmap.mmap(-1, 3 * size)
    stowed = bundle._stow(outputs, view, size, 1)
    spans = [span for _rendered, found in stowed for span in found.values()]
    assert spans and all(size <= start < end <= 2 * size for start, end in spans)
    assert view[:size] == bytes(size) and view[2 * size :] == bytes(size)
    back = bundle._Ring(None, view).take(stowed)
    assert [comparable(r) for r in back] == [comparable(r) for r in outputs]


def test_a_chunk_names_each_paper_by_number_and_comes_back_to_one_copy() -> None:
    work = jobs(20)
    papers = Papers(work)
    assert len(papers.items) == 12  # the twin shares its equal paper's number
    sent = papers.numbered(work[:4])
    # What travels to a worker holds numbers, never a paper (nor its abstract).
    travelling = [p[0] for _job, own, window in sent for d in (own, *window) if d for p in d[2]]
    assert travelling and all(type(n) is int for n in travelling)
    assert all(not job.digest.picks and not job.feed_window for job, _own, _window in sent)
    assert b"Abstract" not in pickle.dumps(sent)
    back = with_papers(sent, papers.items)  # as a worker does with its own copy
    assert [j.digest for j in back] == [j.digest for j in work[:4]]
    assert [j.feed_window for j in back] == [j.feed_window for j in work[:4]]
    shown = [p.item for j in back for d in (j.digest, *j.feed_window) for p in d.picks]
    assert all(any(item is p for p in papers.items) for item in shown)
