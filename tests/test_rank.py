"""Per-audience selection on a small fitted model: exclusions, muting, sizes, teams, MMR."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import rank as rank_module
from digest.features import ItemDoc, doc_of
from digest.model import Interaction, Recommender
from digest.profiles import DEFAULT_SIZE, Profile, ProfileSet, Team
from digest.rank import Ranking, mmr, rank
from digest.records import ReaderDigest, StoredItem

DAY = date(2026, 3, 11)
TOPICS = {
    "moe": "mixture of experts routing sparse experts load balancing",
    "quant": "quantization low bit weights int4 post training quantization",
    "robot": "robot manipulation policy grasping dexterous control",
    "protein": "protein structure folding residues sequence",
}
FANS = {"moe_fan": "moe", "quant_fan": "quant", "robot_fan": "robot"}


def _docs() -> list[ItemDoc]:
    return [
        ItemDoc(f"{topic}{k}", f"{words.split()[k % 4]} study {k} of {topic}",
                f"We study {words} in setting {k}. " * 3)
        for topic, words in TOPICS.items()
        for k in range(12)
    ]  # fmt: skip


#: Items 0-7 of each topic are history; 8-11 are the day's candidates.
PAST = [d for d in _docs() if int(d.id.lstrip("abcdefghijklmnopqrstuvwxyz")) < 8]
CANDIDATES = [
    StoredItem(d.id, d.title, d.abstract) for d in _docs() if d not in PAST
]  # 16 items, 4 per topic
IDS = [c.id for c in CANDIDATES]
PROFILES = ProfileSet(
    readers={
        "moe_fan": Profile("moe_fan", digest_size=3),
        "quant_fan": Profile("quant_fan", digest_size=2),
        "robot_fan": Profile("robot_fan", digest_size=4),
    }
)
READERS = [*FANS, "stranger"]  # "stranger": no profile, no history


@pytest.fixture(scope="module")
def model() -> Recommender:
    clicks = [
        Interaction(f"{reader}{copy}", f"{topic}{k}", 1.0)
        for reader, topic in FANS.items()
        for copy in ("", "_twin")  # two readers per topic, so co-reading means something
        for k in range(8)
    ]
    return Recommender(epochs=5, components=8, embeddings="off", random_state=0).fit(PAST, clicks)


def _ranking(
    model: Recommender,
    candidates: Sequence[StoredItem] = CANDIDATES,
    *,
    exclude: dict[str, set[str]] | None = None,
    profiles: ProfileSet = PROFILES,
    diversity: float = 0.0,
    min_score: float | None = None,
) -> Ranking:
    return Ranking(
        model, candidates, profiles=profiles, exclude=exclude or {}, day=DAY,
        diversity=diversity, min_score=min_score,
    )  # fmt: skip


def _ids(digest: ReaderDigest) -> list[str]:
    return [p.item.id for p in digest.picks]


def _blended(model: Recommender, reader: str, candidates: Sequence[StoredItem]) -> np.ndarray:
    return model.score([reader], [doc_of(c) for c in candidates]).blended[0]


# -- readers ----------------------------------------------------------------------------------


def test_without_diversity_picks_are_the_best_scores_in_order(model: Recommender) -> None:
    digests = list(_ranking(model).readers(READERS))
    assert [d.audience for d in digests] == READERS
    for digest in digests:
        size = PROFILES.get(digest.audience).digest_size
        scores = _blended(model, digest.audience, CANDIDATES)
        best = [IDS[c] for c in np.argsort(-scores, kind="stable")[:size]]
        assert _ids(digest) == best
        assert [p.rank for p in digest.picks] == list(range(1, size + 1))
        assert [p.score for p in digest.picks] == pytest.approx(
            [float(scores[IDS.index(i)]) for i in best], abs=1e-4
        )
        assert digest.day == DAY
    sizes = {d.audience: len(d.picks) for d in digests}
    assert sizes == {"moe_fan": 3, "quant_fan": 2, "robot_fan": 4, "stranger": DEFAULT_SIZE}


def test_fans_get_their_own_topic_first(model: Recommender) -> None:
    for digest in _ranking(model).readers(list(FANS)):
        assert all(i.startswith(FANS[digest.audience]) for i in _ids(digest))


def test_top_overrides_every_profile_size(model: Recommender) -> None:
    ranking = _ranking(model)
    assert [len(d.picks) for d in ranking.readers(READERS, top=1)] == [1, 1, 1, 1]
    for digest in ranking.readers(READERS, top=100):
        assert sorted(_ids(digest)) == sorted(IDS)  # all of them, each once


@settings(max_examples=25, deadline=None)
@given(
    excluded=st.sets(st.sampled_from(IDS) | st.sampled_from([f"old{n}" for n in range(40)])),
    reader=st.sampled_from(READERS),
)
def test_excluded_items_are_never_offered_and_the_rest_move_up(
    model: Recommender, excluded: set[str], reader: str
) -> None:
    # Small and large exclude sets (more ids than candidates, most of them older items)
    # take different paths; both must leave the same order of what remains.
    full = _ids(next(_ranking(model).readers([reader], top=len(IDS))))
    size = PROFILES.get(reader).digest_size
    (digest,) = _ranking(model, exclude={reader: excluded}).readers([reader])
    assert excluded.isdisjoint(_ids(digest))
    assert _ids(digest) == [i for i in full if i not in excluded][:size]


def test_exclusions_belong_to_one_reader(model: Recommender) -> None:
    ranking = _ranking(model, exclude={"moe_fan": set(IDS)})
    mine, other = ranking.readers(["moe_fan", "stranger"], top=len(IDS))
    assert mine.picks == () and mine.audience == "moe_fan" and mine.day == DAY
    assert sorted(_ids(other)) == sorted(IDS)


def test_a_day_without_candidates_gives_empty_digests(model: Recommender) -> None:
    ranking = _ranking(model, [])
    digests = list(ranking.readers(READERS, top=5))
    assert [(d.audience, d.day, d.picks) for d in digests] == [(r, DAY, ()) for r in READERS]
    team = ranking.team(Team("core", members=tuple(FANS)))
    assert (team.audience, team.day, team.picks) == ("team:core", DAY, ())
    assert rank(model, ["moe_fan"], [], profiles=PROFILES, exclude={}, day=DAY)[0].picks == ()


def test_muted_phrases_match_stemmed_and_case_folded(model: Recommender) -> None:
    extra = [
        StoredItem("x-robotic", "Robotic Grasping in Clutter", "Grasp planning for arms."),
        StoredItem("x-llm", "Large Language Models Are Few-Shot Learners", "We scale."),
        StoredItem("x-lang", "A language for modelling proofs", "Typed modelling language."),
    ]
    candidates = CANDIDATES + extra
    profiles = ProfileSet(
        readers={
            "quiet": Profile("quiet", muted=("ROBOT", "language model")),
            "open": Profile("open"),
        }
    )
    ranking = _ranking(model, candidates, profiles=profiles)
    quiet, open_ = ranking.readers(["quiet", "open"], top=len(candidates))
    # Every robot paper says "robot" in its title and abstract; "language ... modelling"
    # in x-lang is no phrase.
    muted = {i for i in IDS if i.startswith("robot")} | {"x-robotic", "x-llm"}
    assert set(_ids(quiet)) == {c.id for c in candidates} - muted
    assert set(_ids(open_)) == {c.id for c in candidates}  # one reader's mute is theirs alone


def test_a_phrase_without_words_mutes_nothing(model: Recommender) -> None:
    profiles = ProfileSet(readers={"odd": Profile("odd", muted=("!!!", "--"))})
    (digest,) = _ranking(model, profiles=profiles).readers(["odd"], top=len(IDS))
    assert sorted(_ids(digest)) == sorted(IDS)


def test_min_score_drops_weaker_items(model: Recommender) -> None:
    scores = _blended(model, "moe_fan", CANDIDATES)
    threshold = float(np.median(scores))
    (digest,) = _ranking(model, min_score=threshold).readers(["moe_fan"], top=len(IDS))
    assert set(_ids(digest)) == {i for i, s in zip(IDS, scores, strict=True) if s >= threshold}
    assert all(p.score >= threshold for p in digest.picks)
    (none,) = _ranking(model, min_score=float(scores.max()) + 1).readers(["moe_fan"])
    assert none.picks == ()


def test_every_pick_is_explained_by_what_the_reader_did(model: Recommender) -> None:
    ranking = _ranking(model, diversity=0.3)
    for digest in ranking.readers(READERS):
        history = model.reader_history(digest.audience)
        for pick in digest.picks:
            assert pick.why.text()
            assert pick.why.reader is None  # a reader's own digest speaks to "you"
            if pick.why.because_id is not None:
                assert history.get(pick.why.because_id, 0) > 0
                assert pick.why.because_title == model.titles[pick.why.because_id]
        if digest.audience in FANS:
            assert any(p.why.because_id for p in digest.picks)
        else:  # nothing is known of a stranger, so no pick may claim a personal reason
            assert all(p.why.because_id is None and not p.why.terms for p in digest.picks)


def test_diversity_pushes_copies_of_a_pick_down(model: Recommender) -> None:
    best = next(c for c in CANDIDATES if c.id == "moe9")
    copies = [StoredItem(f"copy{n}", best.title, best.abstract) for n in range(3)]
    candidates = copies + CANDIDATES
    same = {"copy0", "copy1", "copy2", "moe9"}
    (plain,) = _ranking(model, candidates, diversity=0.0).readers(["moe_fan"], top=6)
    assert set(_ids(plain)[:4]) == same  # equally relevant, so together at the top
    (varied,) = _ranking(model, candidates, diversity=0.5).readers(["moe_fan"], top=6)
    assert _ids(varied)[0] in same
    assert not same & set(_ids(varied)[1:])


def test_readers_scored_in_blocks_get_the_same_digests(
    model: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers = [*READERS, "moe_fan_twin"]

    def digests() -> list[tuple[str, list[str], list[float]]]:
        return [(d.audience, _ids(d), [p.score for p in d.picks])
                for d in _ranking(model).readers(readers)]  # fmt: skip

    whole = digests()
    monkeypatch.setattr(rank_module, "BLOCK", 2)  # three blocks, the last one short
    blocks = digests()
    assert [w[:2] for w in whole] == [b[:2] for b in blocks]
    for w, b in zip(whole, blocks, strict=True):
        assert w[2] == pytest.approx(b[2], abs=1e-4)


def test_rank_is_a_ranking_for_its_readers(model: Recommender) -> None:
    exclude = {"moe_fan": {"moe9"}}
    got = rank(model, READERS, CANDIDATES, profiles=PROFILES, exclude=exclude, day=DAY, top=3)
    want = _ranking(model, exclude=exclude, diversity=rank_module.DEFAULT_DIVERSITY)
    assert [(d.audience, _ids(d)) for d in got] == [
        (d.audience, _ids(d)) for d in want.readers(READERS, 3)
    ]


# -- teams ------------------------------------------------------------------------------------

TEAM = Team("core", members=("moe_fan", "quant_fan", "robot_fan"), digest_size=5)


def test_team_post_ranks_by_the_members_mean_score(model: Recommender) -> None:
    post = _ranking(model).team(TEAM)
    assert post.audience == "team:core" and post.day == DAY
    assert len(post.picks) == TEAM.digest_size
    mean = np.mean([_blended(model, m, CANDIDATES) for m in TEAM.members], axis=0)
    best = [IDS[c] for c in np.argsort(-mean, kind="stable")[: TEAM.digest_size]]
    assert _ids(post) == best
    assert [p.rank for p in post.picks] == [1, 2, 3, 4, 5]
    assert [p.score for p in post.picks] == pytest.approx(
        [float(mean[IDS.index(i)]) for i in best], abs=1e-4
    )


def test_team_size_argument_overrides_the_team_file(model: Recommender) -> None:
    ranking = _ranking(model)
    assert len(ranking.team(TEAM, size=2).picks) == 2
    assert len(ranking.team(TEAM, size=50).picks) == len(IDS)


def test_team_names_the_members_whose_own_digest_holds_the_pick(model: Recommender) -> None:
    quiet_robot = Profile("robot_fan", digest_size=4, muted=("grasping study",))  # robot11
    profiles = ProfileSet(readers={**PROFILES.readers, "robot_fan": quiet_robot})
    exclude = {"moe_fan": {"moe9"}}  # sent to moe_fan already, not to the team
    ranking = _ranking(model, exclude=exclude, profiles=profiles)
    own = {d.audience: set(_ids(d)) for d in ranking.readers(list(TEAM.members))}
    post = ranking.team(TEAM, size=len(IDS))
    assert sorted(_ids(post)) == sorted(IDS)  # a member's mute or send does not bind the team
    for pick in post.picks:
        assert set(pick.members) == {m for m in TEAM.members if pick.item.id in own[m]}
        assert list(pick.members) == [m for m in TEAM.members if m in pick.members]
    members = {p.item.id: p.members for p in post.picks}
    assert "moe_fan" not in members["moe9"] and "robot_fan" not in members["robot11"]
    assert {m for names in members.values() for m in names} == set(TEAM.members)


def test_team_pick_is_explained_by_the_member_it_suits_most(model: Recommender) -> None:
    post = _ranking(model).team(TEAM, size=len(IDS))
    scores = {m: _blended(model, m, CANDIDATES) for m in TEAM.members}
    for pick in post.picks:
        col = IDS.index(pick.item.id)
        lead = max(TEAM.members, key=lambda m: scores[m][col])
        assert pick.why.reader == lead
        if pick.why.because_id is not None:
            assert model.reader_history(lead).get(pick.why.because_id, 0) > 0


def test_team_exclusions_and_empty_teams(model: Recommender) -> None:
    ranking = _ranking(model, exclude={"team:core": set(IDS[:12])})
    post = ranking.team(TEAM, size=len(IDS))
    assert sorted(_ids(post)) == sorted(IDS[12:])
    assert ranking.team(Team("nobody"), size=3).picks == ()


# -- mmr --------------------------------------------------------------------------------------


@st.composite
def mmr_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 25))
    scores = np.array(draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n)), np.float32)
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    vectors = rng.rand(n, 4) ** 3
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = (vectors @ vectors.T).astype(np.float32)
    allowed = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return scores, similarity, allowed


@settings(max_examples=80, deadline=None)
@given(mmr_inputs(), st.integers(-2, 30), st.floats(0.0, 1.0))
def test_mmr_picks_distinct_allowed_items_up_to_size(
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray], size: int, diversity: float
) -> None:
    scores, similarity, allowed = inputs
    chosen = mmr(scores, similarity, allowed, size, diversity)
    assert len(chosen) == max(0, min(size, int(allowed.sum())))
    assert len(set(chosen)) == len(chosen)
    assert all(allowed[c] for c in chosen)


@settings(max_examples=80, deadline=None)
@given(mmr_inputs(), st.integers(0, 30))
def test_mmr_without_diversity_is_score_order(
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray], size: int
) -> None:
    scores, similarity, allowed = inputs
    pool = [int(c) for c in np.flatnonzero(allowed)]
    by_score = sorted(pool, key=lambda c: (-scores[c], c))  # ties: the earlier item first
    assert mmr(scores, similarity, allowed, size, 0.0) == by_score[:size]


@pytest.mark.parametrize("seed", range(5))
def test_mmr_does_not_depend_on_the_scale_of_scores(seed: int) -> None:
    """Scores are standardised: a reader whose scores are all larger or shifted gets the same."""
    rng = np.random.RandomState(seed)
    vectors = rng.rand(30, 5) ** 3
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors @ vectors.T
    scores = rng.randn(30)
    allowed = rng.rand(30) > 0.2
    expected = mmr(scores, similarity, allowed, 8, 0.3)
    assert mmr(scores * 40 - 7, similarity, allowed, 8, 0.3) == expected
    assert mmr(scores * 0.01 + 3, similarity, allowed, 8, 0.3) == expected


def test_mmr_at_full_diversity_covers_every_topic_before_repeating_one() -> None:
    topic = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    similarity = (topic[:, None] == topic[None, :]).astype(np.float32)
    scores = np.array([9, 8, 7, 1, 0, 3, 2, 5], dtype=np.float32)
    allowed = np.ones(8, dtype=bool)
    chosen = mmr(scores, similarity, allowed, 3, 1.0)
    assert sorted(topic[chosen]) == [0, 1, 2]
    # Relevance alone would take the first topic three times.
    assert sorted(topic[mmr(scores, similarity, allowed, 3, 0.0)]) == [0, 0, 0]


def test_mmr_with_nothing_allowed_or_no_room_picks_nothing() -> None:
    scores = np.array([1.0, 2.0, 3.0])
    similarity = np.eye(3)
    assert mmr(scores, similarity, np.zeros(3, dtype=bool), 2, 0.3) == []
    assert mmr(scores, similarity, np.ones(3, dtype=bool), 0, 0.3) == []
    # Equal scores have no spread to standardise by: the earlier item wins the tie.
    assert mmr(np.array([5.0, 5.0]), np.ones((2, 2)), np.ones(2, dtype=bool), 1, 0.3) == [0]


def test_a_team_post_after_its_members_digests_equals_one_ranked_alone(model: Recommender) -> None:
    # The post reuses the score rows its members got while their digests were ranked.
    ranking = _ranking(model)
    list(ranking.readers(list(TEAM.members)))
    assert ranking.team(TEAM) == _ranking(model).team(TEAM)
