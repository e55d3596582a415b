import pytest

from parley.faces.adp.request import BadRequest, parse_body, validate_chat

VALID = {"bot_app_key": "key", "visitor_biz_id": "v1", "session_id": "s-1", "content": "hello"}


def test_a_minimal_request_is_accepted_with_protocol_defaults():
    chat = validate_chat(dict(VALID))
    assert chat.turn.app_key == "key" and chat.turn.visitor_id == "v1" and chat.turn.content == "hello"
    assert chat.incremental is False and chat.streaming_throttle == 0 and chat.stream == ""


def test_unknown_fields_are_ignored():
    chat = validate_chat({**VALID, "workflow_variables": {}, "is_msg_status": 1, "tcadp_user_id": ""})
    assert chat.turn.session_id == "s-1"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"session_id": "a"}, "session_id must match"),
        ({"session_id": "has space"}, "session_id must match"),
        ({"session_id": "x" * 65}, "session_id must be at most 64"),
        ({"session_id": 12}, "session_id must be a string"),
        ({"bot_app_key": None}, "bot_app_key is required"),
        ({"bot_app_key": ""}, "bot_app_key must not be empty"),
        ({"bot_app_key": "k" * 129}, "bot_app_key must be at most 128"),
        ({"visitor_biz_id": None}, "visitor_biz_id is required"),
        ({"visitor_biz_id": "v" * 65}, "visitor_biz_id must be at most 64"),
        ({"content": None}, "content is required"),
        ({"content": ""}, "content must not be empty"),
        ({"content": ["x"]}, "content must be a string"),
        ({"request_id": "r" * 256}, "request_id must be at most 255"),
        ({"custom_variables": {"UserID": 10220022}}, "custom_variables.UserID must be a string"),
        ({"custom_variables": ["a"]}, "custom_variables must be an object"),
        ({"streaming_throttle": -1}, "streaming_throttle"),
        ({"streaming_throttle": "5"}, "streaming_throttle"),
        ({"streaming_throttle": True}, "streaming_throttle"),
        ({"streaming_throttle": 2**31}, "streaming_throttle"),
        ({"incremental": "true"}, "incremental must be a boolean"),
        ({"stream": "on"}, "stream must be"),
        ({"search_network": "yes"}, "search_network must be"),
        ({"workflow_status": 1}, "workflow_status must be"),
        ({"system_role": 5}, "system_role must be a string"),
        ({"model_name": 5}, "model_name must be a string"),
        ({"visitor_labels": [{"name": "a", "values": [1]}]}, "visitor_labels"),
        ({"file_infos": [{"file_name": "a"}]}, "file_infos[].file_size"),
        ({"file_infos": "x"}, "file_infos must be an array"),
        ({"agent_config": []}, "agent_config must be an object"),
    ],
)
def test_each_malformed_field_is_named(change, message):
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_chat({**VALID, **change})


def test_content_may_be_empty_when_files_are_attached():
    info = {"file_name": "a.pdf", "file_size": "10", "file_url": "http://x/a.pdf", "file_type": "pdf", "doc_id": "1"}
    chat = validate_chat({**VALID, "content": "", "file_infos": [info]})
    assert chat.turn.file_infos == [info]


def test_websocket_sends_take_the_app_and_visitor_from_the_token():
    chat = validate_chat({"session_id": "s-1", "content": "hi"}, app_key="from-token", visitor_id="visitor")
    assert chat.turn.app_key == "from-token" and chat.turn.visitor_id == "visitor"


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_refused(body):
    with pytest.raises(BadRequest):
        parse_body(body)
