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


@pytest.mark.parametrize("one_event", [False, True])
def test_a_stream_that_ends_before_the_resume_point_still_sends_its_end_after_it(one_event):
    resumed = EventNumbering(9, skip=5, one_event=one_event)
    assert resumed(b"event:a\ndata:{}\n\n") == b""
    assert resumed(b"event:end\ndata:{}\n\n") == b""  # the stream has 2 events; the client says it read 5
    assert resumed.short_end() == b"id:9-6\nevent:end\ndata:{}\n\n"
    if not one_event:
        again = EventNumbering(9, skip=5)
        again(b"event:a\ndata:{}\n\n")
        assert again.short_end(b"event:error\ndata:{}\n\ndata:[DONE]\n\n") == (
            b"id:9-6\nevent:error\ndata:{}\n\nid:9-7\ndata:[DONE]\n\n"
        )


def test_a_stream_that_passed_the_resume_point_sent_its_end_already():
    resumed = EventNumbering(9, skip=1, one_event=True)
    resumed(b"event:a\ndata:{}\n\n")
    assert resumed(b"event:end\ndata:{}\n\n") == b"id:9-2\nevent:end\ndata:{}\n\n"
    assert resumed.short_end() == b""
    assert EventNumbering(9).short_end() == b""  # nothing to resume from
