"""Measuring text for a model's context, shared by the engine and the knowledge base.

It sits below both: the engine fits the prompt into the context window with it, and the
knowledge base keeps retrieved passages inside their token budget with the same estimate.
"""

from __future__ import annotations


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning estimate: CJK characters count one each, other text one per 4 characters.

    Used only to keep the prompt inside the model's context window; token statistics come
    from the usage the model reports.
    """
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return wide + (len(text) - wide + 3) // 4 + 1


def fit_text(text: str, tokens: int) -> str:
    """`text`, cut at the end to about `tokens` tokens (by the same estimate)."""
    if tokens <= 0:
        return ""
    if estimate_tokens(text) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]
