"""Profiles: every problem named by file and key, invalid files skipped with a warning
(train and rank go on for everyone else), references checked, and no traceback."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.cli import cli
from digest.errors import ConfigError, ValidationError
from digest.profiles import DEFAULT_FOLDER, load_profiles, valid_handle

PROFILES = ROOT / "profiles"
EXAMPLES = ROOT / "examples"
CASES = FIXTURES / "profiles"
EXPECTED = json.loads((CASES / "expected.json").read_text(encoding="utf-8"))
GOOD = {"ada", "grace", "lin", "sam"}


def test_example_profiles_are_valid() -> None:
    found = load_profiles(PROFILES)
    assert found.problems == [] and found.warnings() == []
    assert set(found.readers) >= GOOD
    assert found.teams["efficiency"].members == ("ada", "grace")


@pytest.mark.parametrize(
    "content,expected",
    [
        ('name = "X"\ncolour = "red"\n', "unknown key 'colour'"),
        ("interests = 'quantization'\n", "key 'interests' must be a list"),
        ('email = "not-an-email"\n', "key 'email'"),
        ('email = "a@b.org\\u0000"\n', "key 'email' contains a control or format character"),
        ("digest_size = 0\n", "key 'digest_size'"),
        ('channels = ["pigeon"]\n', "unknown channel 'pigeon'"),
        ("name = \n", "invalid TOML"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("a = " + "{b=" * 5000 + "1" + "}" * 5000 + "\n", "nested too deeply"),
        ("[" + ".".join(["a"] * 3000) + "]\n", "unknown key 'a'"),
        ("digest_size = " + "1" * 5000 + "\n", "invalid TOML"),
        ('handle = "eve\\n"\n', "key 'handle' contains a control or format character U+000A"),
        ('handle = "\\u212Aate"\n', "non-ASCII character U+212A"),
        ('teams = ["a/b"]\n', "key 'teams': 'a/b' is not a valid team name"),
    ],
)
def test_profile_problems_name_file_and_key(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "zed.toml").write_text(content)
    found = load_profiles(tmp_path)
    assert len(found.problems) == 1
    assert expected in found.problems[0] and "zed.toml" in found.problems[0]
    assert found.readers == {} and set(found.skipped_readers) <= {"zed"}


def test_unreadable_profile_files(tmp_path: Path) -> None:
    (tmp_path / "latin.toml").write_bytes('name = "Jos\xe9"\n'.encode("latin-1"))
    (tmp_path / "huge.toml").write_text("# " + "x" * 1024 * 1024 + "\n")
    (tmp_path / "folder.toml").mkdir()
    problems = load_profiles(tmp_path).problems
    assert [p.split(": ", 1)[1] for p in problems] == [
        "cannot read: Is a directory",
        "file is larger than 1 MB",
        "cannot read: not UTF-8 text (bad byte at offset 11)",
    ]


def test_duplicate_handle(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('handle = "same"\n')
    (tmp_path / "b.toml").write_text('handle = "same"\n')
    found = load_profiles(tmp_path)
    assert found.problems == [
        f"{tmp_path / 'b.toml'}: duplicate handle 'same' (also in {tmp_path / 'a.toml'})"
    ]
    assert found.readers["same"].path == str(tmp_path / "a.toml")
    assert found.audience() == ["same"]  # served from the first file, not skipped


@pytest.mark.parametrize("case", sorted(k for k in EXPECTED if not k.startswith("_")))
def test_fixture_folder(case: str) -> None:
    want, folder = EXPECTED[case], CASES / case
    found = load_profiles(folder)
    assert {h: list(p.teams) for h, p in found.readers.items()} == want["readers"]
    assert {t: list(team.members) for t, team in found.teams.items()} == want["teams"]
    assert sorted(found.skipped_readers) == want["skipped_readers"]
    assert sorted(found.skipped_teams) == want["skipped_teams"]
    assert sorted(Path(f).name for f in found.skipped_files) == want["skipped_files"]
    assert len(found.problems) == len(want["problems"]), found.problems
    for name, part in want["problems"]:
        prefix = f"{folder / name}: "
        assert any(p.startswith(prefix) and part in p for p in found.problems), (name, part)


def test_references_to_unknown_teams_and_members(tmp_path: Path) -> None:
    (tmp_path / "teams").mkdir()
    (tmp_path / "ada.toml").write_text('teams = ["core", "Ghost"]\n')
    (tmp_path / "teams" / "core.toml").write_text('members = ["ada", "BOB"]\n')
    found = load_profiles(tmp_path)
    assert found.problems == [
        f"{tmp_path / 'ada.toml'}: key 'teams': unknown team 'ghost' "
        f"(no {tmp_path / 'teams' / 'ghost'}.toml)",
        f"{tmp_path / 'teams' / 'core.toml'}: key 'members': unknown reader 'bob' "
        f"(no {tmp_path / 'bob'}.toml)",
    ]
    # The reader and the team stay, without the dangling references.
    assert found.readers["ada"].teams == ("core",)
    assert found.teams["core"].members == ("ada",)
    assert found.skipped_readers == {} and found.warnings() == found.problems


# -- the folder: only a named one must exist ----------------------------------------------------


def test_missing_default_folder_is_no_profiles(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = load_profiles()
    assert (found.readers, found.problems, found.folder) == ({}, [], DEFAULT_FOLDER)
    assert load_profiles("elsewhere", required=False).readers == {}
    with pytest.raises(ConfigError, match="profiles: profiles folder does not exist"):
        load_profiles(DEFAULT_FOLDER)  # named explicitly, so it must exist
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        load_profiles("file", required=False)


# -- who is served ------------------------------------------------------------------------------


def test_invalid_profile_is_skipped_not_served_bare() -> None:
    found = load_profiles(CASES / "mixed")
    # A broken profile must not turn into a bare one: that reader's mutes would be lost.
    known = ["bad-email", "feedback-only", "deep-array", "../x", "Upper", "ada"]
    assert found.audience(known) == ["ada", "feedback-only", "ghost-team", "grace", "upper"]
    assert found.audience(only="ADA") == ["ada"]
    assert found.audience(only="nobody") == ["nobody"]  # feedback alone is enough to rank
    with pytest.raises(
        ConfigError, match=r"bad-email\.toml: the profile of 'bad-email' is invalid"
    ):
        found.audience(only="bad-email")
    with pytest.raises(ValidationError, match="is not a valid handle"):
        found.audience(only="../x")
    skipped = [w for w in found.warnings() if w.endswith("skipped")]
    assert f"{CASES / 'mixed' / 'bad-email.toml'}: reader 'bad-email' skipped" in skipped
    assert f"{CASES / 'mixed' / 'teams' / 'broken.toml'}: team 'broken' skipped" in skipped


def test_profile_lookup() -> None:
    found = load_profiles(CASES / "mixed")
    assert found.profile("ADA").handle == "ada"
    with pytest.raises(ConfigError, match=r"no profile 'nobody' in .*mixed"):
        found.profile("nobody")
    with pytest.raises(ConfigError, match=r"latin1\.toml: the profile of 'latin1' is invalid"):
        found.profile("latin1")
    with pytest.raises(ValidationError):
        found.profile("\u202eada")


def test_valid_handle_is_the_profile_rule(tmp_path: Path) -> None:
    for bad in ("ada/bob", "\u0430da", "a" * 65):
        with pytest.raises(ValidationError) as caught:
            valid_handle(bad)
        (tmp_path / "x.toml").write_text(json.dumps({"handle": bad}).replace(":", " =")[1:-1])
        [problem] = load_profiles(tmp_path).problems
        assert problem == f"{tmp_path / 'x.toml'}: key 'handle': {caught.value}"


# -- the CLI ------------------------------------------------------------------------------------


def _ok(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output


def test_cli_check_lists_every_problem(runner: CliRunner) -> None:
    folder = CASES / "mixed"
    result = runner.invoke(cli, ["profiles", "check", "--profiles", str(folder)])
    _ok(result)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == len(EXPECTED["mixed"]["problems"])
    assert all(line.startswith(f"error: {folder}/") for line in lines)
    good = runner.invoke(cli, ["profiles", "check"], env={"DIGEST_PROFILES": str(PROFILES)})
    assert good.exit_code == 0 and good.stdout == "4 reader(s), 1 team(s): all valid\n"


def test_cli_list_and_show_keep_working(runner: CliRunner) -> None:
    folder = ["--profiles", str(CASES / "mixed")]
    listed = runner.invoke(cli, ["profiles", "list", *folder])
    _ok(listed)
    assert listed.exit_code == 0
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == [
        "ada", "ghost-team", "grace", "team", "upper",
    ]  # fmt: skip
    assert all(line.startswith("warning: ") for line in listed.stderr.splitlines())
    shown = runner.invoke(cli, ["profiles", "show", "Ada", *folder])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["teams"] == ["efficiency"]
    for handle, message in [
        ("nobody", "error: no profile 'nobody' in "),
        ("bad-email", f"error: {CASES / 'mixed' / 'bad-email.toml'}: the profile of"),
        ("../etc/passwd", "error: '../etc/passwd' is not a valid handle"),
    ]:
        result = runner.invoke(cli, ["profiles", "show", handle, *folder])
        _ok(result)
        assert result.exit_code == 1 and result.stderr.startswith(message)
        assert len(result.stderr.splitlines()) == 1


def test_cli_named_folder_must_exist(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    default = runner.invoke(cli, ["profiles", "list"])
    assert default.exit_code == 0 and default.output == ""
    for args, env in [(["--profiles", "nowhere"], {}), ([], {"DIGEST_PROFILES": "nowhere"})]:
        result = runner.invoke(cli, ["profiles", "check", *args], env=env)
        assert result.exit_code == 1
        assert result.stderr == "error: nowhere: profiles folder does not exist\n"


def _pipeline(runner: CliRunner, tmp_path: Path, profiles: str | None) -> dict[str, str]:
    env = {"DIGEST_DB": str(tmp_path / "d.db"), "DIGEST_MODEL": str(tmp_path / "m.model")}
    if profiles:
        env["DIGEST_PROFILES"] = profiles
    assert runner.invoke(cli, ["ingest", "-q", str(EXAMPLES / "dumps")], env=env).exit_code == 0
    imported = runner.invoke(cli, ["feedback", "import", str(EXAMPLES / "feedback.csv")], env=env)
    assert imported.exit_code == 0, imported.output
    return env


def test_train_and_rank_without_a_profiles_folder(
    runner: CliRunner, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./profiles here: readers come from feedback alone
    env = _pipeline(runner, tmp_path, None)
    trained = runner.invoke(cli, ["train", "--embeddings", "off", "--epochs", "2"], env=env)
    assert trained.exit_code == 0 and trained.stderr == "", trained.output
    ranked = runner.invoke(cli, ["rank", "--all", "--top", "1", "--format", "jsonl"], env=env)
    assert ranked.exit_code == 0, ranked.output
    assert {json.loads(line)["user"] for line in ranked.stdout.splitlines()} == {
        "ada", "grace", "lin",
    }  # fmt: skip


@pytest.mark.parametrize(
    "content",
    [
        'handle = "a/b"\n', 'handle = ""\n', "handle = 42\n", 'handle = "\u202eada"\n',
        'handle = "\u212aate"\n', 'handle = "x\\ny"\n', 'handle = ["ada"]\n',
        'handle = "grace"\n',  # another file's handle
    ],
)  # fmt: skip
def test_a_profile_with_a_bad_handle_is_reported_skipped(
    runner: CliRunner, tmp_path: Path, content: str
) -> None:
    """`profiles list` (and train, rank) never drop a reader file without saying so."""
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    (folder / "zz-odd.toml").write_text(content, encoding="utf-8")
    listed = runner.invoke(cli, ["profiles", "list", "--profiles", str(folder)])
    assert listed.exit_code == 0, listed.output
    prefix = f"warning: {folder / 'zz-odd.toml'}: "
    *problems, skipped = listed.stderr.splitlines()
    assert skipped.startswith(prefix + "reader ") and "skipped" in skipped, skipped
    assert problems and all(line.startswith(prefix) for line in problems), problems
    assert {line.split()[0] for line in listed.stdout.splitlines() if line[:5] != "team "} == GOOD


def test_one_invalid_profile_does_not_stop_train_and_rank(
    runner: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    (folder / "ada.toml").write_text('name = "Ada"\nemail = "ada-at-example"\n')
    env = _pipeline(runner, tmp_path, str(folder))
    trained = runner.invoke(cli, ["train", "--embeddings", "off", "--epochs", "2"], env=env)
    assert trained.exit_code == 0, trained.output
    assert trained.stderr.splitlines() == [
        f"warning: {folder / 'ada.toml'}: key 'email': 'ada-at-example' is not an email address",
        f"warning: {folder / 'ada.toml'}: reader 'ada' skipped",
    ]
    ranked = runner.invoke(cli, ["rank", "--all", "--top", "1", "--format", "jsonl"], env=env)
    assert ranked.exit_code == 0, ranked.output
    users = {json.loads(line)["user"] for line in ranked.stdout.splitlines()}
    assert users == GOOD - {"ada"}  # ada is skipped, not ranked with a bare profile
    one = runner.invoke(cli, ["rank", "--user", "ada"], env=env)
    assert one.exit_code == 1 and "ada.toml: the profile of 'ada' is invalid" in one.stderr
    check = runner.invoke(cli, ["profiles", "check"], env=env)
    assert check.exit_code == 1 and "key 'email'" in check.stderr


# -- property test: garbage beside good profiles --------------------------------------------------

_ADA = (PROFILES / "ada.toml").read_bytes()
_DEEP = st.integers(1100, 6000)
#: (content, certainly invalid)
_GARBAGE = st.one_of(
    st.binary(max_size=400).map(lambda b: (b, False)),
    st.text(max_size=300).map(lambda t: (t.encode(), False)),
    st.tuples(st.integers(0, len(_ADA)), st.binary(min_size=1, max_size=30)).map(
        lambda t: (_ADA[: t[0]] + t[1] + _ADA[t[0] :], False)
    ),
    _DEEP.map(lambda n: (b"a = " + b"[" * n + b"]" * n, True)),
    _DEEP.map(lambda n: (b"a = " + b"{b=" * n + b"1" + b"}" * n, True)),
    _DEEP.map(lambda n: (b"interests = " + b"[" * n, True)),
    st.integers(4301, 9000).map(lambda n: (b"digest_size = " + b"9" * n, True)),
    st.binary(min_size=1, max_size=50).filter(lambda b: not _utf8(b)).map(lambda b: (b, True)),
    st.sampled_from(["\u202eada", "../x", "ada/bob", "\u212aate", "a b", "ADA\u200b"]).map(
        lambda h: (f'handle = "{h}"\n'.encode(), True)
    ),
    st.sampled_from(["nobody", "Ghost", "x/y"]).map(
        lambda t: (f'teams = ["{t}"]\n'.encode(), True)
    ),
)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(garbage=st.lists(st.tuples(_GARBAGE, st.booleans()), min_size=1, max_size=4))
def test_garbage_profiles_beside_good_ones(garbage: list) -> None:
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "profiles"
        shutil.copytree(PROFILES, folder)
        for n, ((content, _), as_team) in enumerate(garbage):
            (folder / ("teams" if as_team else ".") / f"zz{n}.toml").write_bytes(content)
        must_fail = any(bad and not as_team for (_, bad), as_team in garbage)
        check = runner.invoke(cli, ["profiles", "check", "--profiles", str(folder)])
        _ok(check)
        assert check.exit_code == (1 if check.stderr else 0)
        assert all(line.startswith(f"error: {folder}/") for line in check.stderr.splitlines())
        if must_fail:
            assert check.exit_code == 1
        listed = runner.invoke(cli, ["profiles", "list", "--profiles", str(folder)])
        _ok(listed)
        assert listed.exit_code == 0
        assert all(line.startswith("warning: ") for line in listed.stderr.splitlines())
        assert {line.split()[0] for line in listed.stdout.splitlines()} >= GOOD
        found = load_profiles(folder)
        assert set(found.audience()) >= GOOD
        assert found.teams["efficiency"].members == ("ada", "grace")
