import pytest

from parley.faces.resume import (
    EventNumbering,
    MalformedEventId,
    ResumePoint,
    last_event_id,
    parse_last_event_id,
    resume_point,
)


def test_each_event_of_a_write_gets_the_next_id_and_resuming_drops_those_sent():
    numbered = EventNumbering(42)
    assert numbered(b"event:a\ndata:{}\n\nevent:b\ndata:{}\n\n") == b"id:42-1\nevent:a\ndata:{}\n\nid:42-2\nevent:b\ndata:{}\n\n"
    assert numbered(b"") == b""
    assert numbered(b"data:[DONE]\n\n") == b"id:42-3\ndata:[DONE]\n\n"
    resumed = EventNumbering(42, skip=2)
    assert resumed(b"event:a\ndata:{}\n\nevent:b\ndata:{}\n\n") == b""
    assert resumed(b"data:[DONE]\n\n") == b"id:42-3\ndata:[DONE]\n\n"


@pytest.mark.parametrize("value", ["", "abc", "1-", "-1", "1-2-3", "1 - 2", "x1-2", "1" * 21 + "-1"])
def test_ids_this_server_never_gives_are_malformed(value):
    with pytest.raises(MalformedEventId):
        parse_last_event_id(value)


def test_an_id_names_the_turn_and_the_events_sent():
    assert parse_last_event_id(" 400626033451556864-17 ") == ResumePoint(400626033451556864, 17)
    assert last_event_id([(b"accept", b"text/event-stream"), (b"last-event-id", b"7-3")]) == "7-3"
    assert last_event_id([]) is None


def test_writes_of_one_event_each_are_numbered_alike():
    searched, trusted = EventNumbering(7, skip=1), EventNumbering(7, skip=1, one_event=True)
    for write in (b"event:a\ndata:{}\n\n", b"event:b\ndata:{}\n\n", b"", b"event:c\ndata:{}\n\n"):
        assert searched(write) == trusted(write)


def test_no_or_an_empty_last_event_id_starts_a_turn():
    assert resume_point(None) is None and resume_point("") is None and resume_point("  ") is None
    assert resume_point("5-6") == ResumePoint(5, 6)
    with pytest.raises(MalformedEventId):
        resume_point("5")


def test_a_write_without_its_blank_line_is_one_event_still():
    assert EventNumbering(3)(b"event:a\ndata:{}\n\nevent:b\ndata:{}") == b"id:3-1\nevent:a\ndata:{}\n\nid:3-2\nevent:b\ndata:{}"
