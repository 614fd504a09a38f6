"""The benchmark's interleaved rounds: each section reports its median round."""

from __future__ import annotations

from bench import _median_round


def test_median_round_is_the_middle_fps_with_every_round_beside_it() -> None:
    # given three rounds of one section, in the order they ran
    rounds = [{"fps": 30.0, "n": 1}, {"fps": 28.0, "n": 2}, {"fps": 31.0, "n": 3}]
    # when they are combined
    combined = _median_round(rounds)
    # then the round with the median fps is reported whole, with every round's fps
    assert combined == {"fps": 30.0, "n": 1, "fps_rounds": [30.0, 28.0, 31.0]}


def test_median_round_of_an_even_count_is_the_lower_middle() -> None:
    assert _median_round([{"fps": 2.0}, {"fps": 1.0}])["fps"] == 1.0


def test_median_round_reports_the_first_error() -> None:
    # given a section whose second round could not run
    rounds = [{"fps": 30.0}, {"error": "clip vanished"}, {"error": "again"}]
    # then the section reports that error, not a median of what remained
    assert _median_round(rounds) == {"error": "clip vanished"}


def test_single_round_is_reported_as_it_ran() -> None:
    assert _median_round([{"fps": 12.5}]) == {"fps": 12.5}
