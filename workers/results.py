"""A worker's link to the results store: the frame results of analysis jobs.

A frame of a job is acknowledged only after its result is stored (DESIGN.md section 7), so a
worker killed at any point leaves the frame pending and whoever reads it again (this worker
restarted, or another one claiming it) stores it again, which the store ignores: one record
per frame. The store is opened on the first frame of a job, so that a worker serving only
cameras never needs the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence

from pitchside.errors import JobNotFoundError
from pitchside.results import FrameRecord, ResultsStore
from pitchside.settings import Settings

log = logging.getLogger(__name__)


class ResultsWriter:
    """Stores the frame results of jobs, opening the store when first needed.

    Args:
        settings: ``results_url`` names the store.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: ResultsStore | None = None
        self._opening = asyncio.Lock()

    async def write(self, results: Sequence[tuple[str, FrameRecord]]) -> None:
        """Store ``(job id, record)`` pairs, one transaction per job; records of a job that
        no longer exists (its upload was deleted) are dropped with a warning.

        Raises:
            ResultsStoreError: the store cannot be reached; nothing of that job is stored.
        """
        if not results:
            return
        store = await self._open()
        by_job: dict[str, list[FrameRecord]] = defaultdict(list)
        for job, record in results:
            by_job[job].append(record)
        for job, records in by_job.items():
            try:
                await asyncio.to_thread(store.write_frames, job, records)
            except JobNotFoundError:
                log.warning("job %s is gone: %d frame results dropped", job, len(records))

    async def _open(self) -> ResultsStore:
        async with self._opening:
            if self._store is None:
                self._store = await asyncio.to_thread(ResultsStore.open, self.settings.results_url)
            return self._store

    async def close(self) -> None:
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None
