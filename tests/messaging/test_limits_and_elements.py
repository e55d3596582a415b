"""The token bucket behind IM's "N calls per second", and the chatbot element TUIKit renders."""

import json

import pytest

from parley.bus.connect import open_redis
from parley.bus.redis_limits import RedisRateLimiter
from parley.messaging import elements
from parley.messaging.limits import LocalRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "redis"])
async def limiter_with(request):
    """A limiter and its clock: in this process, or shared through Redis."""
    clock = Clock()
    if request.param == "local":
        yield LocalRateLimiter(clock), clock
        return
    client = await open_redis(request.getfixturevalue("bus_url"))
    yield RedisRateLimiter(client, clock), clock
    await client.aclose()


async def test_a_bucket_allows_one_seconds_worth_then_refills(limiter_with):
    limiter, clock = limiter_with
    assert [await limiter.allow("k", 3) for _ in range(4)] == [True, True, True, False]
    clock.now += 0.34  # a third of a second and a bit: one call's allowance
    assert await limiter.allow("k", 3) and not await limiter.allow("k", 3)
    assert await limiter.allow("other", 3)  # keys are independent


async def test_no_limit_means_no_limit(limiter_with):
    limiter, _ = limiter_with
    assert all([await limiter.allow("k", 0) for _ in range(1000)])


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
