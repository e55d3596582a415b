"""The ADP v2 dialogue over SSE, end to end: `POST /adp/v2/chat`, and v2 bodies posted to the v1 path
(as adp-chat-client v0.4.0 and later do in Private mode). Each stream is read by event name and by
JSON `Type` (tests/support/sse.py)."""

from __future__ import annotations

import itertools
import uuid

import pytest

from tests.support.sse import DONE, post_chat, post_v2_chat

PATHS = ["/adp/v2/chat", "/v1/qbot/chat/sse"]
R1 = "Deepseek/deepseek-r1-0528"


@pytest.fixture(scope="module")
def parley(parley_on_each_database):
    """Every test here runs on both databases."""
    return parley_on_each_database


@pytest.fixture(scope="module")
def app(parley):
    return parley.create_app("adp-v2", system_role="You help {{user}}.", history_depth=5)


def conversation() -> str:
    return str(uuid.uuid4())  # made by the client, as adp-chat-client does; no CreateConversation first


def v2_body(app, text="hello", **fields):
    return {"ConversationId": fields.pop("ConversationId", None) or conversation(), "AppKey": app["app_key"],
            "VisitorId": fields.pop("VisitorId", "v2-visitor"), "Contents": [{"Type": "text", "Text": text}], **fields}


def runs(names: list) -> list:
    """The event names (or other values) with each run of equal ones folded into one."""
    return [name for name, _ in itertools.groupby(names)]


@pytest.mark.parametrize("path", PATHS)
def test_every_event_comes_in_order_with_thoughts_and_statistics(parley, app, model, path):
    model.script("think first", reasoning="Weigh the question. Then answer.", content="Forty-two is the answer.",
                 chunk_size=3, usage={"prompt_tokens": 11, "completion_tokens": 7})
    body = v2_body(app, "think first", ModelName=R1, Incremental=True, StreamingThrottle=4, RequestId="r-" + "x" * 32)
    stream = post_v2_chat(parley.url, body, path)
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert runs(stream.names()) == [
        "request_ack", "response.created", "response.processing",
        "message.added", "content.added", "text.delta", "message.processing", "text.delta", "message.done",
        "message.added", "content.added", "text.delta", "message.processing", "text.delta", "message.done",
        "response.completed", DONE,
    ]
    assert stream.raw.endswith(b"data:[DONE]\n\n")
    assert all(data["Type"] == name for name, data in stream.events if name != DONE)

    question = stream.of("request_ack")[0]["RequestAck"]
    assert question["Role"] == "user" and question["ConversationId"] == body["ConversationId"]
    assert question["Messages"][0]["Contents"] == [{"Type": "text", "Text": "think first"}]
    created = stream.of("response.created")[0]["Response"]
    assert created["Role"] == "assistant" and created["Status"] == "processing"
    assert created["RelatedRecordId"] == question["RecordId"] != created["RecordId"]
    assert created["ExtraInfo"]["RequestId"] == body["RequestId"]

    added = [d["Message"] for d in stream.of("message.added")]
    assert [m["Type"] for m in added] == ["thought", "reply"]
    assert stream.texts() == {"thought": "Weigh the question. Then answer.", "reply": "Forty-two is the answer."}
    done = {d["Message"]["Type"]: d["Message"] for d in stream.of("message.done")}
    assert done["reply"]["Contents"][0]["Text"] == "Forty-two is the answer." and done["reply"]["Status"] == "success"
    assert done["thought"]["Contents"][0]["Text"] == "Weigh the question. Then answer."
    assert {d["MessageId"] for d in stream.of("text.delta")} == {m["MessageId"] for m in added}

    completed = stream.of("response.completed")[0]["Response"]
    assert completed["RecordId"] == created["RecordId"] and completed["Status"] == "success"
    assert completed["StatInfo"]["InputTokens"] == 11 and completed["StatInfo"]["OutputTokens"] == 7
    assert completed["StatInfo"]["TotalTokens"] == 18
    assert [m["Type"] for m in completed["Messages"]] == ["thought", "reply"]  # the whole record, thoughts kept
    assert completed["Messages"][1]["Contents"][0]["Text"] == "Forty-two is the answer."
    assert completed["ExtraInfo"]["CanRating"] is True and completed["ExtraInfo"]["ReplyMethod"] == 1


@pytest.mark.parametrize("incremental", [True, False])
def test_incremental_sends_deltas_and_otherwise_replacements(parley, app, model, incremental):
    text = "Streaming answers arrive in small packets, each a little longer than the last."
    model.script("stream it", content=text, chunk_size=2)
    stream = post_v2_chat(parley.url, v2_body(app, "stream it", Incremental=incremental))
    deltas = [d["Text"] for d in stream.of("text.delta")]
    replacements = [d["Text"] for d in stream.of("text.replace")]
    if incremental:
        assert not replacements and "".join(deltas) == text and len(deltas) > 3
    else:
        assert not deltas and replacements[-1] == text and len(replacements) > 3
        assert all(b.startswith(a) for a, b in zip(replacements, replacements[1:]))
    assert stream.texts()["reply"] == text


def test_stream_disable_sends_the_reply_in_one_packet(parley, app, model):
    model.script("at once", content="All at once, please.", chunk_size=1)
    stream = post_v2_chat(parley.url, v2_body(app, "at once", Stream="disable", Incremental=True))
    assert [d["Text"] for d in stream.of("text.delta")] == ["All at once, please."]


def test_contents_of_every_type_reach_the_turn(parley, app, model):
    contents = [
        {"Type": "text", "Text": "What is in the picture?"},
        {"Type": "image", "Image": {"Url": "http://files.example/cat.png"}},
        {"Type": "file", "File": {"DocId": "0", "FileName": "dog.jpg", "FileUrl": "http://files.example/dog.jpg",
                                  "FileSize": "1234", "FileType": "jpg"}},
        {"Type": "custom_variables", "CustomVariables": {"user": "Ann"}},
    ]
    session = conversation()
    body = {**v2_body(app, ConversationId=session), "Contents": contents}
    stream = post_v2_chat(parley.url, body, "/v1/qbot/chat/sse")
    assert stream.names()[-2:] == ["response.completed", DONE]
    sent = model.stats()["requests"][-1]["messages"]
    # The model has no vision: it gets the text, told that it cannot see the two images.
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("You help Ann.\n\n")
    assert "cannot see" in sent[0]["content"]
    assert sent[-1]["content"] == "What is in the picture?\n![](http://files.example/cat.png)"
    echoed = stream.of("request_ack")[0]["RequestAck"]["Messages"][0]["Contents"]
    assert [c["Type"] for c in echoed] == ["text", "image", "file"]
    assert echoed[2]["File"]["FileUrl"] == "http://files.example/dog.jpg"
    question = parley.records("adp-v2", session)[0]
    assert question["file_infos"][0]["file_name"] == "dog.jpg"


def test_v1_and_v2_turns_share_one_session(parley, app, model):
    session = conversation()
    post_v2_chat(parley.url, v2_body(app, "my name is Ada", ConversationId=session, VisitorId="v-both"))
    v1 = post_chat(parley.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v-both", "session_id": session,
                                "content": "what is my name?"})
    assert v1.answer_replies[-1]["is_final"]
    seen_by_v1 = [(m["role"], m["content"]) for m in model.stats()["requests"][-1]["messages"][1:]]
    assert seen_by_v1 == [("user", "my name is Ada"), ("assistant", "Echo: my name is Ada"), ("user", "what is my name?")]
    post_v2_chat(parley.url, v2_body(app, "and again?", ConversationId=session, VisitorId="v-both"), "/v1/qbot/chat/sse")
    seen_by_v2 = [m["content"] for m in model.stats()["requests"][-1]["messages"][1:]]
    assert seen_by_v2[2:4] == ["what is my name?", "Echo: what is my name?"]
    assert [r["content"] for r in parley.records("adp-v2", session)] == [
        "my name is Ada", "Echo: my name is Ada", "what is my name?", "Echo: what is my name?",
        "and again?", "Echo: and again?",
    ]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "change, code, fragment",
    [
        ({"AppKey": "no-such-key"}, 4505004, "APPKEY"),
        ({"ConversationId": "too-short"}, 400, "ConversationId"),
        ({"Contents": []}, 400, "Contents"),
        ({"Contents": [{"Type": "video"}]}, 400, "Contents[0].Type"),
        ({"Contents": [{"Type": "text", "Text": ""}]}, 400, "Contents must carry"),
        ({"VisitorId": None}, 400, "VisitorId"),
        ({"Incremental": "yes"}, 400, "Incremental"),
    ],
)
def test_errors_are_v2_error_events(parley, app, model, path, change, code, fragment):
    body = {key: value for key, value in {**v2_body(app, RequestId="r-err"), **change}.items() if value is not None}
    stream = post_v2_chat(parley.url, body, path)
    assert stream.status == 200 and stream.names() == ["error", DONE], stream.raw
    error = stream.of("error")[0]["Error"]
    assert error["Code"] == code and fragment in error["Message"] and error["RequestId"] == "r-err"
    assert model.stats()["calls"] == 0


def test_a_body_that_is_not_json_gets_a_v2_error(parley, model):
    stream = post_v2_chat(parley.url, b'{"ConversationId": ', "/v1/qbot/chat/sse")
    assert stream.names() == ["error", DONE] and stream.of("error")[0]["Error"]["Code"] == 400
    stream = post_v2_chat(parley.url, b"not json", "/adp/v2/chat")
    assert stream.names() == ["error", DONE] and stream.of("error")[0]["Error"]["Code"] == 400


def test_a_model_failure_mid_answer_ends_with_a_v2_error(parley, model):
    app = parley.create_app("adp-v2-failures", model="scripted-fast-timeout")
    model.script("break off", content="Half an ans" + "wer that breaks", chunk_size=2, drop_after=3)
    stream = post_v2_chat(parley.url, v2_body(app, "break off", Incremental=True, StreamingThrottle=1, RequestId="r-fail"))
    names = stream.names()
    assert names[:2] == ["request_ack", "response.created"] and "text.delta" in names
    assert names[-2:] == ["error", DONE] and "response.completed" not in names
    error = stream.of("error")[0]
    assert error["Error"]["Code"] == 500 and error["Error"]["RequestId"] == "r-fail"
    assert error["RecordId"] == stream.of("response.created")[0]["Response"]["RecordId"]


MENU = {
    "name": "v2-menu",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "llm", "name": "Greeter", "prompt": "Greet {{sys.query}}"},
        {"id": "pick", "type": "option_cards", "text": "{{greet.text}} Tea or coffee?", "options": ["Tea", "Coffee"]},
        {"id": "tea", "type": "end", "reply": "Tea it is"},
        {"id": "broken", "type": "code", "code": "def main():\n    return {}", "outputs": {"x": "string"}},
        {"id": "never", "type": "end", "reply": "unreachable"},
    ],
    "edges": [{"source": "start", "target": "greet"}, {"source": "greet", "target": "pick"},
              {"source": "pick", "target": "tea", "port": "Tea"}, {"source": "pick", "target": "broken", "port": "Coffee"},
              {"source": "broken", "target": "never"}],
}


def test_a_workflow_turn_carries_its_procedures_option_cards_and_failures(parley, model):
    """v2's own shapes for a workflow (issue 17): Procedures of Type workflow with RunNodes as the
    nodes run, per-node StatInfos, option cards as a content of the reply, reply method 16, and a
    failed node as v2's workflow error 460101."""
    app = parley.create_app("v2-workflow", workflow=MENU)
    model.script("Greet Ann", content="Hello Ann.", usage={"prompt_tokens": 4, "completion_tokens": 2})
    session = conversation()
    stream = post_v2_chat(parley.url, v2_body(app, "Ann", ConversationId=session, Incremental=True))
    progress = [d["Response"]["Procedures"][0] for d in stream.of("response.processing") if "Procedures" in d["Response"]]
    seen = [next((n["NodeId"], n["Status"]) for n in p["Workflow"]["RunNodes"] if n["IsCurrent"]) for p in progress]
    assert runs(seen) == [("start", 1), ("start", 2), ("greet", 1), ("greet", 2), ("pick", 1)]
    completed = stream.of("response.completed")[0]["Response"]
    [procedure] = completed["Procedures"]
    assert procedure["Type"] == "workflow" and procedure["Status"] == "success"
    workflow = procedure["Workflow"]
    assert workflow["WorkflowName"] == "v2-menu" and workflow["WorkflowRunId"] and workflow["OptionCards"] == ["Tea", "Coffee"]
    greeter = next(n for n in workflow["RunNodes"] if n["NodeId"] == "greet")
    assert greeter["NodeName"] == "Greeter" and greeter["NodeType"] == 3 and greeter["StatInfos"][0]["InputTokens"] == 4
    assert [(s["NodeName"], s["InputTokens"], s["OutputTokens"]) for s in procedure["StatInfos"]] == [("Greeter", 4, 2)]
    assert completed["StatInfo"]["TotalTokens"] == 6 and completed["ExtraInfo"]["ReplyMethod"] == 16
    reply = completed["Messages"][-1]
    assert reply["Contents"] == [{"Type": "text", "Text": "Hello Ann. Tea or coffee?"},
                                 {"Type": "option_cards", "OptionCards": ["Tea", "Coffee"]}]
    assert {"Type": "option_cards", "OptionCards": ["Tea", "Coffee"]} in [d["Content"] for d in stream.of("content.added")]
    # The click resumes the run; the answer is the end node's reply.
    tea = post_v2_chat(parley.url, v2_body(app, "Tea", ConversationId=session))
    assert tea.texts()["reply"] == "Tea it is"
    assert tea.of("response.completed")[0]["Response"]["Procedures"][0]["Workflow"]["WorkflowRunId"] == workflow["WorkflowRunId"]
    # A node that fails (code nodes are off here) ends the turn with v2's workflow error.
    post_v2_chat(parley.url, v2_body(app, "Ann", ConversationId=session))
    failed = post_v2_chat(parley.url, v2_body(app, "Coffee", ConversationId=session))
    [error] = failed.of("error")
    assert error["Error"]["Code"] == 460101 and "node broken" in error["Error"]["Message"]
    assert failed.names()[-1] == DONE
