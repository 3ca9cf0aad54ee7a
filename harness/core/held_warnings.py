"""Library warnings held back around a step that may end in a one-line error."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_warnings() -> Iterator[None]:
    """The warnings raised in the block (torch's pickle-protocol notice before it refuses a file, a
    plugin's own at import) held back: shown once the block succeeds, dropped when it raises, so
    that a refused input ends in its one-line error alone. The filters in force decide what is
    held, as they would have decided what is shown."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
