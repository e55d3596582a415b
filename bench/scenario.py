"""What the scripted model answers, named by the request's `model` field.

`bench:tokens=200:delay_ms=20:ttft_ms=50:reasoning=0` means: wait 50 ms, then send
200 content tokens 20 ms apart, with no reasoning tokens before them. The model server
and the load generator both read the spec here, so the load generator knows exactly
which answer to expect and can count short answers as errors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett")


@dataclass(frozen=True)
class Scenario:
    tokens: int = 20
    """Content tokens in the answer (each one an SSE chunk)."""
    delay_ms: float = 5.0
    """Milliseconds between two chunks."""
    ttft_ms: float = 20.0
    """Milliseconds from the request to the first chunk."""
    reasoning: int = 0
    """Reasoning tokens (`reasoning_content`) sent before the content tokens."""
    prompt_tokens: int = 12
    """The prompt size reported in `usage`."""
    cut: int | None = None
    """Send only this many content tokens, then end normally: a short answer, which the load
    generator (expecting `tokens`) must count as an error."""

    @property
    def spec(self) -> str:
        return (
            f"bench:tokens={self.tokens}:delay_ms={_num(self.delay_ms)}:ttft_ms={_num(self.ttft_ms)}"
            f":reasoning={self.reasoning}"
        )

    @property
    def sent_tokens(self) -> int:
        return self.tokens if self.cut is None else min(self.tokens, self.cut)

    @property
    def seconds(self) -> float:
        """How long one answer takes to stream, by the script."""
        chunks = self.tokens + self.reasoning
        return (self.ttft_ms + max(chunks - 1, 0) * self.delay_ms) / 1000

    def with_(self, **changes: float | int) -> Scenario:
        return replace(self, **changes)


def parse(model: str) -> Scenario:
    """Reads `bench:key=value:...`; unknown or missing keys take the defaults."""
    values: dict[str, float | int] = {}
    for part in model.split(":")[1:]:
        key, _, raw = part.partition("=")
        if key in ("tokens", "reasoning", "prompt_tokens", "cut"):
            values[key] = max(int(float(raw)), 0)
        elif key in ("delay_ms", "ttft_ms"):
            values[key] = max(float(raw), 0.0)
    return Scenario(**values)  # type: ignore[arg-type]


def token(i: int) -> str:
    """The i-th content token: words with a leading space, like a tokenizer's pieces."""
    word = WORDS[i % len(WORDS)]
    return word if i == 0 else " " + word


def reasoning_token(i: int) -> str:
    return ("hmm" if i == 0 else " hmm")


def answer(scenario: Scenario) -> str:
    return "".join(token(i) for i in range(scenario.tokens))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
