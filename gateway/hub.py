"""Fan-out of each stream's detections, with their JPEGs, to every viewer of that stream.

One reader task per stream that has viewers (started by the first, cancelled when the last
leaves) does ``XREAD BLOCK`` on the stream's dets, fetches the frames those detections belong
to with one pipelined ``XRANGE`` per batch, builds each outgoing message once and offers it to
every viewer. Each viewer holds a small bounded queue: a slow browser loses its own oldest
messages and never slows the reader or the other viewers (the idea of aiortc's ``MediaRelay``
with ``buffered=False``, widened to a few messages). The same task polls the registry and
closes the viewers when the stream ends, fails, stops or is deleted. Each message carries its
frame's capture time, so that the sender can observe the end-to-end latency as it sends. The
reader notes the ``seq`` of every detection it reads in its stream's
:class:`~gateway.stats.StreamStats`, and each viewer its drops in its own
:class:`~gateway.stats.ViewerStats` (the sender adds what it sent).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from gateway import protocol
from gateway.metrics import BAD_MESSAGE, FRAME_TRIMMED, SLOW_CLIENT, Metrics
from gateway.stats import StreamStats, ViewerStats
from pitchside import registry
from pitchside.backoff import Backoff
from pitchside.bus import RESTORE_GRACE_S
from pitchside.errors import SchemaError, StreamNotFoundError
from pitchside.redis_client import Entry, stream_entries
from pitchside.schema import (
    DetsMsg,
    FrameMsg,
    StreamState,
    TracksMsg,
    dets_key,
    frames_key,
    now_ns,
    tracks_key,
)

log = logging.getLogger(__name__)

REGISTRY_POLL_S = 0.5  # how often a reader looks at its stream's registry entry
XREAD_COUNT = 32  # dets entries per XREAD at most
ENDED_IDLE_S = 1.0  # after "ended", deliver what still arrives until the dets are this idle
ENDED_LINGER_S = 10.0  # ... but no longer than this
#: A stream is taken as tracked this long after its last tracks entry (longer than a tracker's
#: lease, so that a takeover is covered): meanwhile each frame's detections wait for its tracks
#: up to TRACKS_WAIT_S, then go out bare. So a tracker that dies costs a viewer that much
#: latency until another one takes over, never a frozen picture; an untracked stream's frames
#: never wait.
TRACKED_FOR_S = 10.0
TRACKS_WAIT_S = 0.3  # the tracker's own stage takes a few ms, its reorder wait 80 ms at most
DELETED = "deleted"  # the state a viewer is told when the registry entry disappears
RETRY_FIRST_S, RETRY_CAP_S = 0.5, 10.0  # waiting for Redis to answer again

M = TypeVar("M")
Fields = Mapping[bytes, bytes]

Payload = bytes | str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One frame message, built once per stream and shared by all its viewers."""

    text: str  # the meta JSON, sent alone to ?frames=0 viewers
    binary: bytes | None  # header + meta + JPEG; None when no viewer wants it or the JPEG is gone
    ts_capture: int = 0  # epoch ns; 0: unknown


@dataclass(frozen=True, slots=True)
class Queued:
    """One message in a viewer's queue, and the capture time of its frame (epoch ns, 0: none)."""

    payload: Payload
    ts_capture: int = 0


@dataclass(frozen=True, slots=True)
class Closing:
    """Tells a viewer's sender to send ``event`` (if any), then close with ``code``/``reason``."""

    code: int
    reason: str
    event: str | None = None


class Viewer:
    """One WebSocket's bounded queue: a deque that drops its oldest item, and a wake-up event.

    Args:
        sid: the stream viewed.
        frames: whether this viewer gets binary messages (True) or the meta JSON alone.
        maxlen: messages held before the oldest is dropped (``settings.ws_queue``).
        on_drop: called once for every message dropped because the viewer fell behind.
        stats: where its drops go, and its sender notes what it sent (default: stats of its
            own, as if it were its stream's only viewer).
    """

    def __init__(
        self,
        sid: str,
        *,
        frames: bool,
        maxlen: int,
        on_drop: Callable[[], None] | None = None,
        stats: ViewerStats | None = None,
    ) -> None:
        self.sid = sid
        self.frames = frames
        self.dropped = 0
        self.stats = stats if stats is not None else ViewerStats(StreamStats())
        self._queue: deque[Queued] = deque(maxlen=maxlen)
        self._ready = asyncio.Event()
        self._closing: Closing | None = None
        self._on_drop = on_drop

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> Closing | None:
        return self._closing

    def put(self, payload: Payload, ts_capture: int = 0) -> None:
        """Queue ``payload``; when the queue is full its oldest item is dropped and counted."""
        if self._closing is not None:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            self.stats.dropped(SLOW_CLIENT)
            if self._on_drop is not None:
                self._on_drop()
        self._queue.append(Queued(payload, ts_capture))
        self._ready.set()

    def offer(self, message: Outgoing) -> None:
        """Queue the form of ``message`` this viewer asked for, if there is one."""
        payload = message.binary if self.frames else message.text
        if payload is not None:
            self.put(payload, message.ts_capture)
        elif self._closing is None:
            self.stats.dropped(FRAME_TRIMMED)

    def finish(self, closing: Closing) -> None:
        """Close after the queued messages; the first call wins."""
        if self._closing is None:
            self._closing = closing
            self._ready.set()

    async def get(self) -> Queued | Closing:
        """The oldest queued message, else the Closing once finished; waits for either."""
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closing is not None:
                return self._closing
            self._ready.clear()
            await self._ready.wait()


@dataclass(eq=False, slots=True)
class _Feed:
    sid: str
    viewers: set[Viewer] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    stats: StreamStats = field(default_factory=StreamStats)
    warned: bool = False  # about a malformed dets entry: once per feed is enough
    tracked_until: float = 0.0  # loop time until which its frames wait for their tracks
    held: dict[int, tuple[DetsMsg, float]] = field(default_factory=dict)  # seq -> (dets, until)
    last_seq: int = -1  # of the last frame handed to its viewers: never one older again
    missing_since: float | None = None  # loop time its registry entry was first found gone


class Hub:
    """Every stream's reader and viewers. Use ``async with Hub(...) as hub``.

    Args:
        redis: client with ``decode_responses=False`` (JPEGs are bytes).
        metrics: where drops, latency and viewer counts go.
        queue_size: each viewer's queue length (``settings.ws_queue``).
    """

    def __init__(self, redis: Redis, metrics: Metrics, *, queue_size: int) -> None:
        self._redis = redis
        self._metrics = metrics
        self._queue_size = queue_size
        self._feeds: dict[str, _Feed] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Hub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def subscribe(self, sid: str, *, frames: bool) -> Viewer:
        """A new viewer of ``sid``; every dets entry written after this returns reaches it.

        Raises:
            RedisError: Redis did not answer while starting the stream's reader.
        """
        async with self._lock:
            feed = self._feeds.get(sid)
            if feed is None:
                start_ids = await self._newest_ids(sid)
                feed = _Feed(sid)
                feed.task = asyncio.create_task(self._run(feed, start_ids), name=f"hub:{sid}")
                self._feeds[sid] = feed
                self._metrics.feeds.inc()
            viewer = Viewer(
                sid, frames=frames, maxlen=self._queue_size,
                on_drop=lambda: self._metrics.dropped(sid, SLOW_CLIENT),
                stats=ViewerStats(feed.stats),
            )  # fmt: skip
            feed.viewers.add(viewer)
            return viewer

    async def unsubscribe(self, viewer: Viewer) -> None:
        """Forget ``viewer``; the stream's reader stops with its last viewer."""
        async with self._lock:
            feed = self._feeds.get(viewer.sid)
            if feed is None or viewer not in feed.viewers:
                return
            feed.viewers.discard(viewer)
            if feed.viewers:
                return
            self._drop_feed(feed)
        await _cancel(feed.task)

    async def close_stream(self, sid: str, state: str, error: str | None = None) -> int:
        """Send every viewer of ``sid`` the state event and close them; returns how many."""
        async with self._lock:
            feed = self._feeds.get(sid)
            if feed is None:
                return 0
            self._drop_feed(feed)
            self._finish(feed, _state_closing(sid, state, error))
        await _cancel(feed.task)
        return len(feed.viewers)

    async def aclose(self) -> None:
        """Close every viewer (1001) and stop every reader."""
        async with self._lock:
            feeds = list(self._feeds.values())
            for feed in feeds:
                self._drop_feed(feed)
                self._finish(feed, Closing(protocol.CLOSE_GOING_AWAY, "gateway shutting down"))
        for feed in feeds:
            await _cancel(feed.task)

    # ---------------------------------------------------------------- the reader of one stream

    async def _run(self, feed: _Feed, last_ids: dict[str, bytes]) -> None:
        loop = asyncio.get_running_loop()
        check_at = loop.time()
        ended: tuple[str, str | None] | None = None
        linger_until = 0.0
        retries = Backoff(RETRY_FIRST_S, RETRY_CAP_S)
        try:
            while True:
                try:
                    if ended is None and loop.time() >= check_at:
                        check_at = loop.time() + REGISTRY_POLL_S
                        over = await self._stream_over(feed)
                        if over is not None and over[0] != StreamState.ENDED:
                            self._finish(feed, _state_closing(feed.sid, *over))
                            return
                        if over is not None:
                            ended, linger_until = over, loop.time() + ENDED_LINGER_S
                    if ended is not None:
                        block_ms = int(ENDED_IDLE_S * 1000)
                    else:
                        block_ms = max(1, int((check_at - loop.time()) * 1000))
                    if feed.held:  # wake up when the first held frame is due
                        due = min(until for _, until in feed.held.values())
                        block_ms = max(1, min(block_ms, int((due - loop.time()) * 1000) + 1))
                    streams = cast(dict[KeyT, StreamIdT], dict(last_ids))
                    reply = await self._redis.xread(
                        streams, count=XREAD_COUNT, block=block_ms
                    )  # both keys share the stream's hash slot
                    retries.reset()
                    read = {_text(key): batch for key, batch in stream_entries(reply) if batch}
                    for key, batch in read.items():
                        last_ids[key] = batch[-1][0]
                    entries = [e for batch in read.values() for e in batch]
                    if entries or feed.held:
                        tracks = read.get(tracks_key(feed.sid), [])
                        await self._deliver(feed, read.get(dets_key(feed.sid), []), tracks)
                    if ended is not None and (not entries or loop.time() > linger_until):
                        self._finish(feed, _state_closing(feed.sid, *ended))
                        return
                except RedisError as exc:
                    delay = retries.next_s()
                    log.warning(
                        "stream %s: reading Redis failed (%s); retrying in %.1f s",
                        feed.sid, exc, delay, extra={"sid": feed.sid},
                    )  # fmt: skip
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream %s: the reader failed", feed.sid, extra={"sid": feed.sid})
            self._finish(feed, Closing(protocol.CLOSE_INTERNAL, "gateway error"))
        finally:
            if self._feeds.get(feed.sid) is feed:
                self._drop_feed(feed)

    async def _deliver(
        self, feed: _Feed, dets_entries: list[Entry], tracks_entries: list[Entry]
    ) -> None:
        """Hand the frames read to the viewers, in ``seq`` order: with their tracks, or, when
        those do not come in time (or the stream is not tracked), the bare detections."""
        tracked = [
            t for t in (self._parse(feed, TracksMsg.from_fields, f) for _, f in tracks_entries) if t
        ]
        detected = [
            d for d in (self._parse(feed, DetsMsg.from_fields, f) for _, f in dets_entries) if d
        ]
        for dets in detected:
            feed.stats.detected(dets.seq)
        now = asyncio.get_running_loop().time()
        frames: list[tuple[DetsMsg, TracksMsg | None]] = [(t.dets, t) for t in tracked]
        if tracked:
            feed.tracked_until = now + TRACKED_FOR_S
            for t in tracked:
                feed.held.pop(t.dets.seq, None)
        if now < feed.tracked_until:
            feed.held.update((d.seq, (d, now + TRACKS_WAIT_S)) for d in detected)
        else:
            frames += [(d, None) for d in detected]
        newest_tracked = max((t.dets.seq for t in tracked), default=-1)
        for seq, (dets, until) in list(feed.held.items()):
            # due, or passed by a tracked frame (the tracker skipped it): it goes out bare
            if until <= now or seq < newest_tracked or seq <= feed.last_seq:
                del feed.held[seq]
                frames.append((dets, None))
        frames = sorted((f for f in frames if f[0].seq > feed.last_seq), key=lambda f: f[0].seq)
        if not frames:
            return
        feed.last_seq = frames[-1][0].seq
        want_frames = any(v.frames for v in feed.viewers)
        batch = [dets for dets, _ in frames]
        jpegs = await self._fetch_jpegs(feed.sid, batch) if want_frames else [None] * len(batch)
        for (dets, tracks), jpeg in zip(frames, jpegs, strict=True):
            if want_frames and jpeg is None:
                self._metrics.dropped(feed.sid, FRAME_TRIMMED)
            message = self._build(feed.sid, dets, jpeg, tracks)
            for viewer in tuple(feed.viewers):
                viewer.offer(message)
            await asyncio.sleep(0)  # let the viewers' senders run between messages of a batch

    def _parse(self, feed: _Feed, parse: Callable[[Fields], M], fields: Fields) -> M | None:
        """One entry as a message; None (counted, warned of once) if it is not one."""
        try:
            return parse(fields)
        except SchemaError as exc:
            self._metrics.dropped(feed.sid, BAD_MESSAGE)
            if not feed.warned:
                feed.warned = True
                log.warning(
                    "stream %s: skipping an entry: %s", feed.sid, exc, extra={"sid": feed.sid}
                )
            return None

    async def _fetch_jpegs(self, sid: str, batch: list[DetsMsg]) -> list[bytes | None]:
        key = frames_key(sid)
        async with self._redis.pipeline(transaction=False) as pipe:
            for dets in batch:
                pipe.xrange(key, min=dets.frame_id, max=dets.frame_id, count=1)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        jpegs: list[bytes | None] = []
        for found in results:
            if isinstance(found, Exception) or not found:
                jpegs.append(None)  # trimmed already, or a frame_id that is no entry id
                continue
            try:
                jpegs.append(FrameMsg.from_fields(found[0][1]).img)
            except SchemaError:
                jpegs.append(None)
        return jpegs

    def _build(
        self, sid: str, dets: DetsMsg, jpeg: bytes | None, tracks: TracksMsg | None = None
    ) -> Outgoing:
        sent_ns = now_ns()
        text = protocol.encode_text(protocol.frame_meta(sid, dets, sent_ns, tracks))
        binary = protocol.encode_binary(text, jpeg) if jpeg is not None else None
        self._metrics.handed(sid, dets, sent_ns)
        return Outgoing(text=text, binary=binary, ts_capture=dets.ts_capture)

    async def _newest_ids(self, sid: str) -> dict[str, bytes]:
        """Where a new reader of ``sid`` starts: after the newest detections and tracks."""
        ids = {}
        for key in (dets_key(sid), tracks_key(sid)):
            newest = cast(list[Entry], await self._redis.xrevrange(key, count=1))
            ids[key] = newest[0][0] if newest else b"0-0"
        return ids

    async def _stream_over(self, feed: _Feed) -> tuple[str, str | None] | None:
        """(state, error) once the stream is no longer active or is gone, else None.

        A stream whose entry vanished is gone once it stays away ``RESTORE_GRACE_S``: Redis
        may have lost its data, and its ingest writes it again (a DELETE through this
        gateway closes its viewers at once, :meth:`close_stream`)."""
        try:
            info = await registry.get(self._redis, feed.sid)
        except StreamNotFoundError:
            now = asyncio.get_running_loop().time()
            feed.missing_since = feed.missing_since or now
            return (DELETED, None) if now - feed.missing_since >= RESTORE_GRACE_S else None
        except SchemaError:
            return None  # a writer's bad entry is not the end of the stream
        feed.missing_since = None
        return None if info.state.active else (info.state.value, info.error)

    # ---------------------------------------------------------------- helpers

    def _drop_feed(self, feed: _Feed) -> None:
        if self._feeds.pop(feed.sid, None) is not None:
            self._metrics.feeds.dec()

    @staticmethod
    def _finish(feed: _Feed, closing: Closing) -> None:
        for viewer in feed.viewers:
            viewer.finish(closing)


def _state_closing(sid: str, state: str, error: str | None) -> Closing:
    return Closing(
        protocol.CLOSE_NORMAL,
        protocol.close_reason(f"stream {state}"),
        protocol.state_event(sid, state, error),
    )


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled ourselves, not only the task we cancelled
