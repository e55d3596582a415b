"""The knowledge admin API and `parley kb` against a real Parley process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.knowledge import files
from tests.support.processes import ROOT, ParleyServer, ScriptedModel

APP = "kb-e2e"
BASE = f"/admin/apps/{APP}/kb"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, scripted_model: ScriptedModel) -> ParleyServer:
    """Every test here runs on both databases: the session's Parley on SQLite, then one on PostgreSQL."""
    scripted_model.reset()
    parley: ParleyServer = request.getfixturevalue(f"parley_on_{request.param}")
    parley.create_app(APP, publish=False)
    labels = {"policy.docx": [("label", "dept=hr")], "notes.txt": [("label", "dept=it")]}
    for name, data in files.every_type().items():
        response = parley.admin("POST", f"{BASE}/documents", params=[("name", name), *labels.get(name, [])], content=data)
        assert response.status_code == 201, response.text
        assert response.json()["document"]["status"] == "learning"
    wait_until_learned(parley)
    return parley


def wait_until_learned(parley: ParleyServer, deadline: float = 120) -> list[dict]:
    end = time.monotonic() + deadline
    while True:
        documents = parley.admin("GET", f"{BASE}/documents").json()
        if all(d["status"] != "learning" for d in documents) or time.monotonic() > end:
            return documents
        time.sleep(0.2)


def search(parley: ParleyServer, question: str, **body) -> dict:
    response = parley.admin("POST", f"{BASE}/search", json={"question": question, **body})
    assert response.status_code == 200, response.text
    return response.json()


def run_cli(parley: ParleyServer, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "parley", *args, "--config", str(parley.config_file), "--data-dir", str(parley.data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**parley.env, **({"PARLEY_DATABASE_URL": parley.database_url} if parley.database_url else {})},
    )


def test_every_uploaded_type_is_learned_in_the_background(server):
    documents = {d["name"]: d for d in server.admin("GET", f"{BASE}/documents").json()}
    assert set(documents) == set(files.every_type())
    assert {d["status"] for d in documents.values()} == {"success"}
    assert documents["policy.docx"]["labels"] == {"dept": ["hr"]}
    assert documents["guide.md"]["doc_id"].isdigit()
    one = server.admin("GET", f"{BASE}/documents/{documents['manual.pdf']['doc_id']}").json()
    assert one["segments"] >= 2


def test_questions_retrieve_cited_segments_and_references_resolve(server):
    english = search(server, "How long does the battery last?")
    assert english["kind"] == "passages"
    best = english["passages"][0]
    assert (best["doc_name"], best["page"]) == ("manual.pdf", 2)
    reference = english["references"][0]
    assert reference["type"] == 2 and reference["id"] == best["id"] and reference["doc_name"] == "manual.pdf"
    details = server.admin("POST", f"{BASE}/refer", json={"ids": [reference["id"]]}).json()
    assert details[0]["doc_type"] == 2 and "twelve hours" in details[0]["page_content"]
    assert details[0]["page_infos"] == [2]

    chinese = search(server, "员工每年有几天带薪病假？", visitor_labels=[{"name": "dept", "values": ["hr"]}])
    assert chinese["passages"][0]["doc_name"] == "policy.docx"
    assert chinese["context"].startswith("[1] policy.docx")


def test_label_scope_excludes_documents_of_other_labels(server):
    scoped = search(server, "What is the office wifi password?", visitor_labels=[{"name": "dept", "values": ["hr"]}])
    assert all(p["doc_name"] != "notes.txt" for p in scoped["passages"])
    unscoped = search(server, "What is the office wifi password?")
    assert unscoped["passages"][0]["doc_name"] == "notes.txt"


def test_qa_pairs_from_the_api_and_an_import_answer_directly(server, scripted_model):
    response = server.admin(
        "POST", f"{BASE}/qa",
        json={"question": "How do I contact support?", "answer": "Email support@example.com.",
              "similar_questions": ["客服怎么联系？"]},
    )
    assert response.status_code == 201, response.text
    imported = server.admin("POST", f"{BASE}/qa/import", params={"name": "qa.csv"},
                            content="问题,答案\n发票怎么开？,在订单页面申请电子发票。\n".encode())
    assert imported.status_code == 201 and imported.json()["imported"] == 1
    calls = scripted_model.stats()["calls"]
    hit = search(server, "客服怎么联系")
    assert (hit["kind"], hit["qa"]["answer"]) == ("qa", "Email support@example.com.")
    assert hit["references"][0]["type"] == 1 and hit["knowledge"] == [{"id": hit["qa"]["qa_biz_id"], "type": 1}]
    assert search(server, "发票怎么开")["qa"]["answer"] == "在订单页面申请电子发票。"
    assert scripted_model.stats()["calls"] == calls  # answered without the model
    pairs = server.admin("GET", f"{BASE}/qa").json()
    assert {p["question"] for p in pairs} >= {"How do I contact support?", "发票怎么开？"}


def test_the_cli_learns_into_the_running_servers_knowledge_base(server, tmp_path: Path):
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "parking.md").write_text("# Parking\n\nVisitors park for free in garage B, level minus two.\n")
    done = run_cli(server, "kb", "add", APP, str(folder), "--label", "dept=facilities")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "learned" in done.stdout and "parking.md" in done.stdout
    found = search(server, "Where can visitors park?")
    assert found["passages"][0]["doc_name"] == "parking.md"
    listed = run_cli(server, "kb", "list", APP)
    assert "parking.md" in listed.stdout and "success" in listed.stdout

    deleted = run_cli(server, "kb", "delete", APP, "parking.md")
    assert deleted.returncode == 0, deleted.stderr
    assert all(p["doc_name"] != "parking.md" for p in search(server, "Where can visitors park?")["passages"])


def test_a_damaged_document_fails_with_its_reason(server):
    response = server.admin("POST", f"{BASE}/documents", params={"name": "broken.docx", "wait": "1"}, content=b"not a zip")
    assert response.status_code == 201
    document = response.json()["document"]
    assert document["status"] == "failed" and "docx" in document["reason"]
    assert server.admin("DELETE", f"{BASE}/documents/{document['doc_id']}").status_code == 204
    assert server.admin("GET", f"{BASE}/documents/{document['doc_id']}").status_code == 404


def test_a_pair_and_a_document_are_changed_in_place(server):
    created = server.admin("POST", f"{BASE}/qa", json={"question": "Where is the parking lot?", "answer": "Behind B1."})
    qa_id = created.json()["qa_biz_id"]
    patched = server.admin("PATCH", f"{BASE}/qa/{qa_id}", json={"answer": "Under building C."})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["qa_biz_id"], patched.json()["question"]) == (qa_id, "Where is the parking lot?")
    assert search(server, "Where is the parking lot?")["qa"]["answer"] == "Under building C."

    notes = next(d for d in server.admin("GET", f"{BASE}/documents").json() if d["name"] == "notes.txt")
    patched = server.admin("PATCH", f"{BASE}/documents/{notes['doc_biz_id']}", json={"labels": {"dept": ["it", "ops"]}})
    assert patched.status_code == 200, patched.text
    scoped = search(server, "What is the office wifi password?", visitor_labels=[{"name": "dept", "values": ["ops"]}])
    assert scoped["passages"][0]["doc_name"] == "notes.txt"


@pytest.mark.parametrize(
    "method, path, kwargs, status, code",
    [
        ("POST", f"{BASE}/documents", {"params": {"name": "x.exe"}, "content": b"MZ"}, 400, "invalid_document"),
        ("POST", f"{BASE}/documents", {"params": {"name": "x.txt"}, "content": b""}, 400, "bad_request"),
        ("POST", f"{BASE}/documents", {"params": {"name": "x.txt", "label": "dept"}, "content": b"x"}, 400, "invalid_label"),
        ("POST", f"{BASE}/qa", {"json": {"question": "Q?"}}, 400, "invalid_qa"),
        ("POST", f"{BASE}/qa/import", {"params": {"name": "qa.csv"}, "content": b"question,answer\nQ?,\n"}, 400, "invalid_qa"),
        ("POST", f"{BASE}/search", {"json": {"question": "x", "visitor_labels": "hr"}}, 400, "invalid_label"),
        ("POST", f"{BASE}/refer", {"json": {"ids": ["not-a-number"]}}, 400, "bad_request"),
        ("GET", "/admin/apps/no-such-app/kb/documents", {}, 404, "not_found"),
        ("DELETE", f"{BASE}/documents/123", {}, 404, "not_found"),
        ("PATCH", f"{BASE}/documents/123", {"json": {"labels": {}}}, 404, "not_found"),
        ("PATCH", f"{BASE}/qa/123", {"json": {"answer": "A."}}, 404, "not_found"),
    ],
)
def test_bad_requests_get_clear_errors(server, method, path, kwargs, status, code):
    response = server.admin(method, path, **kwargs)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_the_knowledge_api_needs_the_admin_token(server):
    response = httpx.get(f"{server.url}{BASE}/documents")
    assert response.status_code == 401
