"""schemathesis against a running Parley, from the server's own `/openapi.json`.

Every operation is called with generated requests twice: once with valid credentials for
its face (so that generation reaches past authentication: the admin token, the CloudBase
key and bot id, IM UserSigs, the ADP AppKey; the cloud API's signatures are off on this
server) and once as generated, unauthenticated. No answer may be a server error (5xx) or
carry a stack trace. The seed is fixed (derandomize) and the examples per operation few,
so that a run is repeatable and short.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from parley.config import Settings
from parley.server import api_document
from tests.support.fuzzing import IM_USER, Credentials, assert_no_traceback
from tests.support.processes import ParleyServer

EXAMPLES = 2
"""Generated requests per operation (each sent twice; 72 operations), on each database: the same
derandomized cases reach SQLite and PostgreSQL (3 on SQLite alone before; 4 in all now)."""


DOCUMENT = api_document(Settings(local_model=False, demo=False))
schema = schemathesis.openapi.from_dict(DOCUMENT)
"""Built at import, as pytest collects one test per operation; the server's own document must be
this one (schemathesis' fixture-based loader does not work with pytest 9)."""


@pytest.fixture(scope="module")
def served(fuzz_server: ParleyServer) -> str:
    response = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=30)
    assert response.status_code == 200 and response.json() == json.loads(json.dumps(DOCUMENT))
    return fuzz_server.url


def authenticate(case: Any, credentials: Credentials) -> None:
    """Puts valid credentials for its face into a generated case (in place)."""
    path: str = case.path
    headers = dict(case.headers or {})
    if path.startswith("/admin"):
        headers["Authorization"] = f"Bearer {credentials.server.admin_token}"
    elif path.startswith("/v1/aibot"):
        headers["Authorization"] = f"Bearer {credentials.cloudbase_key}"
        if case.path_parameters and "bot_id" in case.path_parameters:
            case.path_parameters["bot_id"] = credentials.bot_id
    elif path.startswith("/v4/"):
        case.query = {**(case.query or {}), **credentials.im_query()}
    elif path == "/im/v1/sendmsg":
        case.query = {**(case.query or {}), **credentials.im_query(IM_USER)}
    elif path in ("/v1/qbot/chat/sse", "/v1/qbot/chat/docParse") and isinstance(case.body, dict):
        case.body["bot_app_key"] = credentials.app_key
    case.headers = headers


def endless(case: Any) -> bool:
    """A subscription with valid credentials streams until the client leaves: not for this test."""
    return case.path == "/im/v1/subscribe"


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_no_traceback(case: Any, served: str, fuzz_credentials: Credentials) -> None:
    for authenticated in (False, True):
        if authenticated:
            if endless(case):
                continue
            authenticate(case, fuzz_credentials)
        response = case.call(base_url=served, timeout=60)
        sent = repr(case.body) + repr(case.query) + repr(case.path_parameters) + repr(case.headers)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
        assert_no_traceback(response.text, sent)
