from tests.support.sse import post_chat


def test_a_published_app_answers(parley, model):
    app = parley.create_app("smoke")
    stream = post_chat(parley.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v1", "session_id": "s-smoke", "content": "hi there"})
    assert stream.status == 200
    assert stream.answer_replies[-1]["content"] == "Echo: hi there"
