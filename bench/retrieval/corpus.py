"""A synthetic multilingual corpus and a cheap deterministic embedder that matches it.

Each document is about one topic. A topic has a made-up English name, a Chinese name and a
few words of each language; a segment is a line mixing them with common filler. The
synthetic embedder puts every text near its topic's centroid (found from the topic name in
the text) plus noise seeded by the text itself, so vectors have the clustered structure of
real embeddings, cost microseconds, and are the same on every run.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from parley.models.embedders import Thresholds

_SYLLABLES = "ka lo mi ren tu sa vor eli an dor bex qui zan fer hol mur pil" .split()
_HANZI = "安北城大东法广国海和华黄江金京开蓝乐丽林龙美明南平青山上时水天文西新星阳银云中州"
_FILLER_EN = "the policy for staff and visitors covers opening hours prices delivery refunds safety rules".split()
_FILLER_ZH = ["员工", "政策", "价格", "退款", "配送", "安全", "规定", "时间", "服务", "会员", "门店", "订单"]


@dataclass(frozen=True, slots=True)
class Topic:
    id: int
    name: str
    chinese: str
    words: tuple[str, ...]


def topics(count: int, seed: int = 1) -> list[Topic]:
    rng = random.Random(seed)
    found: list[Topic] = []
    seen: set[str] = set()
    while len(found) < count:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(4))
        if name in seen:
            continue
        seen.add(name)
        chinese = "".join(rng.choice(_HANZI) for _ in range(3))
        words = tuple("".join(rng.choice(_SYLLABLES) for _ in range(2)) for _ in range(4))
        found.append(Topic(len(found), name, chinese, words))
    return found


def line(topic: Topic, rng: random.Random) -> str:
    english = " ".join(rng.sample(_FILLER_EN, 5) + rng.sample(topic.words, 2))
    chinese = "".join(rng.sample(_FILLER_ZH, 3))
    return f"{topic.name} {english}; {topic.chinese}{chinese}。"[:95]


def documents(total_segments: int, per_document: int = 100, seed: int = 2) -> Iterator[tuple[str, str, int]]:
    """(name, text, topic id) of documents holding `total_segments` lines in all."""
    all_topics = topics(max(50, total_segments // 200))
    rng = random.Random(seed)
    for number in range(total_segments // per_document):
        topic = all_topics[number % len(all_topics)]
        text = "\n".join(line(topic, rng) for _ in range(per_document))
        yield f"doc-{number:07d}.txt", text, topic.id


def questions(count: int, total_segments: int, seed: int = 3) -> list[str]:
    all_topics = topics(max(50, total_segments // 200))
    rng = random.Random(seed)
    asked = []
    for _ in range(count):
        topic = rng.choice(all_topics)
        asked.append(f"{topic.name} {rng.choice(topic.words)} {rng.choice(_FILLER_EN)} {topic.chinese}{rng.choice(_FILLER_ZH)}?")
    return asked


class SyntheticEmbedder:
    """Topic centroid plus text-seeded noise: cheap, deterministic, clustered like real embeddings."""

    name = "synthetic/topics"
    thresholds = Thresholds(qa=0.95, doc=0.0)

    def __init__(self, total_segments: int, dimensions: int = 384, noise: float = 1.0) -> None:
        self.dimensions = dimensions
        self._noise = noise
        self._topics = {t.name: t.id for t in topics(max(50, total_segments // 200))}
        self._centroids: dict[int, np.ndarray] = {}

    def _centroid(self, topic: int) -> np.ndarray:
        found = self._centroids.get(topic)
        if found is None:
            found = np.random.default_rng(topic).standard_normal(self.dimensions).astype(np.float32)
            found /= np.linalg.norm(found)
            self._centroids[topic] = found
        return found

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.empty((len(texts), self.dimensions), np.float32)
        scale = self._noise / np.sqrt(self.dimensions)
        for i, text in enumerate(texts):
            topic = next((self._topics[w] for w in text.replace("\n", " ").split() if w in self._topics), -1)
            noise = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dimensions) * scale
            rows[i] = (self._centroid(topic) if topic >= 0 else 0) + noise
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)
