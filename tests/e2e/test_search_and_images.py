"""Online search and image understanding, end to end: Parley with a SearXNG-compatible and a
generic search engine on loopback (tests/support/search_server.py), the scripted model as a
vision model that answers from the image bytes it received, the ADP SSE face, and CloudBase
read by the official @cloudbase/ai SDK."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_cloudbase import JS_DIR, node_sdk  # noqa: F401  (the fixture installing @cloudbase/ai)
from tests.e2e.test_docparse import credential_for
from tests.support.processes import ParleyServer, ScriptedModel, default_config, start_parley
from tests.support.search_server import RESULTS, SearchEngines
from tests.support.sse import post_chat, post_v2_chat

MAX_IMAGE_BYTES = 65536


def config(model: ScriptedModel, engines: SearchEngines) -> str:
    return default_config(model) + f"""
[[models]]
name = "scripted-vision"
base_url = "{model.base_url}"
model = "scripted"
vision = true

[[search.providers]]
name = "fixed-searxng"
provider = "searxng"
base_url = "{engines.url}/searxng"
timeout = 3.0

[[search.providers]]
name = "fixed-generic"
provider = "generic"
base_url = "{engines.url}/generic"
timeout = 3.0

[images]
allowed_hosts = ["localhost", "127.0.0.1"]
max_bytes = {MAX_IMAGE_BYTES}

[cloud_api]
verify_signatures = false
"""


@pytest.fixture(scope="module")
def engines() -> Iterator[SearchEngines]:
    engines = SearchEngines()
    yield engines
    engines.close()


@pytest.fixture(scope="module")
def server(
    scripted_model: ScriptedModel, engines: SearchEngines, database_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParleyServer]:
    """One server per database (SQLite, then PostgreSQL) for the module's tests."""
    parley = start_parley(tmp_path_factory.mktemp("search-images"), config(scripted_model, engines), database_args)
    parley.create_app("web", search={"enabled": True, "provider": "fixed-searxng", "count": 3})
    parley.create_app("web-on-request", search={"provider": "fixed-generic", "count": 2})
    parley.create_app("vision", model="scripted-vision")
    parley.create_app("blind", model="scripted")
    parley.create_app("vision-for-images", model="scripted", vision_model="scripted-vision")
    yield parley
    parley.close()


def ask(server: ParleyServer, app_name: str, content: str, **fields: Any):
    app = server.admin("GET", f"/admin/apps/{app_name}").json()
    body = {"bot_app_key": app["app_key"], "visitor_biz_id": "v1", "session_id": "s-" + uuid.uuid4().hex[:12],
            "content": content, "incremental": True, **fields}
    return body["session_id"], post_chat(server.url, body)


def procedures(stream) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in stream.of("token_stat")[-1]["payload"]["procedures"]}


# --- online search -------------------------------------------------------------------------


def test_search_results_are_numbered_sources_cited_in_the_text(server, model, engines):
    """As the seed's reference type 4 shows: an online source's [n] stays in the reply's content."""
    model.script("Nezha", content="It passed 9.8 billion yuan[1], in the global top 20[2].", chunk_size=5)
    session, stream = ask(server, "web", "How is Nezha 2 doing at the box office?")
    references = stream.of("reference")[0]["payload"]["references"]
    assert [(r["id"], r["type"], r["name"], r["url"]) for r in references] == [
        (str(n), 4, r["title"], r["url"]) for n, r in enumerate(RESULTS[:3], 1)
    ]
    text = "".join(p["content"] for p in stream.answer_replies)
    assert text == "It passed 9.8 billion yuan[1], in the global top 20[2]."
    final = stream.answer_replies[-1]
    assert final["reply_method"] == 11
    assert not final.get("quote_infos")
    search = procedures(stream)["search_engine"]
    assert search["status"] == "success" and search["title"] == "调用搜索引擎" and isinstance(search["elapsed"], int)
    assert "3 results" in search["debugging"]["content"]
    assert list(procedures(stream)) == ["search_engine", "large_language_model"]
    prompt = model.stats()["requests"][-1]["messages"][0]["content"]
    assert f"[1] {RESULTS[0]['title']} ({RESULTS[0]['url']})" in prompt and RESULTS[2]["snippet"] in prompt
    assert RESULTS[3]["title"] not in prompt  # the application uses 3 results
    assert engines.queries()[-1] == {"provider": "searxng", "query": "How is Nezha 2 doing at the box office?", "count": 4}
    answer = server.records("web", session)[1]
    assert answer["references"] == references and not answer.get("quote_infos")
    assert answer["content"] == text and answer["reply_method"] == 11
    assert any(p["name"] == "search_engine" for p in answer["token_stat"]["procedures"])


@pytest.mark.parametrize(
    "app_name, switch, searched",
    [("web-on-request", "", False), ("web-on-request", "enable", True), ("web", "disable", False), ("web", "", True)],
)
def test_search_network_turns_search_on_or_off_for_one_turn(server, model, engines, app_name, switch, searched):
    before = len(engines.queries())
    _, stream = ask(server, app_name, "Any news about the film?", search_network=switch)
    assert (len(engines.queries()) > before) is searched
    assert bool(stream.of("reference")) is searched
    assert ("search_engine" in procedures(stream)) is searched
    assert stream.answer_replies[-1]["reply_method"] == (11 if searched else 1)
    if searched and app_name == "web-on-request":
        assert engines.queries()[-1] == {"provider": "generic", "query": "Any news about the film?", "count": 2}


@pytest.mark.parametrize(
    "question, status, says",
    [
        ("slow search please", "failed", "within 3 s"),
        ("broken search please", "failed", "HTTP 500"),
        ("search for nothing please", "success", "found nothing"),
    ],
)
def test_a_provider_that_times_out_fails_or_finds_nothing_leaves_the_turn_without_search(server, model, question, status, says):
    model.script(question, content="Answered from memory.")
    _, stream = ask(server, "web", question)
    assert stream.of("reference") == [] and stream.of("error") == []
    final = stream.answer_replies[-1]
    assert final["reply_method"] == 1 and "".join(p["content"] for p in stream.answer_replies) == "Answered from memory."
    search = procedures(stream)["search_engine"]
    assert search["status"] == status and says in search["debugging"]["content"]
    if "slow" in question:
        assert search["elapsed"] >= 3000  # the provider's timeout
    assert "Web search results" not in model.stats()["requests"][-1]["messages"][0]["content"]


def test_knowledge_and_search_sources_share_one_numbered_list(server, model):
    server.create_app("web-kb", search={"enabled": True, "provider": "fixed-generic", "count": 2})
    text = "The Nezha 2 premiere party is in hall B of the office on Friday."
    response = server.admin("POST", "/admin/apps/web-kb/kb/documents", params=[("name", "party.txt")], content=text.encode())
    assert response.status_code == 201, response.text
    import time

    deadline = time.monotonic() + 120
    while any(d["status"] == "learning" for d in server.admin("GET", "/admin/apps/web-kb/kb/documents").json()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    model.script("premiere party", content="Hall B[1]; the film passed 9.8 billion[2].")
    _, stream = ask(server, "web-kb", "Where is the Nezha 2 premiere party?")
    references = stream.of("reference")[0]["payload"]["references"]
    assert [r["type"] for r in references] == [2, 4, 4]
    assert references[0]["doc_name"] == "party.txt"
    assert [r["id"] for r in references[1:]] == ["2", "3"] and references[1]["url"] == RESULTS[0]["url"]
    # The knowledge passage's mark goes to quote_infos; the online source's stays in the text.
    assert "".join(p["content"] for p in stream.answer_replies) == "Hall B; the film passed 9.8 billion[2]."
    assert stream.answer_replies[-1]["quote_infos"] == [{"index": 1, "position": 6}]
    prompt = model.stats()["requests"][-1]["messages"][0]["content"]
    assert "[1] party.txt" in prompt and f"[2] {RESULTS[0]['title']}" in prompt
    assert list(procedures(stream)) == ["knowledge", "search_engine", "large_language_model"]


def test_an_application_naming_an_unknown_search_engine_or_vision_model_is_refused(server):
    response = server.admin("POST", "/admin/apps", json={"name": "web-typo", "search": {"provider": "serxng"}})
    assert response.status_code == 400 and "serxng" in response.text and "fixed-searxng" in response.text
    response = server.admin("POST", "/admin/apps", json={"name": "web-typo", "vision_model": "nope"})
    assert response.status_code == 400 and "vision_model" in response.text


def test_cloudbase_search_chunks_are_read_by_the_official_sdk(server, model, node_sdk):  # noqa: F811
    server.create_app("web-cloudbase", search={"enabled": True, "provider": "fixed-searxng", "count": 2})
    response = server.admin("POST", "/admin/apps/web-cloudbase/cloudbase", json={"searchEnable": True})
    assert response.status_code == 200, response.text
    response = server.admin("POST", "/admin/apps/web-cloudbase/cloudbase/keys", json={"kind": "api"})
    key, bot_id = response.json()["key"], response.json()["botId"]
    model.script("cloudbase box office", content="9.8 billion[1].")
    result = subprocess.run(
        [str(node_sdk), "search.js", f"{server.url}/v1", key, bot_id, "cloudbase box office of Nezha 2"],
        cwd=JS_DIR, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    chunks = json.loads(result.stdout)["chunks"]
    searches = [c for c in chunks if c.get("type") == "search"]
    assert len(searches) == 1
    assert searches[0]["search_info"]["search_results"] == [
        {"index": f"[{n}]", "title": r["title"], "url": r["url"]} for n, r in enumerate(RESULTS[:2], 1)
    ]
    assert chunks.index(searches[0]) < next(i for i, c in enumerate(chunks) if c.get("type") == "text")
    # The mark stays in the text: CloudBase's search_results name it by the same "[1]".
    assert "".join(c.get("content", "") for c in chunks if c.get("type") == "text") == "9.8 billion[1]."
    # The bot's switch off: the request's searchEnable alone does not search.
    server.admin("POST", "/admin/apps/web-cloudbase/cloudbase", json={"searchEnable": False})
    result = subprocess.run(
        [str(node_sdk), "search.js", f"{server.url}/v1", key, bot_id, "cloudbase box office again"],
        cwd=JS_DIR, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [c for c in json.loads(result.stdout)["chunks"] if c.get("type") == "search"]


# --- images ----------------------------------------------------------------------------------


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A real PNG of random-looking pixels (so that it does not compress)."""
    rows = b"".join(b"\x00" + hashlib.sha256(f"{seed}-{y}".encode()).digest() * (width * 3 // 32 + 1) for y in range(height))
    rows = b"".join(rows[i : i + 1 + width * 3] for i in range(0, len(rows), 1 + (width * 3 // 32 + 1) * 32))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def upload(server: ParleyServer, app_name: str, data: bytes) -> str:
    """Uploads through DescribeStorageCredential and a plain PUT, as a chat client does; the FileUrl."""
    app = server.admin("GET", f"/admin/apps/{app_name}").json()
    grant = credential_for(server, app, "png")
    response = httpx.put(grant["UploadUrl"], content=data)
    assert response.status_code == 200, response.text
    return grant["FileUrl"]


def seen(data: bytes) -> str:
    return f"{len(data)} bytes sha256 {hashlib.sha256(data).hexdigest()}"


def test_a_markdown_image_link_to_an_upload_reaches_the_vision_model(server, model):
    image = png(16, 16, seed=1)
    url = upload(server, "vision", image)
    model.script("this picture", content="A test pattern.")
    session, stream = ask(server, "vision", f"What is in this picture? ![]({url})")
    text = "".join(p["content"] for p in stream.answer_replies)
    assert text == f"Saw 1 images: {seen(image)}. A test pattern."
    final = stream.answer_replies[-1]
    assert final["reply_method"] == 13
    image_step = procedures(stream)["image"]
    assert image_step["status"] == "success" and image_step["title"] == "调用图像理解"
    assert model.stats()["images"][-1] == {"mime": "image/png", "size": len(image), "sha256": hashlib.sha256(image).hexdigest()}
    assert server.records("vision", session)[1]["reply_method"] == 13


def test_an_image_uploaded_through_file_infos_reaches_the_vision_model(server, model):
    image = png(20, 10, seed=2)
    url = upload(server, "vision", image)
    info = {"file_name": "pattern.png", "file_size": str(len(image)), "file_url": url, "file_type": "png", "doc_id": ""}
    _, stream = ask(server, "vision", "", file_infos=[info])
    assert "".join(p["content"] for p in stream.answer_replies).startswith(f"Saw 1 images: {seen(image)}.")
    assert stream.echo["file_infos"] == [info]


def test_a_v2_image_content_reaches_the_vision_model(server, model):
    image = png(12, 12, seed=5)
    url = upload(server, "vision", image)
    app = server.admin("GET", "/admin/apps/vision").json()
    body = {"ConversationId": str(uuid.uuid4()), "AppKey": app["app_key"], "VisitorId": "v1", "Incremental": True,
            "Contents": [{"Type": "text", "Text": "What is this?"}, {"Type": "image", "Image": {"Url": url}}]}
    stream = post_v2_chat(server.url, body, "/v1/qbot/chat/sse")
    assert stream.texts()["reply"].startswith(f"Saw 1 images: {seen(image)}.")


def test_an_application_picks_its_vision_model_for_questions_with_images(server, model):
    image = png(8, 8, seed=3)
    url = upload(server, "vision-for-images", image)
    _, stream = ask(server, "vision-for-images", f"Describe ![]({url})")
    assert "".join(p["content"] for p in stream.answer_replies).startswith(f"Saw 1 images: {seen(image)}.")
    _, plain = ask(server, "vision-for-images", "No image here")
    assert plain.answer_replies[-1]["reply_method"] == 1


def test_a_model_without_vision_answers_from_the_text_and_says_so(server, model):
    url = upload(server, "blind", png(8, 8, seed=4))
    _, stream = ask(server, "blind", f"What colour is it? ![]({url})")
    assert stream.of("error") == []
    assert stream.answer_replies[-1]["reply_method"] == 1
    step = procedures(stream)["image"]
    assert step["status"] == "failed" and "does not read images" in step["debugging"]["content"]
    request = model.stats()["requests"][-1]
    assert isinstance(request["messages"][-1]["content"], str)  # no image parts
    assert "cannot see" in request["messages"][0]["content"]


@pytest.mark.parametrize(
    "where",
    ["loopback by name", "loopback address", "host not allowed", "oversized upload", "upload of another application"],
)
def test_an_image_that_cannot_be_read_answers_460025_and_is_stored(server, model, engines, where):
    if where == "loopback by name":
        url = f"http://localhost:{engines.port}/searxng/search?format=json&q=x.png"  # allowed, but resolves to 127.0.0.1
    elif where == "loopback address":
        url = f"http://127.0.0.1:{engines.port}/image.png"
    elif where == "host not allowed":
        url = "https://images.example.com/cat.png"
    elif where == "oversized upload":
        url = upload(server, "vision", os.urandom(MAX_IMAGE_BYTES + 1))
    else:
        url = upload(server, "blind", png(8, 8))
    calls = model.stats()["calls"]
    session, stream = ask(server, "vision", f"Look: ![]({url})")
    errors = stream.of("error")
    assert len(errors) == 1 and errors[0]["error"]["code"] == 460025, stream.events
    assert stream.echo["content"] == f"Look: ![]({url})"
    assert model.stats()["calls"] == calls
    question, answer = server.records("vision", session)
    assert answer["status"] == "failed" and "image_failed" in answer["error_message"]
    if where.startswith("loopback"):
        assert "not a public address" in answer["error_message"]
