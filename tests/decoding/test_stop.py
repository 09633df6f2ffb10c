from __future__ import annotations

import pytest

from hf_runtime.decoding.stop import StopStringMatcher


def feed_all(matcher: StopStringMatcher, pieces: list[str]) -> tuple[list[str], str | None]:
    released: list[str] = []
    for piece in pieces:
        result = matcher.feed(piece)
        released.append(result.text)
        if result.stop is not None:
            return released, result.stop
    return released, None


def test_no_stops_releases_everything_immediately() -> None:
    matcher = StopStringMatcher([])
    assert feed_all(matcher, ["a", "bc"]) == (["a", "bc"], None)


def test_partial_prefix_is_held_back_until_it_completes() -> None:
    matcher = StopStringMatcher(["STOP"])
    released, stop = feed_all(matcher, ["hello S", "T", "O", "P more"])
    assert released == ["hello ", "", "", ""]
    assert stop == "STOP"


def test_partial_prefix_is_released_when_it_cannot_complete() -> None:
    matcher = StopStringMatcher(["STOP"])
    released, stop = feed_all(matcher, ["a ST", "x"])
    assert released == ["a ", "STx"]
    assert stop is None
    assert matcher.held == ""


def test_text_after_the_stop_in_the_same_piece_is_dropped() -> None:
    matcher = StopStringMatcher(["\n\n"])
    result = matcher.feed("line one\n\nline two")
    assert (result.text, result.stop) == ("line one", "\n\n")


def test_earliest_of_several_stop_strings_wins() -> None:
    matcher = StopStringMatcher(["world", "lo"])
    result = matcher.feed("hello world")
    assert (result.text, result.stop) == ("hel", "lo")


def test_stop_spanning_many_pieces_never_leaks() -> None:
    matcher = StopStringMatcher(["<|end|>"])
    pieces = ["ok <", "|", "en", "d", "|", ">", "tail"]
    released, stop = feed_all(matcher, pieces)
    assert "".join(released) == "ok "
    assert stop == "<|end|>"


def test_overlapping_prefixes_hold_the_longest_possible_start() -> None:
    matcher = StopStringMatcher(["aab"])
    assert matcher.feed("xaa").text == "x"
    assert matcher.feed("a").text == "a"  # "aaa": only the last "aa" can still start "aab"
    result = matcher.feed("b")
    assert (result.text, result.stop) == ("", "aab")


def test_allow_stop_false_releases_held_text_and_ignores_matches() -> None:
    matcher = StopStringMatcher(["END"])
    assert matcher.feed("x E").text == "x "
    result = matcher.feed("ND y", allow_stop=False)
    assert (result.text, result.stop) == ("END y", None)


def test_flush_returns_the_held_text() -> None:
    matcher = StopStringMatcher(["STOP"])
    assert matcher.feed("abc ST").text == "abc "
    assert matcher.flush() == "ST"
    assert matcher.held == ""


@pytest.mark.parametrize("stops", [[""], ["", "x"]])
def test_empty_stop_strings_are_ignored(stops: list[str]) -> None:
    matcher = StopStringMatcher(stops)
    result = matcher.feed("abc")
    assert result.stop is None
    assert result.text == "abc"
