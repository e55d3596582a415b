"""The token bucket behind IM's "N calls per second", and the chatbot element TUIKit renders."""

import json

from parley.messaging import elements
from parley.messaging.limits import LocalRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_one_seconds_worth_then_refills():
    clock = Clock()
    limiter = LocalRateLimiter(clock)
    assert [limiter.allow("k", 3) for _ in range(4)] == [True, True, True, False]
    clock.now += 0.34  # a third of a second and a bit: one call's allowance
    assert limiter.allow("k", 3) and not limiter.allow("k", 3)
    assert limiter.allow("other", 3)  # keys are independent


def test_no_limit_means_no_limit():
    limiter = LocalRateLimiter(Clock())
    assert all(limiter.allow("k", 0) for _ in range(1000))


def test_stream_bodies_are_the_chatbot_custom_element():
    body = elements.stream_body(["hello, ", "world"], False)
    assert body[0]["MsgType"] == "TIMCustomElem"
    assert json.loads(body[0]["MsgContent"]["Data"]) == {"chatbotPlugin": 2, "src": 2, "chunks": ["hello, ", "world"], "isFinished": 0}
    assert elements.stream_chunks(body) == ["hello, ", "world"]
    assert json.loads(elements.error_body("boom")[0]["MsgContent"]["Data"]) == {"chatbotPlugin": 2, "src": 23, "errorInfo": "boom", "isFinished": 1}


def test_an_interrupt_names_the_message_to_stop():
    interrupt = [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": json.dumps({"chatbotPlugin": 2, "src": 22, "msgKey": "1_2_3"})}}]
    assert elements.interrupted_key(interrupt) == "1_2_3"
    assert elements.interrupted_key(elements.stream_body(["x"], True)) is None
    assert elements.interrupted_key([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "not json"}}]) is None
    assert elements.interrupted_key([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "stop"}}]) is None


def test_text_of_joins_the_text_elements():
    body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "a"}}, {"MsgType": "TIMFaceElem", "MsgContent": {}},
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "b"}}]
    assert elements.text_of(body) == "a\nb"
