"""The layering README.md describes, checked on the source so it cannot quietly regress.

Faces hold wire formats and reach data through services, never the store's modules; the
store imports no domain package; the domain packages know no face; the knowledge base sits
below the engine. Every import counts: at module level, inside functions and under
TYPE_CHECKING alike.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "parley"

DOMAIN = ("parley.engine", "parley.knowledge", "parley.messaging", "parley.channels", "parley.workflow")
RULES = [
    pytest.param("parley.faces", ("parley.store",), "faces reach data through services", id="faces-no-store"),
    pytest.param(
        "parley.store", (*DOMAIN, "parley.faces", "parley.services", "parley.server", "parley.cli"),
        "the store imports no domain package", id="store-no-domain",
    ),
    pytest.param("parley.knowledge", ("parley.engine",), "the engine uses knowledge, not the reverse", id="knowledge-no-engine"),
    pytest.param(
        "parley.workflow", ("parley.engine", "parley.knowledge", "parley.messaging", "parley.store", "parley.services",
                            "parley.server"),
        "workflows reach models, knowledge and storage through their seams (workflow/seams.py)", id="workflow-seams",
    ),
    *(
        pytest.param(domain, ("parley.faces",), "the domain knows no wire format", id=f"{domain[7:]}-no-faces")
        for domain in DOMAIN
    ),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `source`; `from a import b` gives both a and a.b,
    since b may be a module; relative imports are resolved against `module`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if not _within(module, importer):
            continue
        lines = {
            line: name
            for line, name in imported(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
            if any(_within(name, f) for f in forbidden)
        }
        found += [f"{path.relative_to(PACKAGE.parent)}:{line}: {name}" for line, name in sorted(lines.items())]
    return found


@pytest.mark.parametrize(("importer", "forbidden", "why"), RULES)
def test_layering(importer: str, forbidden: tuple[str, ...], why: str) -> None:
    assert any(_within(module_name(p), importer) for p in PACKAGE.rglob("*.py")), f"no package {importer}"
    found = violations(importer, forbidden)
    assert not found, f"{why}; these imports break the rule:\n" + "\n".join(found)


def test_every_kind_of_import_is_seen() -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
import parley.store.database
from parley.store import conversations
from ...store.objects import clean_key
if TYPE_CHECKING:
    from parley.store.messaging import MessageRow
def late():
    from parley import store
"""
    names = {name for _, name in imported(source, "parley.faces.adp.storage")}
    assert {
        "parley.store.database", "parley.store.conversations", "parley.store.objects",
        "parley.store.messaging", "parley.store",
    } <= names
    assert "parley.store.objects" in {name for _, name in imported("from ..store import objects", "parley.faces", True)}
