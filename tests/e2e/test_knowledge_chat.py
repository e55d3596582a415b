"""Answers grounded in the knowledge base, end to end over the ADP SSE API."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.processes import ParleyServer
from tests.support.sse import post_chat, post_v2_chat

DOCUMENTS = {
    "wifi.txt": ("The office wifi password is PARLEY-2026. Guests ask the IT desk for a visitor account.", "dept=it"),
    "leave.txt": ("Every employee gets 25 days of paid annual leave per year, booked through the HR portal.", "dept=hr"),
    "报销.txt": ("出差报销必须在出差结束后三十天内提交发票，逾期不予报销。", "dept=finance"),
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> ParleyServer:
    """Every test here runs on both databases: the session's Parley on SQLite, then one on PostgreSQL."""
    parley: ParleyServer = request.getfixturevalue(f"parley_on_{request.param}")
    parley.create_app("kb-chat", knowledge={"variable_bindings": {"department": "dept"}})
    parley.create_app("kb-strict", unknown_reply="I only know about our office.", knowledge={"unknown_when_nothing": True})
    for app in ("kb-chat", "kb-strict"):
        for name, (text, label) in DOCUMENTS.items():
            response = parley.admin("POST", f"/admin/apps/{app}/kb/documents", params=[("name", name), ("label", label)],
                                    content=text.encode())
            assert response.status_code == 201, response.text
    response = parley.admin("POST", "/admin/apps/kb-chat/kb/qa",
                            json={"question": "How do I contact support?", "answer": "Email support@example.com.",
                                  "similar_questions": ["客服怎么联系？"]})
    assert response.status_code == 201, response.text
    deadline = time.monotonic() + 120
    for app in ("kb-chat", "kb-strict"):
        while any(d["status"] == "learning" for d in parley.admin("GET", f"/admin/apps/{app}/kb/documents").json()):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    return parley


def ask(server, app_name, content, **fields):
    app = server.admin("GET", f"/admin/apps/{app_name}").json()
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v1", "session_id": "s-" + uuid.uuid4().hex[:12],
            "content": content, **fields}
    return body["session_id"], post_chat(server.url, body)


def test_a_matching_qa_pair_answers_without_the_model(server, model):
    for question in ("How do I contact support?", "客服怎么联系"):
        _, stream = ask(server, "kb-chat", question)
        final = stream.answer_replies[-1]
        assert final["reply_method"] == 5 and final["content"] == "Email support@example.com."
        assert final["knowledge"][0]["type"] == 1
        reference = stream.of("reference")[0]["payload"]["references"][0]
        assert reference["type"] == 1 and reference["qa_biz_id"] == reference["id"] and reference["id"].isdigit()
        assert stream.names()[-1] == "reply"
    assert model.stats()["calls"] == 0


def test_retrieved_segments_are_cited_and_the_marks_become_quote_infos(server, model):
    model.script("wifi password", content="The password is PARLEY-2026[1]. Guests ask IT[1].", chunk_size=4)
    session, stream = ask(server, "kb-chat", "What is the office wifi password?", incremental=True)
    names = stream.names()
    references = stream.of("reference")[0]["payload"]["references"]
    assert references[0]["type"] == 2 and references[0]["doc_name"] == "wifi.txt" and references[0]["doc_id"].isdigit()
    first_answer = next(i for i, (n, d) in enumerate(stream.events) if n == "reply" and not d["payload"]["is_from_self"])
    assert names.index("reference") < first_answer
    text = "".join(p["content"] for p in stream.answer_replies)
    assert text == "The password is PARLEY-2026. Guests ask IT."  # marks taken out, even split across chunks
    final = stream.answer_replies[-1]
    assert final["quote_infos"] == [{"index": 1, "position": 27}, {"index": 1, "position": 42}]
    assert text[:27].endswith("PARLEY-2026") and text[:42].endswith("ask IT")  # right after the cited words
    assert final["knowledge"][0]["type"] == 2
    procedures = [p["name"] for p in stream.of("token_stat")[-1]["payload"]["procedures"]]
    assert procedures == ["knowledge", "large_language_model"]
    prompt = model.stats()["requests"][-1]["messages"][0]["content"]
    assert "PARLEY-2026" in prompt and "[1]" in prompt
    answer = server.records("kb-chat", session)[1]
    assert answer["references"] == references and answer["quote_infos"] == final["quote_infos"]


def test_the_visitors_scope_excludes_other_labels(server, model):
    _, scoped = ask(server, "kb-chat", "What is the office wifi password?", custom_variables={"department": "hr"})
    cited = [r["doc_name"] for r in (scoped.of("reference")[0]["payload"]["references"] if scoped.of("reference") else [])]
    assert "wifi.txt" not in cited
    assert "PARLEY-2026" not in model.stats()["requests"][-1]["messages"][0]["content"]
    _, both = ask(server, "kb-chat", "What is the office wifi password?", custom_variables={"department": "hr|it"})
    assert "wifi.txt" in [r["doc_name"] for r in both.of("reference")[0]["payload"]["references"]]


def test_chinese_questions_find_chinese_documents(server, model):
    _, stream = ask(server, "kb-chat", "出差报销发票要在多久内提交？")
    assert stream.of("reference")[0]["payload"]["references"][0]["doc_name"] == "报销.txt"
    assert "三十天" in model.stats()["requests"][-1]["messages"][0]["content"]


def test_nothing_relevant_gets_the_unknown_reply_when_the_app_says_so(server, model):
    _, stream = ask(server, "kb-strict", "Which team won the 1998 football world cup final?")
    final = stream.answer_replies[-1]
    assert final["reply_method"] == 2 and final["content"] == "I only know about our office."
    assert model.stats()["calls"] == 0


def test_a_malformed_label_gets_460024_and_stores_nothing(server, model):
    session, stream = ask(server, "kb-chat", "hello", visitor_labels=[{"name": "not a label!", "values": ["x"]}])
    assert stream.names() == ["error"] and stream.of("error")[0]["error"]["code"] == 460024
    assert server.records("kb-chat", session) == []


@pytest.mark.parametrize("question, kind", [("What is the office wifi password?", 2), ("How do I contact support?", 1)])
def test_v2_streams_carry_references_and_quote_infos(server, model, question, kind):
    model.script("wifi password", content="The password is PARLEY-2026[1]. Guests ask IT[1].", chunk_size=4)
    app = server.admin("GET", "/admin/apps/kb-chat").json()
    body = {"ConversationId": str(uuid.uuid4()), "AppKey": app["app_key"], "VisitorId": "v1", "Incremental": True,
            "Contents": [{"Type": "text", "Text": question}]}
    stream = post_v2_chat(server.url, body, "/v1/qbot/chat/sse")
    names = stream.names()
    reply_id = next(d["Message"]["MessageId"] for d in stream.of("message.added") if d["Message"]["Type"] == "reply")
    reference = stream.of("reference.added")[0]
    assert reference["MessageId"] == reply_id and reference["ContentIndex"] == 0
    item = reference["Reference"]
    assert item["Type"] == kind and item["Index"] == 1 and item["ReferBizId"].isdigit()
    # announced after the reply message exists (a client files it under that message) and before its text
    reply_opened = max(i for i, n in enumerate(names) if n == "content.added")
    last_text = max(i for i, n in enumerate(names) if n in ("text.delta", "text.replace"))
    assert reply_opened < names.index("reference.added") < last_text
    done = next(d["Message"] for d in stream.of("message.done") if d["Message"]["Type"] == "reply")
    completed = stream.of("response.completed")[0]["Response"]["Messages"][-1]
    assert done["Contents"][0]["References"][0]["ReferBizId"] == item["ReferBizId"] == \
        completed["Contents"][0]["References"][0]["ReferBizId"]
    if kind == 2:
        assert item["DocRefer"]["DocName"] == "wifi.txt" and item["DocName"] == "wifi.txt"
        assert stream.texts()["reply"] == "The password is PARLEY-2026. Guests ask IT."
        quotes = [d["QuoteInfo"] for d in stream.of("quote_info.added")]
        assert quotes == [{"Index": 1, "Position": 27}, {"Index": 1, "Position": 42}]
        assert done["Contents"][0]["QuoteInfos"] == quotes == completed["Contents"][0]["QuoteInfos"]
        assert names.index("quote_info.added") < names.index("response.completed")
    else:
        assert item["QaRefer"]["QaBizId"] == item["ReferBizId"] and not stream.of("quote_info.added")
        assert stream.texts()["reply"] == "Email support@example.com."


def test_a_workflow_searches_the_knowledge_base_within_its_labels(server, model):
    """Knowledge retrieval and knowledge Q&A nodes search the application's own knowledge base (issue 17)."""
    workflow = {
        "name": "kb-flow",
        "nodes": [
            {"id": "start", "type": "start", "inputs": [{"name": "dept", "type": "string", "default": "it"}]},
            {"id": "find", "type": "knowledge_retrieval", "labels": {"dept": ["{{start.dept}}"]}, "top_k": 1},
            {"id": "qa", "type": "knowledge_qa", "query": "QA node: {{sys.query}}", "labels": {"dept": ["{{start.dept}}"]}},
            {"id": "answer", "type": "llm", "system": "Facts: {{find.text}}", "prompt": "Flow question: {{sys.query}}"},
            {"id": "end", "type": "end", "reply": "{{answer.text}}"},
        ],
        "edges": [{"source": "start", "target": "find"}, {"source": "find", "target": "qa"},
                  {"source": "qa", "target": "answer"}, {"source": "answer", "target": "end"}],
    }
    server.create_app("kb-flow", workflow=workflow)
    for name, (text, label) in DOCUMENTS.items():
        response = server.admin("POST", "/admin/apps/kb-flow/kb/documents", params=[("name", name), ("label", label)],
                                content=text.encode())
        assert response.status_code == 201, response.text
    deadline = time.monotonic() + 120
    while any(d["status"] == "learning" for d in server.admin("GET", "/admin/apps/kb-flow/kb/documents").json()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    model.script("Flow question", content="Done.")
    _, it = ask(server, "kb-flow", "What is the office wifi password?")
    assert it.answer_replies[-1]["reply_method"] == 16
    requests = model.stats()["requests"]
    system = requests[-1]["messages"][0]["content"]
    assert system == "Facts: " + DOCUMENTS["wifi.txt"][0]
    # the knowledge Q&A node asked the model with the passages it found, and reported itself
    qa_request = requests[-2]["messages"]
    assert qa_request[-1]["content"] == "QA node: What is the office wifi password?"
    assert DOCUMENTS["wifi.txt"][0] in qa_request[0]["content"]
    qa_node = [r["work_flow"]["current_node"] for r in it.answer_replies
               if not r["is_final"] and r.get("work_flow") and r["work_flow"]["current_node"]["NodeID"] == "qa"][-1]
    assert (qa_node["NodeType"], qa_node["Status"]) == (4, 2)
    assert qa_node["Output"].startswith('{"text":"Echo: QA node: What is the office wifi password?"')
    _, hr = ask(server, "kb-flow", "What is the office wifi password?", custom_variables={"dept": "hr"})
    assert hr.answer_replies[-1]["content"] == "Done."
    assert "wifi" not in model.stats()["requests"][-1]["messages"][0]["content"]  # out of the node's label scope
