"""A measurement repeated: its median, its range, and a confidence interval of the median that
assumes nothing about the noise (order statistics), so two runs of the bench can be compared
by whether their intervals overlap."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from math import comb


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """The narrowest interval of order statistics [x(k), x(n+1-k)] that holds the true median
    with at least `confidence` (binomial, distribution-free); the range when n is too small
    for that (n < 6 at 95 %)."""
    xs, n = sorted(values), len(values)
    for k in range(n // 2, 0, -1):  # the widest interval tried last
        # P(x(k) <= median <= x(n+1-k)) = 1 - 2 P(Binomial(n, 1/2) < k)
        if 1 - 2 * sum(comb(n, i) for i in range(k)) / 2**n >= confidence:
            return xs[k - 1], xs[n - k]
    return xs[0], xs[-1]


@dataclass(frozen=True)
class Spread:
    """n values of one measurement."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def interval(self) -> tuple[float, float]:
        return median_interval(list(self.values))

    def relative_width(self) -> float:
        """The median's interval as a share of the median: 0.05 tells 5 % apart."""
        low, high = self.interval()
        return (high - low) / self.median

    def text(self, digits: int = 3) -> str:
        """`1.012 (0.981-1.040, 95 % CI 0.990-1.031, n 7)`: median, range, interval."""
        low, high = self.interval()
        f = f".{digits}f"
        return (f"{self.median:{f}} ({self.low:{f}}-{self.high:{f}}, 95 % CI "
                f"{low:{f}}-{high:{f}}, n {len(self.values)})")
