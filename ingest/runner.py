"""One stream's life: decode, encode, pace, publish, and report its state in the registry.

States (``pitchside.schema.StreamState``): the service writes CONNECTING when it accepts a
stream; the runner writes LIVE at the first published frame (with fps and the published JPEG
size), updates the frame count about once a second, and ends in ENDED (a file without loop ran
out), FAILED (decoding failed, or the no-frames watchdog fired: no frame from the source for
``watchdog_s``) or STOPPED (its ``stop`` event was set, or it was cancelled).

A camera (a kind that reconnects, see :mod:`ingest.sources`) that drops out, goes silent for
``watchdog_s`` or ends its stream is RECONNECTING instead, with the reason in ``error`` and
``reconnects`` counted: it is opened again after a capped, jittered exponential backoff
(:mod:`pitchside.backoff`) until it delivers frames again (LIVE), a final error (a 401, a 404)
makes it FAILED, or it is stopped. Its media time keeps increasing across reconnects, and its
frames are published as they arrive rather than paced from their timestamps.

Redis going away does not end a stream either (see :mod:`ingest.publisher` for its frames):
a registry write that fails is written whole at the next one, the final state is written
once Redis is back, and an analyse stream that ran out stays until the workers have finished
its frames (:meth:`~ingest.publisher.FramePublisher.drain`), so that frames Redis loses
meanwhile are published again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from ingest import metrics
from ingest.encode import JpegEncoder
from ingest.pacing import Pacer
from ingest.publisher import DROPPED, FramePublisher
from ingest.sources import DecodedFrame, MediaClock, Source, SourceInfo, SourceSpec, open_source
from pitchside import registry
from pitchside.backoff import Backoff
from pitchside.bus import BUS_ERRORS, BusWait
from pitchside.errors import NoFramesError, SourceError
from pitchside.schema import FrameMsg, Mode, StreamInfo, StreamState
from pitchside.settings import Settings

log = logging.getLogger(__name__)

REGISTRY_EVERY_S = 1.0  # how often the frame count in the registry is refreshed


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    """A frame ready to publish, made on the decode thread."""

    jpeg: bytes
    width: int
    height: int
    pts_ns: int
    decoded_ns: int


class _Stopped:
    """Marker: the stop event was set while waiting for a frame."""


_STOPPED = _Stopped()


class StreamRunner:
    """Runs one stream from its source to its frames stream until it ends, fails or stops.

    Set :attr:`stop` to stop it; :meth:`run` then writes STOPPED and returns.
    """

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        info: StreamInfo,
        spec: SourceSpec,
        probed: SourceInfo | None = None,
        *,
        watchdog_s: float | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Create the runner of one accepted stream.

        Args:
            redis: client of the bus.
            settings: ``jpeg_quality``, ``max_width``, ``frames_maxlen``, ``analyse_max_lag``,
                ``watchdog_s``, ``reconnect_initial_s`` and ``reconnect_max_s``.
            info: the registry entry (source already redacted); updated in place.
            spec: the parsed source, unredacted inside (never logged).
            probed: what the probe found (None: the camera did not answer yet); its fps goes
                into the registry.
            watchdog_s: no frame from the source this long is a drop-out (default
                ``settings.watchdog_s``).
            backoff: the delays between reconnections (default from the settings).
        """
        self.stop = asyncio.Event()
        self.info = info
        self._redis = redis
        self._settings = settings
        self._spec = spec
        self._probed = probed
        self._watchdog_s = settings.watchdog_s if watchdog_s is None else watchdog_s
        self._backoff = backoff or Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)
        self._seq = 0
        self._encoder = JpegEncoder(settings.jpeg_quality, settings.max_width)
        self._log_extra = {"sid": info.sid}
        self._registry_at = 0.0  # monotonic time of the last registry write of the count
        self.publisher = FramePublisher(redis, info.sid, settings, info.mode, self.stop)
        self._bus = BusWait(f"stream {info.sid}")

    @property
    def sid(self) -> str:
        return self.info.sid

    async def run(self) -> StreamState:
        """Run the stream to its end and record the final state in the registry.

        Returns:
            The final state: ENDED, FAILED or STOPPED. Never raises except on cancellation
            (after writing STOPPED).
        """
        metrics.STREAMS_ACTIVE.inc()
        state, error, recorded = StreamState.STOPPED, None, False
        try:
            await self._until_redis_answers(self.publisher.start)
            state = await self._pump()
            if state is StreamState.ENDED and self.info.mode is Mode.ANALYSE:
                # Its frame count is final: say so, then stay until its frames are detected.
                await self._finish(state, error)
                recorded = True
                await self.publisher.drain()
        except SourceError as exc:  # NoFramesError too: the watchdog fired
            state, error = StreamState.FAILED, str(exc)
        except asyncio.CancelledError:
            state = StreamState.STOPPED
            raise
        except Exception as exc:  # one stream's failure must not disturb the others
            log.exception("stream %s crashed", self.sid, extra=self._log_extra)
            state, error = StreamState.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            metrics.STREAMS_ACTIVE.dec()
            if not recorded:
                await self._finish(state, error)
        return state

    async def _until_redis_answers(self, command: Callable[[], Awaitable[None]]) -> None:
        """Run ``command``, again after each backoff while Redis is away (until stopped)."""
        while True:
            try:
                await command()
            except BUS_ERRORS as exc:
                if self.stop.is_set():
                    raise
                await self._bus.pause(exc, self.stop)
                continue
            self._bus.back()
            return

    async def _pump(self) -> StreamState:
        """Open the source, and again after each drop-out of a camera, until it is over."""
        publisher = self.publisher
        pacer = Pacer()
        clock = MediaClock()
        stop_wait = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set():
                delivered = self._seq
                try:
                    state = await self._connection(publisher, pacer, clock, stop_wait)
                except SourceError as exc:  # NoFramesError too: the watchdog fired
                    if not (self._spec.kind.reconnects and exc.retryable):
                        raise
                    reason = str(exc)
                else:
                    if state is not StreamState.ENDED or not self._spec.kind.reconnects:
                        return state
                    reason = f"{self._spec.shown} ended its stream"
                if self._seq > delivered:  # that connection worked: start the backoff over
                    self._backoff.reset()
                delay_s = self._backoff.next_s()
                await self._reconnecting(reason, delay_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay_s)
        finally:
            stop_wait.cancel()
        return StreamState.STOPPED

    async def _connection(
        self,
        publisher: FramePublisher,
        pacer: Pacer,
        clock: MediaClock,
        stop_wait: asyncio.Future[Literal[True]],
    ) -> StreamState:
        """Publish the frames of one opening of the source: ENDED at its end, STOPPED on stop.

        Raises:
            SourceError: the source failed, or gave no frame for ``watchdog_s``.
        """
        source = open_source(self._spec, self._prepare, clock, sid=self.sid)
        async with source:
            progress_at = time.monotonic()
            while not self.stop.is_set():
                remaining = progress_at + self._watchdog_s - time.monotonic()
                frame = await self._next(source, stop_wait, remaining)
                if frame is None:
                    return StreamState.ENDED
                if isinstance(frame, _Stopped):
                    break
                ts_capture = await self._capture_time(pacer, frame)
                if ts_capture is None:
                    break
                msg = FrameMsg(
                    seq=self._seq,
                    pts_ns=frame.pts_ns,
                    ts_capture=ts_capture,
                    ts_publish=0,  # stamped by the publisher just before XADD
                    w=frame.width,
                    h=frame.height,
                    img=frame.jpeg,
                )
                entry_id = await publisher.publish(msg)
                if entry_id is None:
                    break
                progress_at = time.monotonic()
                if entry_id == DROPPED:  # Redis is away (live): the next frame may go
                    continue
                self._seq += 1
                await self._published(self._seq, frame)
        return StreamState.STOPPED

    async def _reconnecting(self, reason: str, delay_s: float) -> None:
        self.info.state, self.info.error = StreamState.RECONNECTING, reason
        self.info.reconnects += 1
        metrics.reconnected(self.sid)
        log.warning(
            "stream %s dropped out (%s); reconnecting in %.1f s (attempt %d)",
            self.sid, reason, delay_s, self._backoff.attempts, extra=self._log_extra,
        )  # fmt: skip
        await self._record()

    async def _next(
        self,
        source: Source[PreparedFrame],
        stop_wait: asyncio.Future[Literal[True]],
        timeout_s: float,
    ) -> PreparedFrame | None | _Stopped:
        """The next frame, None at the end, _STOPPED on stop; NoFramesError on the deadline."""
        if source.ready and not self.stop.is_set():  # the usual case: the decoder is ahead
            return await source.get()
        getter = asyncio.ensure_future(source.get())
        waiting: set[asyncio.Future[Any]] = {getter, stop_wait}
        done, _ = await asyncio.wait(
            waiting, timeout=max(timeout_s, 0.0), return_when=asyncio.FIRST_COMPLETED
        )
        if getter in done:
            return getter.result()
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        if stop_wait in done:
            return _STOPPED
        raise NoFramesError(f"no frame from the source for {self._watchdog_s:g} s")

    async def _capture_time(self, pacer: Pacer, frame: PreparedFrame) -> int | None:
        """``ts_capture`` of ``frame``: when it was decoded (analyse) or due (live, after
        waiting for it); None when the stream was stopped while waiting."""
        if self.info.mode is Mode.LIVE and not self._spec.kind.realtime:
            return await self._wait_until_due(pacer, frame.pts_ns)
        return frame.decoded_ns  # analyse mode, or a camera: as the frame arrived

    async def _published(self, count: int, frame: PreparedFrame) -> None:
        """Count a published frame; LIVE at the first, the registry's count about once a second."""
        metrics.published(self.sid, len(frame.jpeg))
        self.info.frames = count
        if (
            self.info.state is not StreamState.LIVE
        ):  # the first frame, or the first after a drop-out
            await self._went_live(frame)
        elif time.monotonic() - self._registry_at < REGISTRY_EVERY_S:
            return
        await self._record()
        self._registry_at = time.monotonic()

    async def _wait_until_due(self, pacer: Pacer, pts_ns: int) -> int | None:
        """Sleep until the frame is due; its epoch-ns due time, or None if stopped meanwhile.

        A frame that is already due (the decoder ran late, within the pacer's tolerance) is
        not delayed, and its due time stays in the past: latency measured from ``ts_capture``
        includes the lateness of ingest.
        """
        mono_ns = time.monotonic_ns()
        delay_ns = pacer.due(pts_ns, mono_ns) - mono_ns
        ts_capture = time.time_ns() + delay_ns
        if delay_ns > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay_ns / 1e9)
            if self.stop.is_set():
                return None
        return ts_capture

    async def _went_live(self, frame: PreparedFrame) -> None:
        self.info.state = StreamState.LIVE
        self.info.width, self.info.height = frame.width, frame.height
        if self._probed is not None and self._probed.fps:
            self.info.fps = round(self._probed.fps, 3)
        log.info(
            "stream %s live: %dx%d at %s fps (%s)",
            self.sid, frame.width, frame.height, self.info.fps, self.info.mode.value,
            extra=self._log_extra,
        )  # fmt: skip

    async def _finish(self, state: StreamState, error: str | None) -> None:
        self.info.state, self.info.error = state, error
        if state is StreamState.FAILED:
            log.warning("stream %s failed: %s", self.sid, error, extra=self._log_extra)
        else:
            log.info(
                "stream %s %s after %d frames",
                self.sid, state.value, self.info.frames, extra=self._log_extra,
            )  # fmt: skip
        # Whoever follows the stream (a job) needs its end: wait for Redis if it is away.
        # On the way out (stopped, Redis away) the service cancels this after its deadline.
        stop = asyncio.Event()  # the stream's own stop is set already: do not cut waits short
        while True:
            try:
                await self._put()
            except BUS_ERRORS as exc:
                await self._bus.pause(exc, stop)
                continue
            except Exception:  # not an outage: the state is lost, keep shutting down
                log.exception(
                    "could not record %s for stream %s", state.value, self.sid,
                    extra=self._log_extra,
                )  # fmt: skip
            self._bus.back()
            return

    async def _record(self) -> None:
        """Write the registry entry, and the state to the metrics. While Redis is away the
        write is left out: the next one (or the service, when Redis is back) writes it whole."""
        try:
            await self._put()
        except BUS_ERRORS as exc:
            self._bus.failed(exc)
            return
        self._bus.back()

    async def _put(self) -> None:
        metrics.STATES.set(self.sid, self.info.state)
        await registry.put(self._redis, self.info)

    # -- on the decode thread ----------------------------------------------------------------

    def _prepare(self, frame: DecodedFrame) -> PreparedFrame:
        started = time.perf_counter()
        image = self._encoder.encode(frame.bgr)
        metrics.ENCODE_SECONDS.observe(time.perf_counter() - started)
        metrics.DECODE_SECONDS.observe(frame.decode_s)
        return PreparedFrame(image.jpeg, image.width, image.height, frame.pts_ns, frame.decoded_ns)
