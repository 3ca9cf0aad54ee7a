"""The parent's references: each computed once per case and API semantics, and kept within a
byte budget while backends may still need them.

A fast backend runs far ahead of a slow one (NumPy answers case 700 while JAX's eager mode is
still compiling case 200), so keeping every case's reference until each backend had answered it
held gigabytes on `--suite full` (the parent at 5 GB after 40 minutes, on a 24 GiB machine). Past
the budget the least recently used references are dropped, and one is computed again if a later
answer needs it: the same inputs and the same code give the same arrays.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

DEFAULT_BUDGET = 1 << 30


def nbytes(obj: Any) -> int:
    """The bytes of the NumPy arrays `obj` holds (in fields, attributes, dicts, lists); views
    count as their own size, so a budget errs on the safe side."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return sum(nbytes(getattr(obj, f.name, None)) for f in fields(obj))
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return nbytes(vars(obj))
    return 0


class References:
    """References by (case index, reference key), least recently used dropped past `budget` bytes
    (the one just computed is always kept, however large)."""

    def __init__(self, budget: int = DEFAULT_BUDGET):
        self.budget = budget
        self.entries: OrderedDict[tuple[int, Any], tuple[Any, int]] = OrderedDict()
        self.held = 0  # bytes of the entries
        self.computed = 0  # how many references were computed (recomputations included)

    def get(self, ci: int, key: Any, compute: Callable[[], Any]) -> Any:
        slot = (ci, key)
        if slot in self.entries:
            self.entries.move_to_end(slot)
            return self.entries[slot][0]
        value = compute()
        self.computed += 1
        size = nbytes(value)
        self.entries[slot] = (value, size)
        self.held += size
        while self.held > self.budget and len(self.entries) > 1:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.held -= dropped
        return value

    def drop_case(self, ci: int) -> None:
        """Every backend has answered case `ci`: none of its references is needed again."""
        for slot in [s for s in self.entries if s[0] == ci]:
            self.held -= self.entries.pop(slot)[1]
