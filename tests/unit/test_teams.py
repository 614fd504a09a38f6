"""Team colours on generated frames: a green pitch, uneven light, red/white or blue/yellow kits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tracker.football.teams import MAX_TRACKS, TeamClassifier

Box = tuple[float, float, float, float]
BGR = tuple[int, int, int]

W, H = 960, 540
GRASS: BGR = (40, 140, 50)
SKIN: BGR = (120, 160, 210)
RED: BGR = (40, 40, 200)
WHITE: BGR = (235, 235, 235)
BLUE: BGR = (190, 70, 20)
YELLOW: BGR = (30, 220, 235)
SHORTS: BGR = (30, 30, 30)
# a player's parts, as fractions of the box: head, shirt (None: the kit), shorts, two legs
BODY: list[tuple[float, float, float, float, BGR | None]] = [
    (0.35, 0.0, 0.65, 0.15, SKIN),
    (0.1, 0.15, 0.9, 0.5, None),
    (0.2, 0.5, 0.8, 0.65, SHORTS),
    (0.25, 0.65, 0.45, 1.0, SKIN),
    (0.55, 0.65, 0.75, 1.0, SKIN),
]
PACE = 200  # frames: players walk one way, then back
FPS = 25.0


@dataclass
class Player:
    tid: int
    shirt: BGR
    x: float  # box centre
    y: float  # box bottom (feet)
    vx: float  # px per frame
    height: float

    def box(self, frame: int) -> Box:
        walked = frame % PACE if frame // PACE % 2 == 0 else PACE - frame % PACE  # to and fro
        cx = self.x + self.vx * walked
        w = 0.4 * self.height
        return (cx - w / 2, self.y - self.height, cx + w / 2, self.y)


def _render(players: list[Player], frame: int, rng: np.random.Generator) -> np.ndarray:
    """A frame: noisy grass, each player as head, shirt, shorts and legs, light from 0.6 to 1.3."""
    img = np.empty((H, W, 3), np.float32)
    img[:] = GRASS
    for p in players:  # later players are drawn over earlier ones (occlusion)
        x1, y1, x2, y2 = p.box(frame)
        w, h = x2 - x1, y2 - y1
        for fx1, fy1, fx2, fy2, colour in BODY:
            xa, xb = int(max(x1 + fx1 * w, 0)), int(min(x1 + fx2 * w, W))
            ya, yb = int(max(y1 + fy1 * h, 0)), int(min(y1 + fy2 * h, H))
            if xa < xb and ya < yb:
                img[ya:yb, xa:xb] = p.shirt if colour is None else colour
    img += rng.standard_normal(img.shape, dtype=np.float32) * 10.0
    img *= np.linspace(0.6, 1.3, W, dtype=np.float32)[None, :, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _squad(kits: tuple[BGR, BGR], rng: np.random.Generator, first_tid: int = 1) -> list[Player]:
    """11 + 11 players apart from each other, but for two pairs that walk through each other."""
    players = [
        Player(first_tid, kits[0], 250.0, 250.0, 1.5, 90.0),
        Player(first_tid + 1, kits[1], 400.0, 254.0, -1.5, 90.0),
        Player(first_tid + 2, kits[0], 250.0, 480.0, 1.5, 80.0),
        Player(first_tid + 3, kits[1], 400.0, 484.0, -1.5, 80.0),
    ]
    sweeps = [_sweep(p) for p in players]
    while len(players) < 22:
        p = Player(
            tid=first_tid + len(players),
            shirt=kits[len(players) % 2],
            x=float(rng.uniform(60, W - 60)),
            y=float(rng.uniform(120, H - 5)),
            vx=float(rng.uniform(-0.2, 0.2)),
            height=float(rng.uniform(50, 110)),
        )
        sweep = _sweep(p)
        if not any(_overlap(sweep, other) for other in sweeps):
            players.append(p)
            sweeps.append(sweep)
    return players


def _sweep(p: Player) -> Box:
    """The area the player's box covers as it walks."""
    a, b = p.box(0), p.box(PACE)
    return (min(a[0], b[0]), a[1], max(a[2], b[2]), a[3])


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _frame_players(players: list[Player], frame: int) -> list[tuple[int, Box, float]]:
    return [(p.tid, p.box(frame), 0.9) for p in players]


def _run(
    clf: TeamClassifier, players: list[Player], frames: range, rng: np.random.Generator
) -> int:
    """Feeds the frames as the tracker would; returns how many frames were decoded."""
    decoded = 0
    for f in frames:
        if clf.needs_pixels([p.tid for p in players], f / FPS):
            clf.observe(_render(players, f, rng), _frame_players(players, f), f / FPS)
            decoded += 1
    return decoded


def _assert_split(clf: TeamClassifier, players: list[Player]) -> None:
    by_kit: dict[BGR, set[str | None]] = {}
    for p in players:
        by_kit.setdefault(p.shirt, set()).add(clf.team_of(p.tid))
    assert all(len(teams) == 1 for teams in by_kit.values()), f"a kit split over teams: {by_kit}"
    assert {t for teams in by_kit.values() for t in teams} == {"A", "B"}, by_kit


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


@pytest.mark.parametrize("kits", [(RED, WHITE), (BLUE, YELLOW)], ids=["red-white", "blue-yellow"])
def test_team_classifier_puts_every_player_in_its_kits_team_under_uneven_light(
    kits: tuple[BGR, BGR],
) -> None:
    # given 22 players of two kits under light from 0.6 to 1.3, two pairs crossing each other
    rng = np.random.default_rng(1)
    players = _squad(kits, rng)
    clf = TeamClassifier()
    # when 150 frames go through
    decoded = _run(clf, players, range(150), rng)
    # then each kit is one team, no more pixels are wanted, and few frames were decoded
    _assert_split(clf, players)
    assert not clf.needs_pixels([p.tid for p in players], 150 / FPS)
    assert decoded <= 20, f"decoded {decoded} of 150 frames"
    # and the colours are the two shirts, within the light's spread
    colours = clf.colours()
    assert colours is not None
    for p in players[:2]:
        team = clf.team_of(p.tid)
        assert team is not None
        got = _rgb(colours[team])
        want = (p.shirt[2], p.shirt[1], p.shirt[0])
        assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 45, (got, want)


def test_team_classifier_keeps_letters_and_teams_across_refits_and_new_tracks() -> None:
    # given a classifier that re-checks often, and players that leave and come back as new ids
    rng = np.random.default_rng(2)
    clf = TeamClassifier(recheck_every_s=1.0)
    players = _squad((RED, WHITE), rng)
    _run(clf, players, range(60), rng)
    colours = clf.colours()
    assert colours is not None
    red_team = next(t for t, c in colours.items() if _rgb(c)[0] > 150 and _rgb(c)[2] < 100)
    fixed = {p.tid: clf.team_of(p.tid) for p in players}
    # when, for 320 frames, every 40 frames 4 players are re-identified as new tracks
    next_tid = 100
    for round_, start in enumerate(range(60, 380, 40)):
        gone = players[4 * (round_ % 5) : 4 * (round_ % 5) + 4]
        clf.forget(p.tid for p in gone)
        for p in gone:  # the same players, re-identified
            p.tid, next_tid = next_tid, next_tid + 1
        _run(clf, players, range(start, start + 40), rng)
        # then a track's team never changes, and red stays the same letter
        for p in players:
            team = clf.team_of(p.tid)
            if p.tid in fixed:
                assert team == fixed[p.tid], f"track {p.tid} changed team"
            fixed[p.tid] = team
        now = clf.colours()
        assert now is not None and _rgb(now[red_team])[0] > 150, f"red changed letter: {now}"
    _assert_split(clf, players)


def test_team_classifier_heals_a_wrong_early_call_at_a_recheck() -> None:
    # given track 1 red, but first seen in front of a white shirt (a wrong early call)
    rng = np.random.default_rng(3)
    clf = TeamClassifier(recheck_every_s=0.4)
    players = _squad((RED, WHITE), rng)
    liar = players[0]
    liar.shirt = WHITE
    _run(clf, players, range(30), rng)
    assert clf.team_of(liar.tid) == clf.team_of(players[1].tid), "starts in the white team"
    # when its true shirt shows from then on, for a few re-check periods
    liar.shirt = RED
    _run(clf, players, range(30, 200), rng)
    # then it ends up in the red team, the others unchanged
    _assert_split(clf, players)


def test_team_classifier_does_not_sample_a_torso_covered_by_another_box() -> None:
    # given 22 players, and track 999 standing behind track 1, its torso covered
    rng = np.random.default_rng(4)
    players = _squad((RED, WHITE), rng)
    front = players[5]
    other_kit = WHITE if front.shirt == RED else RED
    hidden = Player(999, other_kit, front.x - 10, front.y - 3, front.vx, front.height)
    clf = TeamClassifier()
    # when frames go through with the hidden player listed first (drawn under the front one)
    for f in range(60):
        everyone = [hidden, *players]
        if clf.needs_pixels([p.tid for p in everyone], f / FPS):
            clf.observe(_render(everyone, f, rng), _frame_players(everyone, f), f / FPS)
    # then the others have teams, and the hidden track none: it was never sampled (nor was
    # the one in front, whose torso the hidden box covers as well)
    _assert_split(clf, [p for p in players if p is not front])
    assert clf.team_of(hidden.tid) is None


def test_team_classifier_ignores_low_score_detections() -> None:
    rng = np.random.default_rng(5)
    players = _squad((RED, WHITE), rng)
    clf = TeamClassifier(min_score=0.5)
    for f in range(30):
        if clf.needs_pixels([p.tid for p in players], f / FPS):
            low = [(p.tid, p.box(f), 0.3) for p in players]
            clf.observe(_render(players, f, rng), low, f / FPS)
    assert clf.colours() is None and all(clf.team_of(p.tid) is None for p in players)


def test_team_classifier_does_not_split_a_single_kit_into_two_teams() -> None:
    # given only white players visible (under the same uneven light)
    rng = np.random.default_rng(6)
    players = _squad((WHITE, WHITE), rng)
    clf = TeamClassifier()
    # when frames go through
    _run(clf, players, range(60), rng)
    # then no teams are made up
    assert clf.colours() is None
    assert all(clf.team_of(p.tid) is None for p in players)


def test_team_classifier_wants_pixels_again_only_for_a_new_track() -> None:
    rng = np.random.default_rng(7)
    players = _squad((RED, WHITE), rng)
    clf = TeamClassifier()
    _run(clf, players, range(60), rng)
    ids = [p.tid for p in players]
    assert not clf.needs_pixels(ids, 60 / FPS)
    assert not clf.needs_pixels(ids, 60 / FPS), "asking twice changes nothing"
    assert clf.needs_pixels([*ids, 500], 61 / FPS), "a new id lacks a team"


def test_goalkeeper_team_is_the_team_on_the_keepers_side() -> None:
    a_side = [((280.0 + 30 * i, 300.0, 320.0 + 30 * i, 400.0), "A") for i in range(5)]
    b_side = [((1400.0 + 30 * i, 300.0, 1440.0 + 30 * i, 400.0), "B") for i in range(5)]
    players = a_side + b_side
    assert TeamClassifier.goalkeeper_team((80.0, 300.0, 120.0, 400.0), players) == "A"
    assert TeamClassifier.goalkeeper_team((1800.0, 300.0, 1840.0, 400.0), players) == "B"
    assert TeamClassifier.goalkeeper_team((80.0, 300.0, 120.0, 400.0), a_side) is None


def test_team_classifier_memory_stays_bounded_as_tracks_come_and_go() -> None:
    # given 10,000 tracks, 22 at a time, each living 10 frames (a tiny image: memory only)
    image = np.zeros((8, 8, 3), np.uint8)
    forgetting, careless = TeamClassifier(), TeamClassifier()
    largest = 0
    for frame in range(10_000 // 22 * 10):
        ids = [frame // 10 * 22 + i for i in range(22)]
        players = [(tid, (1.0, 1.0, 7.0, 7.0), 0.9) for tid in ids]
        for clf in (forgetting, careless):
            if clf.needs_pixels(ids, frame / FPS):
                clf.observe(image, players, frame / FPS)
        if frame % 10 == 9:
            forgetting.forget(ids)  # the tracker removed them
        largest = max(largest, forgetting.track_count)
    # then the forgetting one holds at most a frame's tracks, the careless one at most the cap
    assert largest <= 22
    assert careless.track_count <= MAX_TRACKS
