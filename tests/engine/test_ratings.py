import pytest

from parley.engine.events import ReplyMethod
from parley.engine.ratings import RatingRefused, can_rate, check_rating, rated_extra
from parley.store.conversations import RecordRow


def answer(**fields) -> RecordRow:
    values = dict(id=2, session_pk=1, app_id=1, is_from_self=False, content="hi", status="success",
                  created_at=0, reply_method=ReplyMethod.LLM)
    values.update(fields)
    return RecordRow(**values)


def test_an_answer_can_be_liked_disliked_and_withdrawn():
    for score in (0, 1, 2):
        check_rating(answer(), score, ["short"], "")
    assert can_rate(answer())


@pytest.mark.parametrize(
    "record",
    [
        answer(is_from_self=True),
        answer(reply_method=ReplyMethod.GREETING),
        answer(reply_method=ReplyMethod.CONCURRENCY_EXCEEDED),
        answer(reply_method=ReplyMethod.REALTIME_DOCUMENT),
        answer(status="failed"),
    ],
)
def test_what_the_protocol_refuses_is_refused(record):
    with pytest.raises(RatingRefused):
        check_rating(record, 1, [], "")
    assert not can_rate(record)


def test_bad_scores_and_long_reasons_are_refused():
    with pytest.raises(RatingRefused):
        check_rating(answer(), 3, [], "")
    with pytest.raises(RatingRefused):
        check_rating(answer(), 2, ["x" * 21], "")


def test_the_rating_keeps_other_extra_fields_and_is_cleared_by_zero():
    record = answer(extra={"references": [{"id": "1"}]})
    extra = rated_extra(record, 2, ["wrong"], "bad answer")
    assert extra["references"] == [{"id": "1"}] and extra["rating"]["reasons"] == ["wrong"]
    record.extra = extra
    assert rated_extra(record, 0, [], "") == {"references": [{"id": "1"}]}
