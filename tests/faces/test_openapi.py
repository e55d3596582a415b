"""The OpenAPI document covers every route the server mounts, and describes nothing it does not serve."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute

from parley.config import Settings
from parley.faces.im.calls import CALLS
from parley.faces.im.openapi import BODIES
from parley.server import api_document, http_routes

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(local_model=False, demo=False)


@pytest.fixture(scope="module")
def document(settings: Settings) -> dict[str, Any]:
    return api_document(settings)


def served(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """(mount prefix, route) for every route, mounted ones included."""
    for route in routes:
        if isinstance(route, Mount):
            assert route.routes, f"{route.path}: the mounted app does not list its routes"
            yield from served(route.routes, prefix + route.path)
        else:
            yield prefix, route


def sample(path: str) -> str:
    """A concrete path for a templated one."""
    return re.sub(r"\{[^}]+\}", "sample1", path)


def matches(prefix: str, route: BaseRoute, path: str, scope_type: str = "http") -> bool:
    if not path.startswith(prefix):
        return False
    scope = {"type": scope_type, "path": path[len(prefix):] or "/", "method": "GET", "root_path": ""}
    return route.matches(scope)[0] is not Match.NONE


def test_every_route_the_server_mounts_is_in_the_document(settings, document):
    missing = []
    for prefix, route in served(http_routes(settings)):
        documented = {p: item for p, item in document["paths"].items()
                      if matches(prefix, route, sample(p), "websocket" if isinstance(route, WebSocketRoute) else "http")}
        if isinstance(route, WebSocketRoute):
            if not any("x-parley-websocket" in item for item in documented.values()):
                missing.append(f"WebSocket {prefix}{route.path}")
            continue
        assert isinstance(route, Route)
        methods = set(route.methods or ()) - ({"HEAD"} if "GET" in (route.methods or ()) else set())
        for method in sorted(methods):
            if not any(method.lower() in item for item in documented.values()):
                missing.append(f"{method} {prefix}{route.path}")
    assert not missing, f"routes missing from the OpenAPI document: {missing}"


def test_the_document_describes_only_routes_the_server_serves(settings, document):
    routes = list(served(http_routes(settings)))
    for path, item in document["paths"].items():
        for method in (m for m in METHODS if m in item):
            serving = [r for prefix, r in routes if isinstance(r, Route) and matches(prefix, r, sample(path))
                       and method.upper() in (r.methods or ())]
            assert serving, f"{method.upper()} {path} is described but not served"


def test_every_im_rest_call_has_its_own_operation(document):
    assert set(BODIES) == set(CALLS)
    for name in CALLS:
        assert "post" in document["paths"][f"/v4/{name}"]


def test_application_bodies_use_the_pydantic_model_that_validates_them(document):
    body = document["paths"]["/admin/apps"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/AppConfig"}
    app_config = document["components"]["schemas"]["AppConfig"]
    assert app_config["properties"]["concurrency"]["maximum"] == 100_000
    assert "StreamingSettings" in document["components"]["schemas"]


def test_every_reference_resolves(document):
    refs = re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', json.dumps(document))
    assert refs and set(refs) <= set(document["components"]["schemas"])
