"""One stream's detections back in ``seq`` order, waiting for a missing frame only while it
can still come, and never longer than a bound.

Several workers write a stream's detections, each in its own ``seq`` order (a worker's lanes
hand their batches on oldest first), so the stream as a whole arrives shuffled only between
writers. A frame missing from the sequence can therefore still arrive only from a writer
whose last frame is older than it: once every writer seen lately is past it, it is gone (a
live worker skipped it) and waiting for it would only add latency. With one worker, the
usual case, nothing ever waits. A writer that went quiet stops counting after
``writer_idle_s``, and no frame is held longer than ``max_wait_s`` or past ``max_held``
frames, so memory and delay stay bounded whatever happens.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from pitchside.schema import DetsMsg

WRITER_IDLE_S = 2.0


@dataclass(order=True, slots=True)
class _Held:
    seq: int
    arrived_s: float = field(compare=False)
    msg: DetsMsg = field(compare=False)


class Reorder:
    """Detections in, the same detections out in ``seq`` order.

    Args:
        max_wait_s: the longest a frame waits for an earlier one (live: a few frames'
            time; analyse: long, since every frame will come).
        max_held: frames held at most; past it the oldest goes out whatever is missing.
        writer_idle_s: how long a writer counts as able to still send an older frame.
    """

    def __init__(
        self, max_wait_s: float, max_held: int = 500, writer_idle_s: float = WRITER_IDLE_S
    ) -> None:
        self.max_wait_s = max_wait_s
        self.max_held = max_held
        self.writer_idle_s = writer_idle_s
        self._heap: list[_Held] = []
        self._seqs: set[int] = set()
        self._writers: dict[str, tuple[int, float]] = {}  # writer -> (last seq, when)
        self._next = -1  # the lowest seq not yet emitted or passed; -1 before the first

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, msg: DetsMsg, now_s: float) -> bool:
        """Hold ``msg``; False (and nothing held) when its place has passed or it is a
        repeat: it arrived too late to be used."""
        last, _ = self._writers.get(msg.worker, (-1, 0.0))
        self._writers[msg.worker] = (max(last, msg.seq), now_s)
        if msg.seq < self._next or msg.seq in self._seqs:
            return False
        heapq.heappush(self._heap, _Held(msg.seq, now_s, msg))
        self._seqs.add(msg.seq)
        return True

    def pop_ready(self, now_s: float) -> list[DetsMsg]:
        """Every held frame that may go now, in ``seq`` order."""
        self._forget_idle_writers(now_s)
        ready: list[DetsMsg] = []
        while self._heap:
            head = self._heap[0]
            if not (
                self._next < 0
                or head.seq == self._next
                or not self._may_still_come(head.seq)
                or now_s - head.arrived_s >= self.max_wait_s
                or len(self._heap) > self.max_held
            ):
                break
            heapq.heappop(self._heap)
            self._seqs.discard(head.seq)
            self._next = head.seq + 1
            ready.append(head.msg)
        return ready

    def wait_s(self, now_s: float) -> float | None:
        """How long until the oldest held frame must go; None when nothing is held."""
        if not self._heap:
            return None
        return max(0.0, self._heap[0].arrived_s + self.max_wait_s - now_s)

    def _may_still_come(self, last: int) -> bool:
        """Whether a missing frame before ``last`` can still arrive: some writer's newest
        frame is older than ``last - 1``, so it may yet send one of them."""
        return any(seq < last - 1 for seq, _ in self._writers.values())

    def _forget_idle_writers(self, now_s: float) -> None:
        for writer in [w for w, (_, t) in self._writers.items() if now_s - t > self.writer_idle_s]:
            del self._writers[writer]
