"""The CloudBase AI bot face, driven by the official `@cloudbase/ai` SDK from Node and by raw HTTP.

One Parley process for the module, with a short heartbeat interval. Bots and keys are made
through the admin API (and once through the CLI); every test uses its own application, so
the tests do not depend on each other's order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ROOT, ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import post_chat

JS_DIR = Path(__file__).parent / "cloudbase_js"
HEARTBEAT = ": heartbeat"


@pytest.fixture(scope="module")
def server(scripted_model: ScriptedModel, database_args: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    extra = "\n[cloudbase]\nheartbeat_interval = 0.2\nmodel_version = \"test-1\"\n"
    parley = start_parley(tmp_path_factory.mktemp("cloudbase"), default_config(scripted_model) + extra, database_args)
    yield parley
    parley.close()


@pytest.fixture(scope="module")
def node_sdk() -> Path:
    """The pinned @cloudbase/ai installed from package-lock.json (npm ci) when not there yet."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed to run the @cloudbase/ai tests")
    if not (JS_DIR / "node_modules" / "@cloudbase" / "ai").is_dir():
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return Path(node)


class Bot:
    """A published application with a CloudBase bot id and an API key."""

    def __init__(self, server: ParleyServer, name: str, **config: Any) -> None:
        self.server = server
        self.name = name
        server.create_app(name, **config)
        response = server.admin("POST", f"/admin/apps/{name}/cloudbase/keys", json={"kind": "api"})
        assert response.status_code == 201, response.text
        self.key = response.json()["key"]
        self.key_id = response.json()["id"]
        self.bot_id = response.json()["botId"]

    def new_key(self, kind: str = "api") -> str:
        response = self.server.admin("POST", f"/admin/apps/{self.name}/cloudbase/keys", json={"kind": kind})
        assert response.status_code == 201, response.text
        return response.json()["key"]

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def url(self, path: str = "") -> str:
        return f"{self.server.url}/v1/aibot/bots/{self.bot_id}{path}"

    def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return httpx.get(self.url(path), params=params, headers=self.headers(key), timeout=30)

    def post(self, path: str, body: Any = None, key: str | None = None) -> httpx.Response:
        if isinstance(body, bytes):
            headers = {**self.headers(key), "Content-Type": "application/json"}
            return httpx.post(self.url(path), content=body, headers=headers, timeout=30)
        return httpx.post(self.url(path), json=body, headers=self.headers(key), timeout=30)

    def send(self, body: dict[str, Any] | bytes, key: str | None = None) -> "Stream":
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        headers = {**self.headers(key), "Accept": "text/event-stream", "Content-Type": "application/json"}
        with httpx.stream("POST", self.url("/send-message"), headers=headers, timeout=60, **kwargs) as response:
            raw = response.read()
        return Stream(response.status_code, response.headers, raw.decode())


class Stream:
    def __init__(self, status: int, headers: httpx.Headers, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text
        blocks = [b for b in text.split("\n\n") if b]
        self.ids = [b.split("\n", 1)[0][3:] for b in blocks if b.startswith("id:")]
        self.blocks = [b.split("\n", 1)[1] if b.startswith("id:") else b for b in blocks]  # the events without their ids

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [json.loads(b[len("data: "):]) for b in self.blocks if b.startswith("data: {")]

    @property
    def content(self) -> str:
        return "".join(c.get("content", "") for c in self.chunks)

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.text)


def post_stream(bot: Bot, path: str, body: dict[str, Any]) -> Stream:
    headers = {**bot.headers(), "Accept": "text/event-stream"}
    with httpx.stream("POST", bot.url(path), json=body, headers=headers, timeout=60) as response:
        raw = response.read()
    return Stream(response.status_code, response.headers, raw.decode())


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


# --- the official SDK ---------------------------------------------------------------------


def test_the_cloudbase_js_sdk_chats_keeps_records_feedback_and_conversations(server, model, node_sdk):
    bot = Bot(server, "cb-js", greeting="Hi, I plan trips.", description="A travel helper",
              opening_questions=["Where to?"])
    model.script("js text stream", content="Paris is lovely in spring.")
    # The model's own counts are under Parley's running estimate: the stream must not go back on it.
    model.script("js data stream", content="Second answer here", usage={"prompt_tokens": 2, "completion_tokens": 1})
    model.script("js thinking please", reasoning="let me think", content="Thought through.", think_tags=True)
    model.script("js what is my name", content="Ada.")
    model.script("follow-up questions", content="What to pack?\nWhere to stay?\nHow to get there?")

    result = subprocess.run(
        [str(node_sdk), "drive.js", f"{server.url}/v1", bot.key, bot.bot_id],
        cwd=JS_DIR, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    assert out["list"]["total"] == 1
    assert out["list"]["botList"][0]["botId"] == bot.bot_id
    assert out["bot"]["name"] == "cb-js"
    assert out["bot"]["welcomeMessage"] == "Hi, I plan trips."
    assert out["bot"]["introduction"] == "A travel helper"
    assert out["bot"]["initQuestions"] == ["Where to?"]
    assert out["bot"]["multiConversationEnable"] is True

    assert out["created"]["title"] == "Trip planning"
    conversation_id = out["created"]["conversationId"]

    assert out["text"] == "Paris is lovely in spring."

    chunks = out["chunks"]
    assert "".join(c["content"] for c in chunks) == "Second answer here"
    assert [c["finish_reason"] for c in chunks][-1] == "stop"
    assert {c["finish_reason"] for c in chunks[:-1]} == {"continue"}
    assert {c["record_id"] for c in chunks} == {out["recordId"]}
    assert all(c["role"] == "assistant" and c["type"] == "text" and c["model"] == "scripted" for c in chunks)
    assert all(c["version"] == "test-1" and c["knowledge_base"] == [] for c in chunks)
    # usage as the seed documents it: promptTokens the same in every chunk, completionTokens cumulative
    usage = [c["usage"] for c in chunks]
    assert len({u["promptTokens"] for u in usage}) == 1 and usage[0]["promptTokens"] > 2
    completion = [u["completionTokens"] for u in usage]
    assert completion == sorted(completion) and completion[0] > 0
    assert all(u["totalTokens"] == u["promptTokens"] + u["completionTokens"] for u in usage)

    thinking = [c for c in out["thinkingChunks"] if c["type"] == "thinking"]
    assert "".join(c["reasoning_content"] for c in thinking) == "let me think"
    assert all(c["content"] == "" for c in thinking)
    assert "".join(c["content"] for c in out["thinkingChunks"]) == "Thought through."

    records = out["records"]["recordList"]
    assert out["records"]["total"] == 6
    assert [(r["role"], r["content"]) for r in records] == [
        ("user", "js text stream"), ("assistant", "Paris is lovely in spring."),
        ("user", "js data stream"), ("assistant", "Second answer here"),
        ("user", "js thinking please"), ("assistant", "Thought through."),
    ]
    assert all(r["conversation"] == conversation_id and r["botId"] == bot.bot_id for r in records)
    assert records[3]["recordId"] == out["recordId"]
    assert records[3]["replyTo"] == records[2]["recordId"]
    assert [r["content"] for r in out["recordsDesc"]["recordList"]] == ["Thought through.", "js thinking please"]
    assert out["recordsDesc"]["total"] == 6

    assert out["feedbackSent"] == {"status": "success"}
    assert out["feedback"]["total"] == 1
    feedback = out["feedback"]["feedbackList"][0]
    assert feedback["recordId"] == out["recordId"]
    assert (feedback["type"], feedback["rating"], feedback["comment"], feedback["tags"]) == ("upvote", 5, "spot on", ["helpful"])
    assert feedback["aiAnswer"] == "Second answer here"
    assert out["feedbackNone"] == {"feedbackList": [], "total": 0}

    assert out["recommended"].split("\n") == ["What to pack?", "Where to stay?", "How to get there?"]

    assert conversation_id in [c["conversationId"] for c in out["conversations"]["data"]]
    assert out["defaultConversations"]["total"] == 1
    assert out["defaultConversations"]["data"][0]["isDefault"] is True
    assert out["deleted"]["conversationId"] == conversation_id
    assert out["conversationsAfterDelete"] == {"data": [], "total": 0}

    errors = out["errors"]
    assert "AGENT_GET_INFO_ERROR" in errors["unknownBot"]
    assert "AGENT_INVALID_PARAM" in errors["emptyMessage"]
    assert "RESOURCE_NOT_FOUND" in errors["deletedConversation"]
    assert "AGENT_INVALID_PARAM" in errors["recordsWithoutSort"]
    assert "INVALID_CREDENTIALS" in errors["badKey"]

    # What the model received: the client's history when it sends one (even over stored turns),
    # the conversation's stored turns when it sends none; never both.
    def sent_for(question: str) -> list[tuple[str, str]]:
        request = next(r for r in model.stats()["requests"] if r["messages"][-1]["content"] == question)
        return [(m["role"], m["content"]) for m in request["messages"] if m["role"] != "system"]

    assert sent_for("js data stream") == [
        ("user", "js text stream"), ("assistant", "Paris is lovely in spring."), ("user", "js data stream"),
    ]
    assert sent_for("js thinking please") == [
        ("user", "js text stream"), ("assistant", "Paris is lovely in spring."),
        ("user", "js data stream"), ("assistant", "Second answer here"), ("user", "js thinking please"),
    ]
    assert out["told"] == "Ada."
    assert sent_for("js what is my name") == [
        ("user", "js my name is Ada"), ("assistant", "js Hello Ada."), ("user", "js what is my name"),
    ]

    # The upvote reached the record itself, as every face sees it.
    session_records = server.records("cb-js", conversation_id, face="cloudbase")
    rated = next(r for r in session_records if r["record_id"] == out["recordId"])
    assert rated["score"] == 1


# --- the stream -----------------------------------------------------------------------


def test_stream_starts_with_a_heartbeat_beats_while_the_model_is_silent_and_ends_with_done(server, model):
    bot = Bot(server, "cb-beat")
    model.script("slow start", content="Finally here.", ttft=1.5, usage={"prompt_tokens": 7, "completion_tokens": 6})
    stream = bot.send({"msg": "slow start please", "history": []})

    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-request-id"]
    assert stream.text.startswith(": heartbeat\n\n")
    first_data = next(i for i, b in enumerate(stream.blocks) if b.startswith("data: "))
    assert stream.blocks[:first_data].count(HEARTBEAT) >= 2
    assert stream.blocks[-1] == "data: [DONE]"
    assert stream.text.endswith("data: [DONE]\n\n")
    assert all(b == HEARTBEAT or b.startswith("data: ") for b in stream.blocks)
    turn = stream.ids[0].split("-")[0]
    assert stream.ids == [f"{turn}-{n}" for n in range(1, len(stream.blocks) - stream.blocks.count(HEARTBEAT) + 1)]

    chunks = stream.chunks
    assert stream.content == "Finally here."
    assert [c["finish_reason"] for c in chunks] == ["continue"] * (len(chunks) - 1) + ["stop"]
    created = {c["created"] for c in chunks}
    assert len(created) == 1 and isinstance(created.pop(), int)
    completion = [c["usage"]["completionTokens"] for c in chunks]
    assert completion == sorted(completion) and completion[0] > 0
    assert len({c["usage"]["promptTokens"] for c in chunks}) == 1
    assert chunks[-1]["usage"]["completionTokens"] == 6  # the model's count, over the running estimate (4)


def test_a_model_failure_mid_stream_is_an_error_chunk_then_done(server, model):
    bot = Bot(server, "cb-drop")
    model.script("drop me", content="partial answer that breaks", chunk_size=4, drop_after=2)
    stream = bot.send({"msg": "drop me now"})

    assert stream.status == 200
    assert stream.blocks[-1] == "data: [DONE]"
    chunks = stream.chunks
    assert stream.content == "partial "
    last = chunks[-1]
    assert last["finish_reason"] == "error"
    assert last["error"]["code"] == "AGENT_REQUEST_LLM_ERROR"
    assert last["error"]["message"]
    assert all(c["finish_reason"] == "continue" for c in chunks[:-1])

    records = bot.get("/records", sort="asc").json()
    assert [(r["role"], r["content"]) for r in records["recordList"]] == [("user", "drop me now"), ("assistant", "partial ")]


def test_recommend_questions_stream_and_their_failure(server, model):
    bot = Bot(server, "cb-recommend", description="Knows about tea")
    model.script("follow-up questions", content="Green or black?\nHow hot?\nHow long?", chunk_size=5)
    stream_ok = post_stream(bot, "/recommend-questions", {"msg": "tell me about tea", "history": [{"role": "user", "content": "hi"}]})
    assert stream_ok.status == 200
    assert stream_ok.content.split("\n") == ["Green or black?", "How hot?", "How long?"]
    assert stream_ok.chunks[-1]["finish_reason"] == "stop"
    assert stream_ok.blocks[-1] == "data: [DONE]"
    system = model.stats()["requests"][-1]["messages"][0]["content"]
    assert "Knows about tea" in system

    model.script("follow-up questions", status=500)
    failed = post_stream(bot, "/recommend-questions", {"msg": "tell me about tea"})
    assert failed.status == 200
    assert failed.chunks[-1]["finish_reason"] == "error"
    assert failed.chunks[-1]["error"]["code"] == "AGENT_REQUEST_LLM_ERROR"
    assert failed.blocks[-1] == "data: [DONE]"
    assert_error(bot.post("/recommend-questions", {"history": "no"}), 400, "AGENT_INVALID_PARAM")


def test_a_message_over_the_concurrency_limit_is_refused_with_exceed_ratelimit(server, model):
    bot = Bot(server, "cb-busy", concurrency=1)
    model.script("hold on", content="a slow reply", chunk_size=2, delay=0.2)
    headers = {**bot.headers(), "Accept": "text/event-stream"}
    with httpx.stream("POST", bot.url("/send-message"), json={"msg": "hold on"}, headers=headers, timeout=60) as first:
        lines = first.iter_lines()
        next(line for line in lines if line.startswith("data: {"))  # admitted and answering
        assert_error(bot.post("/send-message", {"msg": "me too"}), 429, "EXCEED_RATELIMIT")
        rest = list(lines)
    assert [line for line in rest if line][-1] == "data: [DONE]"
    assert [r["content"] for r in bot.get("/records", sort="asc").json()["recordList"]] == ["hold on", "a slow reply"]


def test_stored_history_of_the_conversation_reaches_the_model(server, model):
    bot = Bot(server, "cb-history")
    conversation = bot.post("/conversation", {"title": "Mine"})
    assert conversation.status_code == 201
    conversation_id = conversation.json()["conversationId"]
    model.script("first question", content="First answer.")
    assert bot.send({"msg": "first question", "conversationId": conversation_id}).content == "First answer."
    model.script("second question", content="Second answer.")
    assert bot.send({"msg": "second question", "conversationId": conversation_id, "history": []}).content == "Second answer."

    messages = model.stats()["requests"][-1]["messages"]
    assert [(m["role"], m["content"]) for m in messages if m["role"] != "system"] == [
        ("user", "first question"), ("assistant", "First answer."), ("user", "second question"),
    ]
    # A message without conversationId goes to the default conversation, which starts empty.
    model.script("default question", content="Default answer.")
    assert bot.send({"msg": "default question"}).content == "Default answer."
    messages = model.stats()["requests"][-1]["messages"]
    assert [m["content"] for m in messages if m["role"] != "system"] == ["default question"]
    # Files named by the client are kept with the question.
    model.script("with a file", content="Read it.")
    assert bot.send({"msg": "with a file", "files": ["cloud://env-1.bucket/docs/plan.pdf"]}).content == "Read it."
    question = bot.get("/records", sort="desc", pageSize=2).json()["recordList"][1]
    assert question["fileInfos"] == [{"cloudId": "cloud://env-1.bucket/docs/plan.pdf", "fileName": "plan.pdf", "type": "pdf", "bytes": 0}]
    listed = bot.get("/conversation").json()
    assert listed["total"] == 2
    assert listed["data"][0]["title"] == "default question"  # most recently active first, titled by its first message
    renamed = httpx.patch(bot.url(f"/conversation/{conversation_id}"), json={"title": "Renamed"}, headers=bot.headers())
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"


# --- auth and bad input ---------------------------------------------------------------


def test_credentials_are_checked_on_every_endpoint(server, model):
    bot = Bot(server, "cb-auth")
    other = Bot(server, "cb-auth-other")

    no_header = httpx.get(bot.url())
    assert_error(no_header, 401, "MISSING_CREDENTIALS")
    assert_error(httpx.get(bot.url(), headers={"Authorization": "Basic abc"}), 401, "MISSING_CREDENTIALS")
    assert_error(bot.get("", key="cb_api_not-a-key"), 401, "INVALID_CREDENTIALS")
    assert_error(httpx.post(bot.url("/send-message"), json={"msg": "hi"}), 401, "MISSING_CREDENTIALS")
    assert_error(bot.get("", key=other.key), 403, "PERMISSION_DENIED")
    assert_error(bot.post("/send-message", {"msg": "hi"}, key=other.key), 403, "PERMISSION_DENIED")
    unknown = httpx.get(f"{server.url}/v1/aibot/bots/bot-unknown", headers=bot.headers())
    assert_error(unknown, 404, "AGENT_GET_INFO_ERROR")

    # A revoked key stops working at once.
    spare = bot.new_key()
    assert bot.get("", key=spare).status_code == 200
    key_id = next(k["id"] for k in server.admin("GET", "/admin/apps/cb-auth/cloudbase/keys").json() if spare.startswith(k["prefix"]))
    assert server.admin("DELETE", f"/admin/cloudbase/keys/{key_id}").status_code == 204
    assert_error(bot.get("", key=spare), 401, "INVALID_CREDENTIALS")

    # A publishable key is a visitor: it chats and rates, but reads no feedback and no one else's conversation.
    visitor = bot.new_key("publishable")
    assert "agentSetting" not in bot.get("", key=visitor).json()
    assert "agentSetting" in bot.get("").json()
    assert_error(bot.get("/feedback", key=visitor), 403, "PERMISSION_DENIED")
    mine = bot.post("/conversation", {"title": "operator's"}).json()["conversationId"]
    assert_error(bot.get("/records", key=visitor, sort="asc", conversationId=mine), 404, "RESOURCE_NOT_FOUND")
    assert_error(bot.post("/send-message", {"msg": "hi", "conversationId": mine}, key=visitor), 404, "RESOURCE_NOT_FOUND")
    assert bot.get("/conversation", key=visitor).json() == {"data": [], "total": 0}

    # A disabled bot answers nothing.
    assert server.admin("POST", "/admin/apps/cb-auth/cloudbase", json={"enable": False}).json()["enable"] is False
    assert_error(bot.post("/send-message", {"msg": "hi"}), 404, "AGENT_GET_INFO_ERROR")


def test_bad_input_gets_agent_invalid_param_and_stores_nothing(server, model):
    bot = Bot(server, "cb-input")
    model.script("kept question", content="Kept answer.")
    assert bot.send({"msg": "kept question"}).content == "Kept answer."
    before = bot.get("/records", sort="asc").json()

    bad_bodies: list[Any] = [
        b"{not json",
        b"[1, 2]",
        {},
        {"msg": 42},
        {"msg": "   "},
        {"msg": "hi", "history": "nope"},
        {"msg": "hi", "history": [{"role": "robot", "content": "x"}]},
        {"msg": "hi", "history": [{"role": "user"}]},
        {"msg": "hi", "files": ["ftp://x/y.pdf"]},
        {"msg": "hi", "files": "cloud://x"},
        {"msg": "hi", "searchEnable": "maybe"},
        {"msg": "hi", "conversationId": 7},
        {"msg": "x" * 201},  # longer than the model's input_len_limit of 200
    ]
    for body in bad_bodies:
        stream = bot.send(body)
        assert stream.status == 400, (body, stream.text)
        assert stream.headers["content-type"].startswith("application/json")
        assert stream.json["code"] == "AGENT_INVALID_PARAM", body
        assert stream.json["requestId"] == stream.headers["x-request-id"]

    assert_error(bot.get("/records"), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.get("/records", sort="sideways"), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.get("/records", sort="asc", pageSize=0), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.get("/records", sort="asc", pageNumber="one"), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.get("/conversation", limit=101), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.get("/feedback", senderFilter="like"), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.post("/feedback", {"recordId": "1", "type": "meh"}), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.post("/feedback", {"recordId": "abc", "type": "upvote"}), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.post("/feedback", {"recordId": "12345", "type": "upvote"}), 404, "RESOURCE_NOT_FOUND")
    question_id = before["recordList"][0]["recordId"]
    assert_error(bot.post("/feedback", {"recordId": question_id, "type": "upvote"}), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.post("/conversation", {"title": "t" * 300}), 400, "AGENT_INVALID_PARAM")
    assert_error(bot.post("/conversation", b"{"), 400, "AGENT_INVALID_PARAM")

    # Calls of the family Parley does not serve, and wrong methods, still answer in CloudBase's shape.
    assert_error(bot.post("/files", {"fileList": []}), 404, "INVALID_PATH")
    assert_error(httpx.post(f"{server.url}/v1/aibot/bots", json={}, headers=bot.headers()), 405, "METHOD_NOT_ALLOWED")

    assert bot.get("/records", sort="asc").json() == before
    assert before["total"] == 2


def test_raw_unencoded_query_parameters_are_read_as_the_sdk_writes_them(server, model):
    bot = Bot(server, "cb-query", description="C++ & more")
    url = f"{server.url}/v1/aibot/bots?name=cb-query&introduction=C++&information=undefined&pageSize=10&pageNumber=1"
    listed = httpx.get(url, headers=bot.headers()).json()
    assert [b["botId"] for b in listed["botList"]] == [bot.bot_id]
    assert httpx.get(url, headers=bot.headers()).headers["x-request-id"]
    nothing = httpx.get(f"{server.url}/v1/aibot/bots?name=other&pageSize=10&pageNumber=1", headers=bot.headers()).json()
    assert nothing == {"botList": [], "total": 0}


def test_the_cli_issues_keys_that_work(server, model):
    server.create_app("cb-cli")
    command = [sys.executable, "-m", "parley", "cloudbase"]
    where = ["--config", str(server.config_file), "--data-dir", str(server.data_dir)]
    published = subprocess.run([*command, "bot", "publish", "cb-cli", "--bot-id", "ibot-cli-test", *where],
                               cwd=ROOT, capture_output=True, text=True, timeout=60, env=server.env)
    assert published.returncode == 0, published.stderr
    created = subprocess.run([*command, "key", "create", "cb-cli", "--publishable", *where],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, env=server.env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("cb_pub_")
    response = httpx.get(f"{server.url}/v1/aibot/bots/ibot-cli-test", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert response.json()["botId"] == "ibot-cli-test"
    # The bot id is fixed once set, and unique.
    moved = server.admin("POST", "/admin/apps/cb-cli/cloudbase", json={"botId": "ibot-other"})
    assert moved.status_code == 400 and "already published" in moved.json()["error"]["message"]
    server.create_app("cb-cli-2")
    taken = server.admin("POST", "/admin/apps/cb-cli-2/cloudbase", json={"botId": "ibot-cli-test"})
    assert taken.status_code == 400 and "taken" in taken.json()["error"]["message"]


def test_an_adp_client_naming_a_cloudbase_conversation_lands_in_a_session_of_its_own(server, model):
    bot = Bot(server, "cb-isolated")
    conversation_id = bot.post("/conversation", {"title": "Private"}).json()["conversationId"]
    model.script("my password is swordfish", content="Noted.")
    assert bot.send({"msg": "my password is swordfish", "conversationId": conversation_id}).content == "Noted."
    # An AppKey holder on the ADP face picks the CloudBase face's session name and visitor id.
    app_key = server.admin("GET", "/admin/apps/cb-isolated").json()["app_key"]
    model.script("what is my password", content="I don't know.")
    stream = post_chat(server.url, {"bot_app_key": app_key, "visitor_biz_id": f"cloudbase:{bot.key_id}",
                                    "session_id": conversation_id, "content": "what is my password", "request_id": "r1"})
    assert stream.status == 200 and stream.answer_replies[-1]["content"] == "I don't know."
    seen = [m["content"] for m in model.stats()["requests"][-1]["messages"]]
    assert not any("swordfish" in text or "Noted." in text for text in seen), seen
    # The CloudBase conversation holds only its own turn; the ADP turn is in the ADP session of that name.
    records = bot.get("/records", sort="asc", conversationId=conversation_id).json()["recordList"]
    assert [r["content"] for r in records] == ["my password is swordfish", "Noted."]
    assert [r["content"] for r in server.records("cb-isolated", conversation_id)] == ["what is my password", "I don't know."]


def test_a_client_history_reaches_the_model_instead_of_the_stored_one(server, model):
    bot = Bot(server, "cb-client-history")
    conversation_id = bot.post("/conversation", {"title": "Kept elsewhere"}).json()["conversationId"]
    history = [{"role": "user", "content": "my name is Ada"}, {"role": "assistant", "content": "Hello Ada."},
               {"role": "system", "content": "ignored"}]
    model.script("what is my name", content="Ada.")
    assert bot.send({"msg": "what is my name", "conversationId": conversation_id, "history": history}).content == "Ada."
    sent = [(m["role"], m["content"]) for m in model.stats()["requests"][-1]["messages"] if m["role"] != "system"]
    assert sent == [("user", "my name is Ada"), ("assistant", "Hello Ada."), ("user", "what is my name")]
    # The conversation now has a stored turn; a history the client sends still wins over it
    # (it is the conversation as the client keeps it), and nothing is doubled.
    model.script("and again", content="Still Ada.")
    edited = [{"role": "user", "content": "my name is Grace"}, {"role": "assistant", "content": "Hello Grace."}]
    bot.send({"msg": "and again", "conversationId": conversation_id, "history": edited})
    sent = [(m["role"], m["content"]) for m in model.stats()["requests"][-1]["messages"] if m["role"] != "system"]
    assert sent == [("user", "my name is Grace"), ("assistant", "Hello Grace."), ("user", "and again")]
    # Without a history the stored turns are the context.
    model.script("once more", content="Yes.")
    bot.send({"msg": "once more", "conversationId": conversation_id, "history": []})
    sent = [(m["role"], m["content"]) for m in model.stats()["requests"][-1]["messages"] if m["role"] != "system"]
    assert sent == [("user", "what is my name"), ("assistant", "Ada."), ("user", "and again"),
                    ("assistant", "Still Ada."), ("user", "once more")]


def test_a_workflow_answers_in_cloudbase_chunks(server, model):
    """A workflow's message text and reply reach a CloudBase client as its text chunks (issue 17)."""
    workflow = {
        "name": "cb-flow",
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "note", "type": "message", "text": "Looking it up..."},
            {"id": "ask", "type": "llm", "prompt": "Flow: {{sys.query}}"},
            {"id": "end", "type": "end", "reply": "{{ask.text}}"},
        ],
        "edges": [{"source": "start", "target": "note"}, {"source": "note", "target": "ask"},
                  {"source": "ask", "target": "end"}],
    }
    bot = Bot(server, "cb-workflow", workflow=workflow)
    model.script("Flow: opening hours", content="Nine to five.")
    stream = bot.send({"msg": "opening hours", "history": []})
    assert stream.status == 200 and stream.blocks[-1] == "data: [DONE]"
    assert stream.content == "Looking it up...\n\nNine to five."
    assert stream.chunks[-1]["finish_reason"] == "stop"


def test_a_paused_workflow_lists_its_option_cards_and_resumes_on_the_next_message(server, model):
    """Option cards reach a CloudBase client as text it can answer with; the answer resumes the run
    in the same conversation, and a failing node is an error chunk (issue 17)."""
    workflow = {
        "name": "cb-menu",
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "pick", "type": "option_cards", "text": "Tea or coffee?", "options": ["Tea", "Coffee"]},
            {"id": "tea", "type": "end", "reply": "Tea it is."},
            {"id": "broken", "type": "code", "code": "def main():\n    return {}", "outputs": {"x": "string"}},
            {"id": "never", "type": "end", "reply": "unreachable"},
        ],
        "edges": [{"source": "start", "target": "pick"}, {"source": "pick", "target": "tea", "port": "Tea"},
                  {"source": "pick", "target": "broken", "port": "Coffee"}, {"source": "broken", "target": "never"}],
    }
    bot = Bot(server, "cb-menu", workflow=workflow)
    conversation = bot.post("/conversation", {"title": "Drinks"}).json()["conversationId"]
    paused = bot.send({"msg": "a drink please", "conversationId": conversation, "history": []})
    assert paused.content == "Tea or coffee?\n\n- Tea\n- Coffee" and paused.chunks[-1]["finish_reason"] == "stop"
    resumed = bot.send({"msg": "Tea", "conversationId": conversation, "history": []})
    assert resumed.content == "Tea it is." and resumed.blocks[-1] == "data: [DONE]"
    bot.send({"msg": "another", "conversationId": conversation, "history": []})
    failed = bot.send({"msg": "Coffee", "conversationId": conversation, "history": []})
    assert failed.chunks[-1]["finish_reason"] == "error" and "node broken" in failed.chunks[-1]["error"]["message"]
    assert failed.blocks[-1] == "data: [DONE]"
