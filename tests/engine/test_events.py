import gc

from hypothesis import given
from hypothesis import strategies as st

from parley.engine.events import Progress, ReplyDelta, ThoughtDelta, ThoughtEnd, compact_events


def test_runs_of_deltas_merge_and_other_events_stay_in_place():
    progress = Progress("processing", (), 0)
    events = [
        progress,
        ThoughtDelta("th", 5), ThoughtDelta("ink", 9), ThoughtEnd(10),
        ReplyDelta("Hel"), ReplyDelta("lo"), ReplyDelta("!"),
    ]
    assert compact_events(events) == [progress, ThoughtDelta("think", 9), ThoughtEnd(10), ReplyDelta("Hello!")]


@given(st.lists(st.text(min_size=1), max_size=30))
def test_merged_reply_text_is_the_streamed_text(chunks):
    merged = compact_events([ReplyDelta(c) for c in chunks])
    assert "".join(merged) == "".join(chunks)
    assert len(merged) == (1 if chunks else 0)


def test_reply_deltas_are_invisible_to_the_garbage_collector():
    # They pile up by the thousand in the bus while streams are open (see events.ReplyDelta).
    assert not gc.is_tracked(ReplyDelta("".join(["to", "ken"])))
