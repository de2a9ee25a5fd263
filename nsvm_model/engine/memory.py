"""A small guest-physical memory: backed ranges and 8-byte words.

A GPA can be legal (below 2^MAXPHYADDR) and still have no memory behind
it; KVM's map and read helpers then fail, and the model shows what the
kernel does with that failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple


@dataclass(frozen=True)
class GuestMemory:
    backed: Tuple[Tuple[int, int], ...]          # [start, end) ranges with memory
    words: Tuple[Tuple[int, int], ...] = ()      # (8-byte aligned GPA, value)

    def __post_init__(self):
        object.__setattr__(self, "_words", dict(self.words))

    def is_backed(self, gpa: int, size: int = 1) -> bool:
        return all(any(s <= a < e for s, e in self.backed) for a in (gpa, gpa + size - 1))

    def read(self, gpa: int, size: int = 8) -> Optional[int]:
        """The little-endian value at gpa, or None without memory behind it."""
        if not self.is_backed(gpa, size):
            return None
        words = self._words
        value = 0
        for i in range(size):
            a = gpa + i
            byte = (words.get(a & ~7, 0) >> (8 * (a & 7))) & 0xFF
            value |= byte << (8 * i)
        return value

    def with_words(self, updates: Mapping[int, int]) -> "GuestMemory":
        words = dict(self.words)
        words.update(updates)
        return GuestMemory(self.backed, tuple(sorted(words.items())))
