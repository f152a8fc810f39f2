"""Long inputs from real text: each text followed by the next texts of its split until it holds a given
number of tokens. The following texts come from the whole split, not only the evaluated examples, so a
few evaluated examples still reach long lengths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

FOLLOWING = "following"
"""The example key that holds the texts after it in its split (set by `attach_following`)."""
MAX_FOLLOWING = 128
"""Texts kept after each example: far more than 4,096 tokens of articles or paragraphs."""


def following_texts(texts: Sequence[str], count: int, keep: int = MAX_FOLLOWING) -> list[list[str]]:
    """For each of the first `count` texts, up to `keep` distinct other texts after it, in split order,
    wrapping around to the start."""
    distinct = list(dict.fromkeys(texts))
    position = {text: i for i, text in enumerate(distinct)}
    out = []
    for text in texts[:count]:
        start = position[text]
        out.append([distinct[(start + step) % len(distinct)] for step in range(1, min(keep + 1, len(distinct)))])
    return out


def attach_following(
    examples: list[dict[str, Any]], field: str, limit: int | None, keep: int = MAX_FOLLOWING
) -> list[dict[str, Any]]:
    """The first `limit` examples of a whole split, each with the split's next distinct `field` texts."""
    count = len(examples) if limit is None else min(limit, len(examples))
    following = following_texts([str(e[field]) for e in examples], count, keep)
    return [{**e, FOLLOWING: after} for e, after in zip(examples[:count], following, strict=True)]


def filled(own: str, following: Sequence[str], length: Callable[[str], int], target: int, separator: str) -> str:
    """`own` followed by `following` texts until the tokens (`length` of each text) reach `target` (the
    caller truncates to exactly that), or the texts run out."""
    parts, total = [own], length(own)
    for text in following:
        if total >= target:
            break
        parts.append(text)
        total += length(text)
    return separator.join(parts)


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens of a text without special tokens, counted once per distinct text."""
    counts: dict[str, int] = {}

    def length(text: str) -> int:
        if text not in counts:
            counts[text] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        return counts[text]

    return length
