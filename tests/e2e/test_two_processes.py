"""Two Parley processes on one PostgreSQL database serve one application at once.

Many turns at the same moment, through the ADP SSE face and the CloudBase face, spread over
both processes: new sessions, sessions that both processes serve, and the same new sessions
opened by both processes in the same instant. Afterwards every question and every answer is
counted and checked, in the database and through both processes' APIs: none lost, none twice.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.postgres import Postgres
from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.sse import post_chat

APP = "two-processes"


@pytest.fixture(scope="module")
def processes(
    scripted_model: ScriptedModel, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    url = postgres.new_database()
    args = ["--no-demo", "--database-url", url]
    first = start_parley(tmp_path_factory.mktemp("first"), default_config(scripted_model), args)
    try:
        second = start_parley(tmp_path_factory.mktemp("second"), default_config(scripted_model), args)
    except BaseException:
        first.close()
        raise
    yield first, second
    second.close()
    first.close()


def sql(postgres: Postgres, server: ParleyServer, query: str) -> list[list[str]]:
    database = server.database_url.rsplit("/", 1)[1]
    return [line.split("|") for line in postgres.psql(database, query).splitlines()]


def adp_turn(server: ParleyServer, app_key: str, session_id: str, visitor: str, content: str) -> dict[str, Any]:
    stream = post_chat(server.url, {"bot_app_key": app_key, "visitor_biz_id": visitor, "session_id": session_id,
                                    "content": content}, timeout=120)
    assert stream.status == 200, stream.raw
    answers = stream.answer_replies
    assert answers and stream.of("error") == [], stream.raw  # the turn was answered, not refused
    final = answers[-1]
    return {"question_id": stream.echo["record_id"], "answer_id": final["record_id"], "answer": final["content"],
            "final": final["is_final"]}


def cloudbase_turn(server: ParleyServer, bot_id: str, key: str, conversation_id: str | None, content: str) -> str:
    body: dict[str, Any] = {"msg": content}
    if conversation_id is not None:
        body["conversationId"] = conversation_id
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    with httpx.stream("POST", f"{server.url}/v1/aibot/bots/{bot_id}/send-message", json=body, headers=headers,
                      timeout=120) as response:
        raw = response.read().decode()
    assert response.status_code == 200, raw
    assert raw.rstrip().endswith("data: [DONE]"), raw
    return raw


def test_two_processes_serve_one_application_at_once_without_losing_or_repeating_a_record(processes, postgres, model):
    first, second = processes
    app = first.create_app(APP, concurrency=1000)
    keys = first.admin("POST", f"/admin/apps/{APP}/cloudbase/keys", json={"kind": "api"}).json()
    bot_id, key = keys["botId"], keys["key"]
    model.script("slowly", content="an answer in several pieces", chunk_size=4, delay=0.01)
    run = uuid.uuid4().hex[:6]

    # ADP: 30 sessions each served by one process, 10 served by both (4 turns each, alternating),
    # and 10 new sessions whose first turn reaches both processes at the same moment.
    adp: list[tuple[int, str, str, str]] = []  # (process, session, visitor, question)
    for n in range(30):
        adp.append((n % 2, f"own-{run}-{n}", f"v-own-{n}", f"own {n} slowly"))
    for n in range(10):
        for turn in range(4):
            adp.append((turn % 2, f"both-{run}-{n}", f"v-both-{n}", f"both {n}.{turn} slowly"))
    for n in range(10):
        for process in (0, 1):
            adp.append((process, f"race-{run}-{n}", f"v-race-{n}", f"race {n}.{process} slowly"))
    # CloudBase: the key's default conversation (made by whichever process comes first) and two
    # conversations made by one process and used through both.
    conversations = [None] + [
        httpx.post(
            f"{first.url}/v1/aibot/bots/{bot_id}/conversation", json={"title": f"c{n}"},
            headers={"Authorization": f"Bearer {key}"}, timeout=30,
        ).json()["conversationId"]
        for n in range(2)
    ]
    cloudbase = [(m % 2, conversations[m % 3], f"cloudbase {m} slowly") for m in range(24)]

    servers = (first, second)
    with ThreadPoolExecutor(max_workers=64) as pool:
        adp_futures = [pool.submit(adp_turn, servers[p], app["app_key"], s, v, q) for p, s, v, q in adp]
        cloudbase_futures = [pool.submit(cloudbase_turn, servers[p], bot_id, key, c, q) for p, c, q in cloudbase]
        adp_results = [f.result() for f in adp_futures]
        for f in cloudbase_futures:
            f.result()

    # Every ADP stream finished with its own answer, and no two turns got the same record ids.
    assert all(r["final"] and r["answer"] == "an answer in several pieces" for r in adp_results)
    ids = [r["question_id"] for r in adp_results] + [r["answer_id"] for r in adp_results]
    assert len(set(ids)) == len(ids) == 2 * len(adp)

    # In the database: one session per name and face, two records a turn, all finished, none twice.
    adp_sessions = {s for _, s, _, _ in adp}
    stored_sessions = sql(postgres, first, "SELECT face, session_id, visitor_biz_id FROM sessions")
    assert Counter((f, s) for f, s, _ in stored_sessions if f == "adp") == Counter({("adp", s): 1 for s in adp_sessions})
    assert {(s, v) for f, s, v in stored_sessions if f == "adp"} == {(s, v) for _, s, v, _ in adp}
    rows = sql(postgres, first, "SELECT s.face, s.session_id, r.id, r.is_from_self, r.content, r.status, "
                                "coalesce(r.related_record_id::text, '') FROM records r JOIN sessions s ON s.id = r.session_pk")
    assert len({row[2] for row in rows}) == len(rows) == 2 * (len(adp) + len(cloudbase))
    assert all(status == "success" for *_, status, _ in rows)
    asked = [(face, session, content) for face, session, _, from_self, content, _, _ in rows if from_self == "t"]
    assert Counter((s, q) for face, s, q in asked if face == "adp") == Counter((s, q) for _, s, _, q in adp)
    assert Counter(q for face, _, q in asked if face == "cloudbase") == Counter(q for *_, q in cloudbase)
    question_ids = {row[2] for row in rows if row[3] == "t"}
    answers = [row for row in rows if row[3] == "f"]
    assert sorted(row[6] for row in answers) == sorted(question_ids)  # each question answered exactly once
    assert {row[2] for row in answers if row[0] == "adp"} == {r["answer_id"] for r in adp_results}
    cloudbase_sessions = {row[1] for row in rows if row[0] == "cloudbase"}
    assert len(cloudbase_sessions) == 3  # the default conversation was made once, by one of the processes

    # Through the API of each process: every session's history holds its questions, each answered once.
    by_session: dict[str, Counter[str]] = {}
    for _, session, _, content in adp:
        by_session.setdefault(session, Counter())[content] += 1
    for server in servers:
        for session, expected in by_session.items():
            records = server.records(APP, session)
            assert Counter(r["content"] for r in records if r["is_from_self"]) == expected
            answered = [r for r in records if not r["is_from_self"]]
            assert sorted(r["related_record_id"] for r in answered) == sorted(r["record_id"] for r in records if r["is_from_self"])
            assert all(r["status"] == "success" for r in records)
        seen: Counter[str] = Counter()
        for conversation in conversations:
            params: dict[str, Any] = {"sort": "asc", "pageSize": 100}
            if conversation is not None:
                params["conversationId"] = conversation
            listed = httpx.get(f"{server.url}/v1/aibot/bots/{bot_id}/records", params=params,
                               headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
            assert listed["total"] == len(listed["recordList"])
            seen.update(r["content"] for r in listed["recordList"] if r["role"] == "user")
            replies = [r["replyTo"] for r in listed["recordList"] if r["role"] == "assistant"]
            assert sorted(replies) == sorted(r["recordId"] for r in listed["recordList"] if r["role"] == "user")
        assert seen == Counter(q for *_, q in cloudbase)


def test_a_qa_pair_changed_through_one_process_is_matched_by_the_other_on_its_next_question(processes, model):
    """Each process keeps its applications' Q&A questions in memory to match them; a pair added,
    changed or deleted through the other process shows on the very next question, no restart."""
    first, second = processes
    name = "qa-" + uuid.uuid4().hex[:6]
    app = first.create_app(name)
    kb = f"/admin/apps/{name}/kb/qa"
    model.script("bicycle", content="The model knows nothing about bicycles.")

    def ask(server: ParleyServer, question: str) -> tuple[int, str]:
        stream = post_chat(server.url, {"bot_app_key": app["app_key"], "visitor_biz_id": "v",
                                        "session_id": "s-" + uuid.uuid4().hex[:10], "content": question})
        final = stream.answer_replies[-1]
        return final["reply_method"], final["content"]

    def change(method: str, path: str, **body: Any) -> dict[str, Any]:
        response = first.admin(method, path, json=body or None)
        assert response.status_code in (200, 201, 204), response.text
        return response.json() if response.content else {}

    change("POST", kb, question="Where is the canteen?", answer="On the ground floor.")
    assert ask(second, "Where is the canteen?") == (5, "On the ground floor.")  # the second process has loaded the pairs
    assert ask(second, "Where do I leave my bicycle?")[0] != 5

    pair = change("POST", kb, question="Where do I leave my bicycle?", answer="In the yard behind the building.")
    assert ask(second, "Where do I leave my bicycle?") == (5, "In the yard behind the building.")

    change("PATCH", f"{kb}/{pair['qa_biz_id']}", question="How do I book a meeting room?", answer="Through the calendar.")
    assert ask(second, "How do I book a meeting room?") == (5, "Through the calendar.")
    assert ask(second, "Where do I leave my bicycle?")[0] != 5

    change("DELETE", f"{kb}/{pair['qa_biz_id']}")
    assert ask(second, "How do I book a meeting room?")[0] != 5
    assert ask(second, "Where is the canteen?") == (5, "On the ground floor.")
