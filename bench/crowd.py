"""A crowd of WebSocket viewers in a process of its own: ``python -m bench.crowd URL N``.

:mod:`bench.soak` measures its reference viewers' latency as they receive; a hundred more
viewers receiving in the same event loop would delay those receipts and count as the gateway's
cost. Here they receive and discard in another process. Protocol on stdin and stdout: one
line ``connected K`` once the viewers are connected (or ``CONNECT_S`` has passed); then for each
line ``mark`` read, one JSON line with the frames each viewer has received so far; at the end of
stdin, the viewers close and the process exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

CONNECT_S = 60.0


async def cheap_view(url: str, counts: list[int], index: int, connected: list[int]) -> None:
    """A viewer that receives and discards, counting its frames in ``counts[index]``; runs
    until cancelled."""
    async with connect(url, max_size=None, compression=None, proxy=None, open_timeout=30) as ws:
        connected[0] += 1
        async for data in ws:
            if isinstance(data, bytes):
                counts[index] += 1


async def crowd(url: str, n: int) -> list[Any]:
    """Run ``n`` viewers of ``url`` as the module docstring says; what each one raised."""
    counts, connected = [0] * n, [0]
    tasks = [asyncio.create_task(cheap_view(url, counts, i, connected)) for i in range(n)]
    deadline = time.monotonic() + CONNECT_S
    while connected[0] < n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    print(f"connected {connected[0]}", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip() == "mark":
            print(json.dumps(counts), flush=True)
    for task in tasks:
        task.cancel()
    return await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m bench.crowd WS_URL N", file=sys.stderr)
        return 2
    results = asyncio.run(crowd(argv[0], int(argv[1])))
    failed = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)
    ]
    print(json.dumps([repr(r) for r in failed[:5]]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
