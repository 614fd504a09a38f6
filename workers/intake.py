"""A worker's intake: which frames streams it reads, and which of their entries it batches next.

:class:`Intake` keeps the registry's streams and this worker's place in the ``workers``
group of each, and turns Redis replies into :class:`~workers.batch.Frame` objects:

- every ``REFRESH_S`` it re-reads the registry and joins the group on each new frames stream
  (one pipeline);
- once per stream, before anything new, it takes back the entries pending on its own name
  (``XREADGROUP ... 0``): a worker restarted under the same name (``pitchside up`` names
  them ``worker-N``) finishes what it read before it died, where ``>`` would never
  deliver those entries again;
- every ``claim_interval`` it takes over entries a dead worker left pending (``XAUTOCLAIM``);
  live ones are stale by then and only acknowledged;
- it reads with one ``XREADGROUP`` over all streams (on a Redis Cluster, one per hash slot:
  each stream's keys share its own slot);
- it applies the live skip policy (the newest entry per live stream is kept, the older ones
  are acknowledged at once and counted) and cuts the next batch from what it has read.

It remembers every entry it holds (read and not yet acknowledged), so that a claim never
returns one twice; whoever acknowledges an entry it handed out calls :meth:`Intake.release`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from pitchside import registry
from pitchside.redis_client import is_cluster, slot_groups
from pitchside.schema import (
    WORKERS_GROUP,
    Mode,
    StreamInfo,
    StreamState,
    frames_key,
    now_ns,
    sid_from_frames_key,
)
from pitchside.settings import Settings
from workers import metrics
from workers.batch import Frame, ids_by_key, round_robin
from workers.skip import newest_per_stream

log = logging.getLogger(__name__)

REFRESH_S = 0.5  # registry re-read period
LIVE_READ_COUNT = 64  # entries per live stream per read: more than a bounded stream holds
IDLE_WAIT_S = 0.1  # sleep between registry polls while no stream is active


class Intake:
    """The streams one worker consumes and the entries it holds.

    Args:
        settings: batch size and timeout, claim idle time.
        redis: a client on the bus, with ``decode_responses=False`` (frames hold bytes).
        name: this consumer's name in the ``workers`` group.
    """

    def __init__(self, settings: Settings, redis: Redis, name: str) -> None:
        self.settings = settings
        self.redis = redis
        self.name = name
        self.skipped = 0  # live frames acknowledged unprocessed (behind or stale)
        self._streams: dict[str, StreamInfo] = {}  # frames key -> registry entry
        self._grouped: set[str] = set()  # frames keys whose group this worker ensured
        self._recovered: set[str] = set()  # frames keys whose own pending entries were re-read
        self._recover_from: dict[str, str] = {}  # key -> last own pending id re-read so far
        self._backlog: list[Frame] = []  # read, not yet in a batch
        self._held: set[tuple[str, str]] = set()  # (key, id) read and not yet acknowledged
        self._next_refresh = 0.0
        self._next_claim = 0.0
        self._claim_interval_s = max(REFRESH_S, settings.claim_idle_ms / 2000)
        self._block_ms = max(1, int(settings.batch_timeout_ms))
        self._per_slot = is_cluster(redis)  # a cluster refuses one read over many slots

    @property
    def backlog(self) -> int:
        """Entries read and not yet handed out in a batch."""
        return len(self._backlog)

    def live_only(self) -> bool:
        """Every stream read now is live: freshness beats overlapping prepare and infer."""
        return all(info.mode == Mode.LIVE for info in self._streams.values())

    async def next_frames(self, stop: asyncio.Event) -> list[Frame]:
        """Refresh, claim, read and select: at most ``batch_max`` frames, [] for none.

        With no stream to read it waits ``IDLE_WAIT_S`` (or until ``stop``) first; with
        streams and nothing read, ``XREADGROUP`` blocks up to ``batch_timeout_ms``.
        """
        await self._refresh_streams()
        await self._recover_own()
        await self._claim_stale()
        if not self._streams and not self._backlog:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), IDLE_WAIT_S)
            return []
        await self._read()
        return await self._select()

    def lost_bus(self) -> None:
        """Redis went away: forget the read frames not batched yet (still pending on this
        consumer's name) and the groups joined; all is found again from the registry once
        Redis answers (a Redis that lost its data has new streams and groups)."""
        self.release(self._backlog)
        self._backlog = []
        self._grouped.clear()
        self._recovered.clear()
        self._recover_from.clear()
        self._next_refresh = 0.0

    def release(self, frames: Iterable[Frame]) -> None:
        """Forget entries that were acknowledged elsewhere (with their detections)."""
        self._held.difference_update((f.key, f.entry_id) for f in frames)

    # ---------------------------------------------------------------------------------------
    # Streams, reads, claims

    async def _refresh_streams(self) -> None:
        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + REFRESH_S
        infos = await registry.get_all(self.redis)
        metrics.STREAMS.keep_only({info.sid for info in infos})  # a deleted stream's series go
        # ENDED streams stay readable: an uploaded match keeps its unread frames to finish.
        streams = {
            frames_key(i.sid): i for i in infos if i.state.active or i.state is StreamState.ENDED
        }
        new = [key for key in streams if key not in self._grouped]
        if new:
            pipe = self.redis.pipeline(transaction=False)
            for key in new:
                pipe.xgroup_create(key, WORKERS_GROUP, id="0", mkstream=True)
            for key, result in zip(new, await pipe.execute(raise_on_error=False), strict=True):
                if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                    log.warning("cannot join group on %s: %s", key, result)
                    continue
                self._grouped.add(key)
        if streams.keys() != self._streams.keys():
            log.info("worker %s reads %d streams", self.name, len(streams))
        self._streams = streams
        self._grouped &= streams.keys()
        self._recovered &= self._grouped
        self._recover_from = {k: v for k, v in self._recover_from.items() if k in self._grouped}

    async def _read(self) -> None:
        """One XREADGROUP over the streams; new entries go to the backlog."""
        live = [k for k, i in self._streams.items() if i.mode is Mode.LIVE]
        analyse = [k for k, i in self._streams.items() if i.mode is Mode.ANALYSE]
        waiting = sum(1 for f in self._backlog if f.mode is Mode.ANALYSE)
        keys = live + (analyse if waiting < self.settings.batch_max else [])
        keys = [k for k in keys if k in self._grouped]
        if not keys:
            if not self._backlog:  # nothing to read or prepare: do not spin
                await asyncio.sleep(self._block_ms / 1000)
            return
        count = LIVE_READ_COUNT if live else self.settings.batch_max
        block = None if self._backlog else self._block_ms
        groups = slot_groups(keys) if self._per_slot else [keys]
        if len(groups) == 1:
            replies = [await self._read_group(groups[0], count, block)]
        else:
            # A cluster: one command per hash slot. Each looks without blocking, side by
            # side; only when none found anything does the intake wait, as a block would.
            replies = await asyncio.gather(*(self._read_group(g, count, None) for g in groups))
            if block and not any(replies):
                await asyncio.sleep(block / 1000)
        for reply in replies:
            self._add(reply)

    async def _read_group(self, keys: list[str], count: int, block: int | None) -> list[Any]:
        """One XREADGROUP over ``keys`` (of one hash slot, on a cluster): the reply's
        (key, entries) pairs; none when a stream lost its group (joined again soon)."""
        try:
            reply = await self.redis.xreadgroup(
                WORKERS_GROUP, self.name, {key: ">" for key in keys}, count=count, block=block
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("a frames stream lost its group, joining again: %s", exc)
            self._grouped.clear()
            self._recovered.clear()
            self._next_refresh = 0.0
            return []
        return list(reply.items() if isinstance(reply, dict) else reply or [])

    def _add(self, reply: Iterable[Any]) -> None:
        dequeue_ns = now_ns()
        for raw_key, entries in reply:
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            info = self._streams.get(key)
            mode = info.mode if info is not None else Mode.ANALYSE  # unknown: never skip
            for raw_id, fields in entries:
                if raw_id is None:  # deleted while pending: nothing to process or acknowledge
                    continue
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                if (key, entry_id) in self._held:
                    continue
                self._held.add((key, entry_id))
                sid = sid_from_frames_key(key)
                job = info.job if info is not None else None
                self._backlog.append(Frame(key, sid, entry_id, mode, fields or {}, dequeue_ns, job))

    async def _recover_own(self) -> None:
        """Re-read, a page at a time, what is pending on this consumer's own name in each
        stream not recovered yet; a stream is recovered once a page comes back empty.

        Analyse entries join the backlog (while it has room for a batch); live ones are
        stale and only acknowledged, as claimed ones are.
        """
        keys = [k for k in self._streams if k in self._grouped and k not in self._recovered]
        stale: list[Frame] = []
        for key in keys:
            info = self._streams[key]
            if info.mode is Mode.ANALYSE and self.backlog >= self.settings.batch_max:
                continue  # the next call goes on from here
            cursor = self._recover_from.get(key, "0-0")
            reply = await self.redis.xreadgroup(
                WORKERS_GROUP, self.name, {key: cursor}, count=self.settings.batch_max
            )
            entries = [e for _, es in (reply.items() if isinstance(reply, dict) else reply or [])
                       for e in es]  # fmt: skip
            if not entries:
                self._recovered.add(key)
                self._recover_from.pop(key, None)
                continue
            last = entries[-1][0]
            self._recover_from[key] = last.decode() if isinstance(last, bytes) else str(last)
            stale += self._take_over(key, info, entries, "took back", "pending on its name")
        await self._ack_stale(stale)

    async def _claim_stale(self) -> None:
        """Take over entries idle for ``claim_idle_ms`` in another consumer's pending list.

        Analyse entries join the backlog; live ones are stale by then and are only
        acknowledged (counted as skipped, reason ``stale``).
        """
        now = time.monotonic()
        if now < self._next_claim:
            return
        self._next_claim = now + self._claim_interval_s
        stale: list[Frame] = []
        for key, info in list(self._streams.items()):
            if key not in self._grouped:
                continue
            reply = await self.redis.xautoclaim(
                key,
                WORKERS_GROUP,
                self.name,
                min_idle_time=self.settings.claim_idle_ms,
                start_id="0-0",
                count=self.settings.batch_max if info.mode is Mode.ANALYSE else LIVE_READ_COUNT,
            )
            stale += self._take_over(key, info, reply[1], "claimed", "idle in another consumer")
        await self._ack_stale(stale)

    def _take_over(
        self, key: str, info: StreamInfo, entries: Any, verb: str, what: str
    ) -> list[Frame]:
        """Add entries read again (recovered or claimed) to the backlog, but for those of a
        live stream: stale by now, they are returned, to be acknowledged unprocessed."""
        before = len(self._backlog)
        self._add([(key, entries)])  # entries this worker already holds are left out
        if len(self._backlog) == before:
            return []
        log.info(
            "worker %s %s %d entries of %s (%s)",
            self.name, verb, len(self._backlog) - before, key, what,
        )  # fmt: skip
        if info.mode is not Mode.LIVE:
            return []
        stale = self._backlog[before:]
        del self._backlog[before:]
        return stale

    async def _ack_stale(self, stale: list[Frame]) -> None:
        if stale:
            await self._ack(stale)
            self._count_skipped(stale, metrics.REASON_STALE)

    # ---------------------------------------------------------------------------------------
    # Selection

    async def _select(self) -> list[Frame]:
        """Apply the live skip policy and cut the next batch from the backlog."""
        live = [f for f in self._backlog if f.mode is Mode.LIVE]
        analyse = [f for f in self._backlog if f.mode is not Mode.LIVE]
        keep, skipped = newest_per_stream((f.key, [(f.entry_id, f)]) for f in live)
        if skipped:
            behind = [frame for entries in skipped.values() for _, frame in entries]
            await self._ack(behind)
            self._count_skipped(behind, metrics.REASON_BEHIND)
        newest = sorted((frame for _, frame in keep.values()), key=lambda f: f.dequeue_ns)
        ordered = newest + round_robin(analyse)
        n = self.settings.batch_max
        self._backlog = ordered[n:]
        return ordered[:n]

    async def _ack(self, frames: Sequence[Frame]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key, ids in ids_by_key(frames).items():
            pipe.xack(key, WORKERS_GROUP, *ids)
        await pipe.execute()
        self.release(frames)

    def _count_skipped(self, frames: Sequence[Frame], reason: str) -> None:
        self.skipped += len(frames)
        metrics.dropped((f.sid for f in frames), reason)
