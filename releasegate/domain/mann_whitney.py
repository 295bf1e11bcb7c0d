"""The Mann-Whitney U test (Wilcoxon rank-sum), as Kayenta judges a canary against its baseline: does one sample
tend to be larger than the other, without assuming a distribution? Pure Python: average ranks for ties, the
normal approximation with the tie correction and a continuity correction, and a one-sided or two-sided p-value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Alternative = Literal["greater", "less", "two-sided"]


@dataclass(frozen=True)
class UTest:
    u: float           # U of the first sample: how often one of its values beats one of the second's (ties 1/2)
    z: float           # the normal approximation's statistic (0 when every value is tied)
    p_value: float
    n1: int
    n2: int


def mann_whitney_u(first: Sequence[float], second: Sequence[float], alternative: Alternative = "two-sided") -> UTest:
    """U of `first` against `second`; "greater": the alternative that `first` tends to be larger."""
    n1, n2 = len(first), len(second)
    if n1 == 0 or n2 == 0:
        raise ValueError("the Mann-Whitney U test needs at least one value in each sample")
    ranks = _ranks([*first, *second])
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    ties = sum(t ** 3 - t for t in _tie_sizes([*first, *second]))
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return UTest(u, 0.0, 1.0, n1, n2)
    sd = math.sqrt(variance)
    if alternative == "greater":
        z = (u - mean - 0.5) / sd
        p = _upper_tail(z)
    elif alternative == "less":
        z = (u - mean + 0.5) / sd
        p = 1 - _upper_tail(z)
    else:
        z = (abs(u - mean) - 0.5) / sd
        p = min(1.0, 2 * _upper_tail(z))
    return UTest(u, z, max(0.0, min(1.0, p)), n1, n2)


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks, tied values sharing the average of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _tie_sizes(values: list[float]) -> list[int]:
    counts: dict[float, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return [c for c in counts.values() if c > 1]


def _upper_tail(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))
