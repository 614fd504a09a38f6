"""The live skip policy on XREADGROUP-shaped replies, without Redis."""

from __future__ import annotations

import pytest

from pitchside.schema import entry_order
from workers.skip import newest_per_stream

A, B = b"pitchside:{a}:frames", b"pitchside:{b}:frames"


def _entries(*ids: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return [(i.encode(), {b"seq": i.encode()}) for i in ids]


def test_newest_per_stream_keeps_the_last_entry_and_skips_the_rest_when_behind() -> None:
    # given a reply with 10 queued frames of one stream and 2 of another (RESP2 list shape)
    reply = [[A, _entries(*(f"1000-{i}" for i in range(10)))], [B, _entries("999-0", "1001-0")]]
    # when the policy runs
    keep, skipped = newest_per_stream(reply)
    # then each stream keeps only its newest entry and the others are skipped, oldest first
    assert keep == {A: _entries("1000-9")[0], B: _entries("1001-0")[0]}
    assert [i for i, _ in skipped[A]] == [f"1000-{i}".encode() for i in range(9)]
    assert [i for i, _ in skipped[B]] == [b"999-0"]


def test_newest_per_stream_skips_nothing_when_each_stream_has_one_entry() -> None:
    keep, skipped = newest_per_stream({A: _entries("5-0"), B: _entries("6-0")})  # RESP3 shape
    assert set(keep) == {A, B} and skipped == {}


def test_newest_per_stream_compares_ids_numerically_when_merging_out_of_order() -> None:
    # given a backlog entry and a new read of the same stream, ids that sort wrongly as text
    pairs = [(A, _entries("10-0")), (A, _entries("9-5", "100-0")), (A, _entries("100-2", "11-0"))]
    # when merged
    keep, skipped = newest_per_stream(pairs)
    # then the numerically newest wins and the rest are skipped in id order
    assert keep[A][0] == b"100-2"
    assert [i for i, _ in skipped[A]] == [b"9-5", b"10-0", b"11-0", b"100-0"]


def test_newest_per_stream_leaves_out_streams_without_entries() -> None:
    keep, skipped = newest_per_stream([(A, []), (B, _entries("1-0"))])
    assert list(keep) == [B] and skipped == {}


def test_newest_per_stream_returns_empty_when_reply_is_empty() -> None:
    assert newest_per_stream([]) == ({}, {})


@pytest.mark.parametrize(
    ("entry_id", "expected"),
    [(b"1700000000000-3", (1700000000000, 3)), ("42-0", (42, 0)), ("42", (42, 0))],
)
def test_entry_order_parses_stream_ids(entry_id: bytes | str, expected: tuple[int, int]) -> None:
    assert entry_order(entry_id) == expected
