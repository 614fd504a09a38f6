"""Synthetic football scenes: ground truth and detections, to measure the tracker against.

A scene is a broadcast view (1920 x 1080 by default) of a pitch a little wider than the
view, so that people walk in and out of it: 22 players and a referee, whose boxes grow from
about 24 x 60 px at the far touchline to 40 x 100 px at the near one. Each runs after a
target velocity that changes every few seconds (standing, jogging, sprinting), with limits
on speed (8 m/s) and acceleration, so paths are smooth. Every ``crossing_every_s`` two
nearby people are sent running at each other and through each other: the hard case of
association. A ball is passed between players: straight lines that slow down, then
carried at a receiver's feet.

The detections are what a detector makes of it: boxes jittered; scores noisy, one in
seven low (a blurred or small player), and lower for people partly hidden behind someone
nearer the camera; misses at random (``miss_rate``), always for the one mostly hidden
behind another (a crossing), and for whole stretches (``hide_every_s``: a player behind a
graphic); false positives (``fp_rate`` a frame, most with low scores); the ball missed more
often, above all at a player's feet. In ``gaps`` mode stretches of frames are skipped, as a
live worker that falls behind skips them: neither their detections nor their ground truth
exist, and a tracker that assumes consecutive frames is wrong there.

Everything comes from one seeded :func:`numpy.random.default_rng`: a config is a scene.
``python -m bench.scenes --out DIR`` writes one as ``DIR/gt.txt`` and ``DIR/det.txt``
(formats: :mod:`tracker.mot`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracker.association import Box, Detected
from tracker.mot import CLASSES, PEDESTRIAN, MotRow

BALL_CLASS = 0  # pitchside's, in ground truth and detections: MOTChallenge has no ball class
PERSON_M = 1.8  # a box's height in metres: the scale from metres to pixels where it stands
MAX_SPEED_MS = 8.0
MAX_ACCEL_MS2 = 5.0
DEPTH = 0.5  # the broadcast camera's tilt: a metre towards it covers half the pixels of one across
MIN_SCORE = 0.25  # the workers report boxes from this score up


@dataclass(frozen=True, slots=True)
class SceneConfig:
    """What a scene is made of; the defaults are a match seen by a fair detector."""

    frames: int = 750
    fps: float = 25.0
    seed: int = 0
    players: int = 22
    referees: int = 1
    miss_rate: float = 0.07  # a visible person's detection missed, per frame
    fp_rate: float = 2.0  # false positives a frame, on average
    jitter_px: float = 1.5  # a box edge's noise, for a box 80 px tall
    crossing_every_s: float = 2.0  # two people sent through each other
    hide_every_s: float = 1.5  # someone hidden from the detector for 0.2-1 s
    ball: bool = True
    gaps: bool = False  # live mode: stretches of 1-5 frames skipped, about one a second
    width: int = 1920
    height: int = 1080


@dataclass(frozen=True, slots=True)
class Scene:
    """A generated scene: its ground truth and detections, frame by frame."""

    config: SceneConfig
    frames: list[int]  # the frames the detector saw, from 1 (every frame unless gaps)
    gt: list[MotRow]  # people (class 1), the ball (class 0, flag 0: not scored); seen frames
    detections: dict[int, list[Detected]]  # by seen frame; a frame may have none
    crossings: int  # times two people's boxes came to overlap by IoU 0.5 or more
    ball_id: int  # the ball's id in the ground truth

    def time_s(self, frame: int) -> float:
        """Frame ``frame``'s capture time in seconds."""
        return (frame - 1) / self.config.fps

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write ``gt.txt`` and ``det.txt`` into ``folder`` (made if need be); their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        gt, det = folder / "gt.txt", folder / "det.txt"
        gt.write_text("".join(_gt_line(r) for r in self.gt))
        lines = [_det_line(f, d) for f in self.frames for d in self.detections.get(f, [])]
        det.write_text("".join(lines))
        return gt, det


def generate(config: SceneConfig = SceneConfig()) -> Scene:
    """The scene of ``config``: the same config, the same scene."""
    rng = np.random.default_rng(config.seed)
    people = config.players + config.referees
    feet = _paths(config, rng, people)  # (frames, people, 2): x, y of the feet
    heights = _height(config, feet[..., 1])
    boxes = _boxes(feet, heights)
    ball = _ball(config, rng, feet, heights, config.players) if config.ball else None
    hidden = _hidden(config, rng, people)
    in_view = _in_view(config, boxes)
    gt: list[MotRow] = []
    detections: dict[int, list[Detected]] = {}
    for frame in range(1, config.frames + 1):  # every frame: a scene and its gaps twin agree
        t = frame - 1
        visible = np.flatnonzero(in_view[t])
        cover = _cover(boxes[t], visible)
        dets: list[Detected] = []
        for n, person in enumerate(visible):
            box = _clip(config, boxes[t, person])
            gt.append(MotRow(frame, int(person) + 1, box, 1.0, PEDESTRIAN, 1.0 - cover[n]))
            if hidden[t, person] or not _detected(rng, config.miss_rate, cover[n]):
                continue
            dets.append(_person_detection(config, rng, box, cover[n], _class(config, int(person))))
        dets.extend(_false_positives(config, rng))
        if ball is not None and _inside(config, ball[t]):
            box = _clip(config, ball[t])
            gt.append(MotRow(frame, people + 1, box, 0.0, BALL_CLASS, 1.0))
            near = bool(visible.size) and _overlaps(box, boxes[t, visible])
            if rng.random() > (0.55 if near else 0.15):
                dets.append(_ball_detection(rng, box))
        order = rng.permutation(len(dets))  # a detector's boxes come in no particular order
        detections[frame] = [dets[i] for i in order]
    frames = _seen_frames(config, np.random.default_rng([config.seed, 1]))
    if config.gaps:
        seen = set(frames)
        gt = [r for r in gt if r.frame in seen]
        detections = {f: d for f, d in detections.items() if f in seen}
    return Scene(config, frames, gt, detections, _crossings(boxes, in_view), people + 1)


# -- people's paths ----------------------------------------------------------------------------


def _pitch(config: SceneConfig) -> tuple[float, float, float, float]:
    """Where feet may be: a little wider than the view; the far touchline near its top."""
    return -0.06 * config.width, 0.3 * config.height, 1.06 * config.width, 0.97 * config.height


def _height(config: SceneConfig, y: np.ndarray) -> np.ndarray:
    """A person's box height in pixels, standing at feet height ``y``: 60 far, 100 near."""
    _, top, _, bottom = _pitch(config)
    scale = config.height / 1080
    return np.asarray(scale * (60 + 40 * (y - top) / (bottom - top)))


def _paths(config: SceneConfig, rng: np.random.Generator, people: int) -> np.ndarray:
    """Every person's feet, frame by frame: velocities chase targets within the limits."""
    x0, y0, x1, y1 = _pitch(config)
    dt = 1 / config.fps
    pos = np.column_stack([rng.uniform(x0, x1, people), rng.uniform(y0, y1, people)])
    vel = np.zeros((people, 2))  # m/s, x across, y towards the camera
    target = _targets(rng, people)
    until = rng.uniform(0.5, 4.0, people)  # seconds the target holds
    crossing_at = config.crossing_every_s
    out = np.empty((config.frames, people, 2))
    for t in range(config.frames):
        now = t * dt
        renew = until <= now
        if renew.any():
            target[renew] = _targets(rng, int(renew.sum()))
            until[renew] = now + rng.uniform(1.0, 4.0, int(renew.sum()))
        if config.crossing_every_s > 0 and now >= crossing_at:
            crossing_at += config.crossing_every_s * rng.uniform(0.5, 1.5)
            _send_through(config, rng, pos, target, until, now)
        # turn back towards the pitch at its edges
        target[:, 0] = np.where(pos[:, 0] < x0, abs(target[:, 0]), target[:, 0])
        target[:, 0] = np.where(pos[:, 0] > x1, -abs(target[:, 0]), target[:, 0])
        step = target - vel + rng.normal(0, 0.3, vel.shape)
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        vel += step * np.minimum(1.0, MAX_ACCEL_MS2 * dt / np.maximum(norm, 1e-9))
        speed = np.linalg.norm(vel, axis=1, keepdims=True)
        vel *= np.minimum(1.0, MAX_SPEED_MS / np.maximum(speed, 1e-9))
        px_per_m = _height(config, pos[:, 1])[:, None] / PERSON_M
        pos += vel * px_per_m * np.array([1.0, DEPTH]) * dt
        stopped = (pos[:, 1] < y0) | (pos[:, 1] > y1)  # a touchline: stop, turn back
        vel[stopped, 1] = 0
        target[stopped, 1] = np.where(pos[stopped, 1] < y0, 1, -1) * abs(target[stopped, 1])
        pos[:, 1] = np.clip(pos[:, 1], y0, y1)
        out[t] = pos
    return out


def _targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Target velocities in m/s: a third standing or walking, half jogging, the rest sprinting."""
    kind = rng.random(n)
    speed = np.where(
        kind < 0.3,
        rng.uniform(0, 1.5, n),
        np.where(kind < 0.8, rng.uniform(2, 4.5, n), rng.uniform(5, 8, n)),
    )
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([speed * np.cos(angle), speed * np.sin(angle)])


def _send_through(
    config: SceneConfig,
    rng: np.random.Generator,
    pos: np.ndarray,
    target: np.ndarray,
    until: np.ndarray,
    now: float,
) -> None:
    """Send the closest pair of two people at each other, to run through and past each other."""
    x0 = 0.1 * config.width
    inside = np.flatnonzero((pos[:, 0] > x0) & (pos[:, 0] < config.width - x0))
    if inside.size < 2:
        return
    a = int(rng.choice(inside))
    others = inside[inside != a]
    gaps = np.linalg.norm(pos[others] - pos[a], axis=1)
    b = int(others[np.argmin(gaps)])
    px_per_m = float(_height(config, pos[a, 1]) / PERSON_M)
    metres = (pos[b] - pos[a]) / (px_per_m * np.array([1.0, DEPTH]))
    distance = float(np.linalg.norm(metres))
    if distance < 1.0 or distance > 12.0:
        return
    speed = rng.uniform(3.0, 6.0)
    heading = metres / distance
    target[a], target[b] = heading * speed, -heading * speed
    meet_s = distance / (2 * speed)
    until[a] = until[b] = now + 2 * meet_s + 0.8  # well past each other


def _boxes(feet: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Boxes ``x1, y1, x2, y2`` standing on ``feet``: 0.4 times as wide as tall."""
    half = 0.2 * heights
    x, y = feet[..., 0], feet[..., 1]
    return np.stack([x - half, y - heights, x + half, y], axis=-1)


# -- the ball ----------------------------------------------------------------------------------


def _ball(
    config: SceneConfig,
    rng: np.random.Generator,
    feet: np.ndarray,
    heights: np.ndarray,
    players: int,
) -> np.ndarray:
    """The ball's box, frame by frame: carried by a player, then passed to another."""
    centres = np.empty((config.frames, 2))
    owner = int(rng.integers(players))
    t = 0
    while t < config.frames:
        hold = int(rng.uniform(0.4, 2.0) * config.fps)
        for u in range(t, min(t + hold, config.frames)):
            ahead = 0.25 * heights[u, owner] * np.sin(u / 3.0)  # dribbled in front of the feet
            centres[u] = feet[u, owner] + np.array([ahead, -0.05 * heights[u, owner]])
        t += hold
        if t >= config.frames:
            break
        receiver, flight = _pass(config, rng, feet, heights, owner, t, players)
        start, end = centres[t - 1], feet[min(t + flight, config.frames - 1), receiver]
        for k in range(1, flight + 1):
            if t + k - 1 >= config.frames:
                break
            part = k / flight
            done = (part - 0.3 * part * part) / 0.7  # slowing: from 1.4 times its mean speed to 0.6
            centres[t + k - 1] = start + (end - start) * done
        t += flight
        owner = receiver
    size = 0.16 * _height(config, centres[:, 1]) + rng.normal(0, 0.5, config.frames)
    half = np.clip(size, 8, 20)[:, None] / 2
    return np.concatenate([centres - half, centres + half], axis=1)


def _pass(
    config: SceneConfig,
    rng: np.random.Generator,
    feet: np.ndarray,
    heights: np.ndarray,
    owner: int,
    t: int,
    players: int,
) -> tuple[int, int]:
    """A receiver 5 to 30 m away (the nearest other player if none is) and the frames the
    pass takes."""
    px_per_m = float(heights[t, owner]) / PERSON_M
    metres = np.linalg.norm(feet[t, :players] - feet[t, owner], axis=1) / px_per_m
    candidates = np.flatnonzero((metres > 5) & (metres < 30))
    if candidates.size == 0:
        candidates = np.array([int(np.argsort(metres)[1])])
    receiver = int(rng.choice(candidates))
    speed = rng.uniform(8.0, 22.0)  # m/s, on average over the pass
    return receiver, max(2, round(float(metres[receiver]) / speed * config.fps))


# -- what the detector sees ------------------------------------------------------------------


def _seen_frames(config: SceneConfig, rng: np.random.Generator) -> list[int]:
    if not config.gaps:
        return list(range(1, config.frames + 1))
    seen, frame = [], 1
    while frame <= config.frames:
        seen.append(frame)
        frame += 1 + (int(rng.integers(1, 6)) if rng.random() < 1 / config.fps else 0)
    return seen


def _hidden(config: SceneConfig, rng: np.random.Generator, people: int) -> np.ndarray:
    """(frames, people): stretches when someone is hidden from the detector."""
    hidden = np.zeros((config.frames, people), dtype=bool)
    if config.hide_every_s <= 0:
        return hidden
    events = rng.poisson(config.frames / config.fps / config.hide_every_s)
    for _ in range(events):
        start = int(rng.integers(config.frames))
        length = int(rng.uniform(0.2, 1.0) * config.fps)
        hidden[start : start + length, int(rng.integers(people))] = True
    return hidden


def _in_view(config: SceneConfig, boxes: np.ndarray) -> np.ndarray:
    """(frames, people): at least 60 % of the box's width and height inside the picture."""
    x1, y1, x2, y2 = (boxes[..., k] for k in range(4))
    across = np.clip(x2, 0, config.width) - np.clip(x1, 0, config.width)
    down = np.clip(y2, 0, config.height) - np.clip(y1, 0, config.height)
    return np.asarray((across >= 0.6 * (x2 - x1)) & (down >= 0.6 * (y2 - y1)))


def _inside(config: SceneConfig, box: np.ndarray) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return bool(0 <= cx < config.width and 0 <= cy < config.height)


def _clip(config: SceneConfig, box: np.ndarray) -> Box:
    x1, y1, x2, y2 = (float(v) for v in box)
    return max(x1, 0.0), max(y1, 0.0), min(x2, float(config.width)), min(y2, float(config.height))


def _cover(boxes: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """For each visible box, the largest share of it behind one box nearer the camera."""
    b = boxes[visible]
    if b.shape[0] == 0:
        return np.zeros(0)
    w = np.clip(
        np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None
    )
    h = np.clip(
        np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None
    )
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    share = w * h / area[:, None]
    nearer = b[None, :, 3] > b[:, None, 3]  # feet lower in the picture: in front
    return np.asarray(np.where(nearer, share, 0.0).max(axis=1))


def _detected(rng: np.random.Generator, miss_rate: float, cover: float) -> bool:
    """Missed at random, more often the more hidden, and always when mostly hidden."""
    if cover > 0.65:
        return False
    return bool(rng.random() >= miss_rate + 0.6 * max(0.0, cover - 0.3))


def _class(config: SceneConfig, person: int) -> int:
    if person >= config.players:
        return CLASSES.index("referee")
    return CLASSES.index("goalkeeper") if person < 2 else CLASSES.index("player")


def _person_detection(
    config: SceneConfig, rng: np.random.Generator, box: Box, cover: float, cls: int
) -> Detected:
    height = box[3] - box[1]
    noisy = np.array(box) + rng.normal(0, config.jitter_px * height / 80, 4)
    # most boxes are sure; one in seven is blurred or small and comes out low
    sure = rng.random() >= 0.15
    raw = rng.normal(0.82, 0.08) if sure else rng.uniform(0.3, 0.55)
    score = float(np.clip(raw * (1 - 0.5 * cover), MIN_SCORE, 0.99))
    if cls == CLASSES.index("player") and rng.random() < 0.03:  # the detector's doubt
        cls = CLASSES.index("goalkeeper")
    return Detected(_box(noisy), score, cls, CLASSES[cls])


def _false_positives(config: SceneConfig, rng: np.random.Generator) -> list[Detected]:
    out = []
    for _ in range(rng.poisson(config.fp_rate)):
        x0, y0, x1, y1 = _pitch(config)
        x, y = rng.uniform(0, config.width), rng.uniform(y0, y1)
        height = float(_height(config, np.array(y))) * rng.uniform(0.5, 1.1)
        box = (x - 0.2 * height, y - height, x + 0.2 * height, y)
        cls = CLASSES.index("player")
        score = rng.uniform(MIN_SCORE, 0.5) if rng.random() >= 0.15 else rng.uniform(0.5, 0.7)
        out.append(Detected(box, float(score), cls, CLASSES[cls]))
    return out


def _ball_detection(rng: np.random.Generator, box: Box) -> Detected:
    noisy = np.array(box) + rng.normal(0, 1.0, 4)
    return Detected(_box(noisy), float(rng.uniform(0.3, 0.9)), BALL_CLASS, CLASSES[BALL_CLASS])


def _box(values: np.ndarray) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, max(x2, x1 + 1.0), max(y2, y1 + 1.0)


def _overlaps(box: Box, boxes: np.ndarray) -> bool:
    x1, y1, x2, y2 = box
    return bool(
        np.any((boxes[:, 0] < x2) & (boxes[:, 2] > x1) & (boxes[:, 1] < y2) & (boxes[:, 3] > y1))
    )


def _crossings(boxes: np.ndarray, in_view: np.ndarray) -> int:
    """How many times two people in view came to overlap by IoU 0.5 or more."""
    x1, y1, x2, y2 = (boxes[..., k] for k in range(4))
    w = np.clip(
        np.minimum(x2[:, :, None], x2[:, None, :]) - np.maximum(x1[:, :, None], x1[:, None, :]),
        0,
        None,
    )
    h = np.clip(
        np.minimum(y2[:, :, None], y2[:, None, :]) - np.maximum(y1[:, :, None], y1[:, None, :]),
        0,
        None,
    )
    area = (x2 - x1) * (y2 - y1)
    iou = w * h / (area[:, :, None] + area[:, None, :] - w * h)
    both = in_view[:, :, None] & in_view[:, None, :]
    close = np.triu((iou >= 0.5) & both, k=1)
    onsets = close[1:] & ~close[:-1]
    return int(onsets.sum() + close[0].sum())


# -- MOTChallenge lines ------------------------------------------------------------------------


def _gt_line(row: MotRow) -> str:
    x1, y1, x2, y2 = row.box
    return (
        f"{row.frame},{row.id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
        f"{row.flag:g},{row.cls},{row.visibility:.3f}\n"
    )


def _det_line(frame: int, det: Detected) -> str:
    x1, y1, x2, y2 = det.box
    box = f"{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f}"
    return f"{frame},-1,{box},{det.score:.4f},{det.cls},-1,-1\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.scenes --out DIR``: write one scene's ``gt.txt`` and ``det.txt``."""
    parser = argparse.ArgumentParser(prog="python -m bench.scenes", description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for gt.txt and det.txt")
    defaults = SceneConfig()
    parser.add_argument("--frames", type=int, default=defaults.frames)
    parser.add_argument("--fps", type=float, default=defaults.fps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--miss-rate", type=float, default=defaults.miss_rate)
    parser.add_argument("--fp-rate", type=float, default=defaults.fp_rate)
    parser.add_argument("--gaps", action="store_true", help="skip frames, as a live worker does")
    args = parser.parse_args(argv)
    config = SceneConfig(
        frames=args.frames, fps=args.fps, seed=args.seed, miss_rate=args.miss_rate,
        fp_rate=args.fp_rate, gaps=args.gaps,
    )  # fmt: skip
    scene = generate(config)
    gt, det = scene.write(args.out)
    print(f"{len(scene.frames)} frames, {scene.crossings} crossings: {gt}, {det}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
