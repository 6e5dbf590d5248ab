"""Delivery's failure windows, one at a time, on real files, a real git wiki and SQLite.

Each test puts a site in the state a crash or a broken part leaves behind (a delivery
written but never recorded, a git lock left by a killed commit, a folder that cannot be
written, an earlier day run again late) and checks what the next `digest run` does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_run import (
    DAY1,
    DAY2,
    EMAIL_READERS,
    RUN_FIXTURES,
    Site,
    feed_items,
    git,
    make_site,
    message_items,
    wiki_items,
)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path / "site")


def forget_delivery(site: Site, audience: str, day: str, channel: str) -> None:
    """Undo the record of one delivery and its sends, as if the process had died after
    writing the output and before its transaction committed."""
    import sqlite3

    conn = sqlite3.connect(site.db, isolation_level=None)
    try:
        conn.execute(
            "DELETE FROM deliveries WHERE channel = ? AND digest_id = "
            "(SELECT id FROM digests WHERE audience = ? AND digest_date = ?)",
            (channel, audience, day),
        )
        conn.execute(
            "DELETE FROM sends WHERE reader = ? AND channel = ? AND digest_date = ?",
            (audience, channel, day),
        )
    finally:
        conn.close()


@pytest.mark.parametrize(("audience", "channel"), [("ada", "email"), ("grace", "wiki")])
def test_an_output_written_but_not_recorded_is_redone_once(
    site: Site, audience: str, channel: str
) -> None:
    """The window between writing an output and recording it: the re-run writes it again
    under the same name (one file, not two), records it once, and touches nothing else."""
    assert site.run("--date", DAY1).exit_code == 0
    plans, sends = site.planned(DAY1), site.sends()
    deliveries = site.deliveries()
    outputs = site.outputs()
    forget_delivery(site, audience, DAY1, channel)

    again = site.run("--date", DAY1)
    assert again.exit_code == 0, again.output
    assert f"delivered: 1 {channel}; 7 already delivered earlier" in again.stdout
    assert site.deliveries() == deliveries
    assert site.sends() == sends
    assert site.planned(DAY1) == plans
    assert site.outputs().keys() == outputs.keys()
    changed = {name for name, data in site.outputs().items() if outputs[name] != data}
    if channel == "email":
        # Only the Date header differs: same name, same picks.
        assert changed <= {f"outbox/{DAY1}/ada.eml"}
        raw = site.emails()["ada"].read_bytes()
        assert message_items(raw, "ada") == plans["ada"]
    else:
        assert changed == set()  # an identical post is not rewritten
        [post] = [p for p in site.wiki_posts() if p.stem.endswith("grace")]
        assert wiki_items(post, site.item_ids_by_title()) == plans["grace"]
    assert len(site.commits()) == 1


def test_a_failed_wiki_commit_is_made_by_the_next_days_run_too(site: Site) -> None:
    """Day 1's commit failed and day 1 is never re-run: day 2's commit takes its posts."""
    lock = site.wiki / ".git" / "index.lock"
    lock.write_text("", encoding="utf-8")
    assert site.run("--date", DAY1).exit_code == 1
    lock.unlink()
    shutil.copy(RUN_FIXTURES / "2026-03-12.txt", site.root / "inputs" / "dumps")
    assert site.run("--date", DAY2).exit_code == 0
    tracked = git(site.wiki, "ls-files").split()
    assert {Path(p).name for p in tracked} >= {f"{DAY1}-grace.md", f"{DAY1}-efficiency.md"}
    assert git(site.wiki, "status", "--porcelain") == ""
    assert len(site.commits()) == 1


def test_a_wiki_commit_that_fails_is_reported_and_made_by_the_next_run(site: Site) -> None:
    """A killed `git commit` leaves `.git/index.lock`: the next run's commit fails. The posts
    are written and recorded, the run exits 1 naming the repository and the lock, and the
    next run of the day (the lock removed) commits every post of the day in one commit.
    """
    lock = site.wiki / ".git" / "index.lock"
    lock.write_text("", encoding="utf-8")
    failed = site.run("--date", DAY1)
    assert failed.exit_code == 1
    assert f"error: wiki commit failed: {site.wiki.resolve()}: git add failed:" in failed.stderr
    assert "index.lock" in failed.stderr
    assert site.commits() == []
    assert len(site.wiki_posts()) == 2
    assert {k: s for k, (s, _) in site.deliveries().items() if k[2] == "wiki"} == {
        ("grace", DAY1, "wiki"): "delivered",
        ("team:efficiency", DAY1, "wiki"): "delivered",
    }

    lock.unlink()
    fixed = site.run("--date", DAY1)
    assert fixed.exit_code == 0, fixed.output
    assert "delivered: nothing new; 8 already delivered earlier" in fixed.stdout
    assert site.commits() == [f"digest: posts for {DAY1} (team efficiency, 1 reader)"]
    assert len(git(site.wiki, "ls-files").split()) == 2
    assert git(site.wiki, "status", "--porcelain") == ""


def test_a_folder_that_cannot_be_written_fails_that_channel_only(site: Site) -> None:
    """The feeds folder is a file: the first feed fails naming it, the channel is not tried
    for the other audiences, emails and wiki posts still go out, and the run exits 1. Once
    the folder can be written, the next run delivers the feeds and nothing else."""
    (site.out / "feeds").parent.mkdir(parents=True, exist_ok=True)
    (site.out / "feeds").write_text("not a folder", encoding="utf-8")
    broken = site.run("--date", DAY1)
    assert broken.exit_code == 1
    errors = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: ada: feed failed: {site.out / 'feeds'}: cannot ")
    assert "not attempted: 2 feed (the channel failed earlier in this run)" in broken.stdout
    assert set(site.emails()) == set(EMAIL_READERS) and len(site.wiki_posts()) == 2
    statuses = {k: s for k, (s, _) in site.deliveries().items()}
    assert statuses[("ada", DAY1, "feed")] == "failed"
    assert ("lin", DAY1, "feed") not in statuses
    assert not site.sends("feed")

    (site.out / "feeds").unlink()
    fixed = site.run("--date", DAY1)
    assert fixed.exit_code == 0, fixed.output
    assert "delivered: 3 feed; 5 already delivered earlier" in fixed.stdout
    assert set(site.feeds()) == {"ada", "lin", "team-efficiency"}


def test_running_an_earlier_day_again_keeps_the_newer_days_in_the_feed(site: Site) -> None:
    """Day 1's feed delivery is redone after day 2 went out (it had failed, say): the feed
    written then must still hold day 2's entries, not go back in time."""
    assert site.run("--date", DAY1).exit_code == 0
    shutil.copy(RUN_FIXTURES / "2026-03-12.txt", site.root / "inputs" / "dumps")
    assert site.run("--date", DAY2).exit_code == 0
    both = feed_items(site.feeds()["ada"])
    assert set(both) == {DAY1, DAY2}
    forget_delivery(site, "ada", DAY1, "feed")

    late = site.run("--date", DAY1)
    assert late.exit_code == 0, late.output
    assert "delivered: 1 feed" in late.stdout
    assert feed_items(site.feeds()["ada"]) == both


def test_a_dry_run_after_a_failure_says_what_the_next_run_would_redo(site: Site) -> None:
    assert site.run("--date", DAY1).exit_code == 0
    forget_delivery(site, "sam", DAY1, "email")
    before = site.deliveries()
    dry = site.run("--date", DAY1, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "delivered: 1 email (dry-run); 7 already delivered earlier" in dry.stdout
    assert "would send sam: email to sam@example.org: digest for Wed 11 Mar 2026" in dry.stdout
    assert site.deliveries() == before


def test_a_reader_named_like_a_team_never_overwrites_its_outputs(site: Site) -> None:
    """Reader `efficiency` and team `efficiency` would share a wiki post name: profiles
    refuse the team (a warning names both files, the run exits 1), the reader keeps the
    name. A reader `team-efficiency` no longer meets the team's feed, which lives in
    feeds/teams/."""
    site.add_reader("efficiency", name="Eff", interests=["quantization"], channels=["wiki"])
    site.add_reader("team-efficiency", name="TE", interests=["kv cache"], channels=["feed"])
    result = site.run("--date", DAY1)
    assert result.exit_code == 1
    assert "team name 'efficiency' is also a reader's handle" in result.stderr
    by_title = site.item_ids_by_title()
    [written] = [p for p in site.wiki_posts() if p.name == f"{DAY1}-efficiency.md"]
    assert wiki_items(written, by_title) == site.planned(DAY1)["efficiency"]
    assert (site.out / "feeds" / "team-efficiency.atom").is_file()
    assert not (site.out / "feeds" / "teams").exists()  # the team was skipped
    statuses = {k: s for k, (s, _) in site.deliveries().items()}
    assert ("team:efficiency", DAY1, "wiki") not in statuses
    assert statuses[("efficiency", DAY1, "wiki")] == "delivered"
    assert "team:efficiency" not in site.sends()


def test_a_day_without_new_papers_sends_nothing(site: Site) -> None:
    """No empty emails, feeds or posts: a day with no candidates plans empty digests and
    delivers nothing, says so, and succeeds (and needs no model update)."""
    assert site.run("--date", DAY1).exit_code == 0
    before = (site.emails(), site.outputs(), site.deliveries())
    result = site.run("--date", DAY2)  # the sources hold nothing new for day 2
    assert result.exit_code == 0, result.output
    assert "delivered: nothing new" in result.stdout
    assert "nothing new for 5: ada, grace, lin, sam, team:efficiency (nothing sent)" in (
        result.stdout
    )
    assert (site.emails(), site.outputs(), site.deliveries()) == before
    assert "model: not needed" in result.stdout
