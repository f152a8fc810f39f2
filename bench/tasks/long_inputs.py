"""Long inputs from real text: each text followed by the next ones until it holds a given number of tokens."""

from __future__ import annotations

from collections.abc import Sequence


def fill_order(lengths: Sequence[int], target: int) -> list[list[int]]:
    """For each text, the indices of the texts that make its long input: itself, then the following texts
    in order (wrapping around, each at most once) until their lengths add up to `target` or all are used."""
    n = len(lengths)
    orders: list[list[int]] = []
    for i in range(n):
        chosen, total = [i], lengths[i]
        for step in range(1, n):
            if total >= target:
                break
            j = (i + step) % n
            chosen.append(j)
            total += lengths[j]
        orders.append(chosen)
    return orders


def filled_texts(texts: Sequence[str], lengths: Sequence[int], target: int, separator: str = "\n") -> list[str]:
    """Each text followed by the next distinct texts until it holds about `target` tokens (the caller
    truncates to exactly that). `lengths` are the texts' token counts; repeated texts count once."""
    distinct = list(dict.fromkeys(texts))
    length_of = dict(zip(texts, lengths, strict=True))
    orders = fill_order([length_of[t] for t in distinct], target)
    position = {t: k for k, t in enumerate(distinct)}
    return [separator.join(distinct[j] for j in orders[position[t]]) for t in texts]
