"""Writing wiki posts: atomic files in a plain folder, one commit in a real git repository."""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path

import pytest

from digest.deliver.wiki import (
    DeliveryError,
    commit_message,
    commit_posts,
    publish,
    write_posts,
)
from digest.errors import DigestError
from digest.records import Explanation, Pick, ReaderDigest, Recipient, StoredItem
from digest.render.links import Links
from digest.render.wiki import WikiPost, render_post

DAY = date(2026, 3, 11)


@pytest.fixture(autouse=True)
def no_user_git_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Git sees no global or system configuration: no user.name, no user.email."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)


def git(repo: Path, *args: str) -> str:
    """Run git in the test repository (with an identity, as its owner would)."""
    ident = ["-c", "user.name=Owner", "-c", "user.email=owner@example.org"]
    result = subprocess.run(
        ["git", *ident, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A wiki clone: a repository with one page, a modified file and a staged file."""
    root = tmp_path / "wiki"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "Home.md").write_text("# Home\n")
    (root / "Notes.md").write_text("notes\n")
    git(root, "add", "Home.md", "Notes.md")
    git(root, "commit", "-q", "-m", "initial")
    (root / "Home.md").write_text("# Home, edited by hand\n")
    (root / "Draft.md").write_text("staged draft\n")
    git(root, "add", "Draft.md")
    (root / "untracked.txt").write_text("scratch\n")
    return root


def commits(root: Path) -> list[str]:
    return git(root, "log", "--format=%H").split()


def digests() -> list[tuple[ReaderDigest, Recipient]]:
    item = StoredItem(id="p1", title="Sparse *experts*", url="https://arxiv.org/abs/2603.1")
    why = Explanation(interest="moe")
    return [
        (
            ReaderDigest("team:efficiency", DAY, (Pick(item, 1, 0.9, why, ("ada", "grace")),)),
            Recipient("team:efficiency", "Efficient Models", members=("ada", "grace")),
        ),
        (ReaderDigest("ada", DAY, (Pick(item, 1, 0.9, why),)), Recipient("ada", "Ada")),
        (ReaderDigest("lin", DAY, (Pick(item, 1, 0.8, why),)), Recipient("lin", "Lin")),
    ]


def posts() -> list[WikiPost]:
    return [render_post(d, r, Links()) for d, r in digests()]


POST_PATHS = [
    "2026/03/2026-03-11-ada.md",
    "2026/03/2026-03-11-efficiency.md",
    "2026/03/2026-03-11-lin.md",
]
SUBJECT = "digest: posts for 2026-03-11 (team efficiency, 2 readers)"


# -- git repository -----------------------------------------------------------------------


def test_a_run_commits_exactly_its_posts_in_one_commit(repo: Path) -> None:
    before = commits(repo)
    result = publish(repo, posts())
    assert result.commit is not None
    assert commits(repo) == [result.commit, *before]
    files = git(repo, "show", "--name-only", "--format=", result.commit).split()
    assert sorted(files) == POST_PATHS
    assert git(repo, "log", "-1", "--format=%s", result.commit).strip() == SUBJECT
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == "digest <digest@localhost>"
    # The owner's own work is untouched: still modified, still staged, still untracked.
    status = git(repo, "status", "--porcelain").splitlines()
    assert sorted(status) == [" M Home.md", "?? untracked.txt", "A  Draft.md"]


def test_a_second_identical_run_changes_nothing(repo: Path) -> None:
    first = publish(repo, posts())
    second = publish(repo, posts())
    assert second.changed == () and second.commit is None
    assert commits(repo)[0] == first.commit


def test_a_changed_post_gets_a_commit_of_its_own(repo: Path) -> None:
    publish(repo, posts())
    changed = posts()
    changed[1] = WikiPost(
        changed[1].path, changed[1].text + "\nEdited.\n", changed[1].audience, changed[1].day
    )
    result = publish(repo, changed)
    assert result.changed == (repo / "2026/03/2026-03-11-ada.md",)
    files = git(repo, "show", "--name-only", "--format=", str(result.commit)).split()
    assert files == ["2026/03/2026-03-11-ada.md"]
    subject = git(repo, "log", "-1", "--format=%s").strip()
    assert subject == "digest: posts for 2026-03-11 (1 reader)"


def test_a_file_restored_to_its_committed_content_makes_no_commit(repo: Path) -> None:
    publish(repo, posts())
    target = repo / "2026/03/2026-03-11-lin.md"
    committed = target.read_text()
    target.write_text("scribbled over\n")
    head = commits(repo)[0]
    result = publish(repo, posts())
    assert result.changed == (target,) and result.commit is None
    assert target.read_text() == committed and commits(repo)[0] == head


def test_the_repository_identity_is_used_when_configured(repo: Path) -> None:
    git(repo, "config", "user.name", "Wiki Owner")
    git(repo, "config", "user.email", "wiki@example.org")
    result = publish(repo, posts())
    author = git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", str(result.commit)).strip()
    assert author == "Wiki Owner <wiki@example.org>|Wiki Owner <wiki@example.org>"


def test_the_first_commit_of_an_empty_repository(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    result = publish(tmp_path, posts())
    assert result.commit is not None and commits(tmp_path) == [result.commit]
    assert sorted(git(tmp_path, "ls-files").split()) == POST_PATHS


def test_commit_posts_with_a_message_of_its_own(repo: Path) -> None:
    changed = write_posts(repo, posts()[:1])
    sha = commit_posts(repo, changed, "wiki: efficiency digest")
    assert sha == commits(repo)[0]
    assert git(repo, "log", "-1", "--format=%B").strip() == "wiki: efficiency digest"
    assert commit_posts(repo, [], "nothing") is None


def test_a_failing_git_is_a_delivery_error_naming_the_repository(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'wiki is frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(DeliveryError) as caught:
        publish(repo, posts())
    assert isinstance(caught.value, DigestError)
    message = str(caught.value)
    assert message.startswith(f"{repo}: git commit failed") and "wiki is frozen" in message
    assert "Traceback" not in message


def test_ignored_post_folder_is_a_delivery_error(repo: Path) -> None:
    (repo / ".gitignore").write_text("2026/\n")
    with pytest.raises(DeliveryError, match=r"git add failed: .*ignored"):
        publish(repo, posts())


def test_a_folder_inside_a_repository_is_written_but_not_committed(repo: Path) -> None:
    inner = repo / "posts"
    inner.mkdir()
    head = commits(repo)[0]
    result = publish(inner, posts())
    assert len(result.changed) == 3 and result.commit is None
    assert commits(repo)[0] == head


# -- plain folder and safety --------------------------------------------------------------


def test_a_plain_folder_gets_the_files_and_no_commit(tmp_path: Path) -> None:
    result = publish(tmp_path, posts())
    assert result.commit is None
    assert sorted(p.relative_to(tmp_path).as_posix() for p in result.changed) == POST_PATHS
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == POST_PATHS  # and no temporary files left behind
    post = posts()[1]
    assert (tmp_path / post.path).read_text(encoding="utf-8") == post.text
    assert not (tmp_path / ".git").exists()


def test_identical_posts_are_not_rewritten(tmp_path: Path) -> None:
    assert len(write_posts(tmp_path, posts())) == 3
    target = tmp_path / POST_PATHS[0]
    os.utime(target, (1, 1))
    assert write_posts(tmp_path, posts()) == []
    assert target.stat().st_mtime == 1


def test_new_files_get_ordinary_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        write_posts(tmp_path, posts())
    finally:
        os.umask(mask)
    assert (tmp_path / POST_PATHS[0]).stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "path",
    [
        "../escape.md",
        "2026/../../escape.md",
        "/etc/escape.md",
        "2026\\03\\x.md",
        "2026//x.md",
        "./x.md",
        "",
        "2026/03/x.txt",
        "x\x00.md",
    ],
)
def test_paths_that_could_leave_the_root_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "wiki"
    root.mkdir()
    good = posts()[0]
    bad = WikiPost(path, "x\n", "ada", DAY)
    with pytest.raises(DeliveryError, match="post path"):
        write_posts(root, [good, bad])
    assert list(tmp_path.rglob("*.md")) == []  # checked before anything was written


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "wiki", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "2026").symlink_to(outside)
    with pytest.raises(DeliveryError, match="leads outside"):
        write_posts(root, posts())
    assert list(outside.rglob("*")) == []


def test_two_posts_for_one_file_are_refused(tmp_path: Path) -> None:
    team = posts()[0]
    clash = WikiPost(team.path, "reader named like the team\n", "efficiency", DAY)
    with pytest.raises(DeliveryError, match="'team:efficiency' and 'efficiency'"):
        write_posts(tmp_path, [team, clash])


def test_a_missing_root_is_an_error_not_a_new_folder(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="wiki folder does not exist"):
        write_posts(tmp_path / "typo", posts())
    assert not (tmp_path / "typo").exists()


def test_an_unwritable_folder_is_a_delivery_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "2026").write_text("a file where a folder should be\n")
    with pytest.raises(DeliveryError, match=r"2026-03-11-.*\.md: cannot (read|write)"):
        write_posts(tmp_path, posts())


# -- the commit message -------------------------------------------------------------------


def test_commit_message_names_teams_and_counts_readers() -> None:
    message = commit_message(posts())
    assert message.splitlines() == [SUBJECT, "", *POST_PATHS]
    two_teams = [
        WikiPost("2026/03/2026-03-11-a.md", "", "team:vision", DAY),
        WikiPost("2026/03/2026-03-12-b.md", "", "team:efficiency", date(2026, 3, 12)),
        WikiPost("2026/03/2026-03-12-c.md", "", "ada", date(2026, 3, 12)),
    ]
    subject = commit_message(two_teams).splitlines()[0]
    assert subject == (
        "digest: posts for 2026-03-11 to 2026-03-12 (teams efficiency and vision, 1 reader)"
    )
