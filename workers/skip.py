"""Live-mode skip policy: keep the newest frame of each stream, skip the rest.

A live worker that falls behind must not work through a backlog: latency would grow with
time. It keeps the newest entry per stream and acknowledges (and counts) the others at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pitchside.schema import entry_order

K = TypeVar("K", bound=Hashable)
#: One stream entry as redis-py returns it: (entry id, fields).
Entry = tuple[bytes | str, Any]


def newest_per_stream(
    entries: Mapping[K, Sequence[Entry]] | Iterable[tuple[K, Sequence[Entry]]],
) -> tuple[dict[K, Entry], dict[K, list[Entry]]]:
    """Split read entries into the newest per stream and the older ones to skip.

    Args:
        entries: per stream key, its entries: an XREADGROUP reply (``[[key, [(id, fields),
            ...]], ...]`` or the RESP3 mapping). A key may appear more than once (a backlog
            merged with a new read); entries need not be in order.

    Returns:
        ``(keep, skipped)``: ``keep`` maps each stream with entries to its newest entry;
        ``skipped`` maps each stream to its other entries, oldest first (empty lists left
        out), ready for one XACK per stream.
    """
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    merged: dict[K, list[Entry]] = {}
    for key, items in pairs:
        merged.setdefault(key, []).extend(items)
    keep: dict[K, Entry] = {}
    skipped: dict[K, list[Entry]] = {}
    for key, items in merged.items():
        if not items:
            continue
        ordered = sorted(items, key=lambda e: entry_order(e[0]))
        keep[key] = ordered[-1]
        if len(ordered) > 1:
            skipped[key] = ordered[:-1]
    return keep, skipped
