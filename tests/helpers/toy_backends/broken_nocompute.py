"""Test plugin that forgot to implement compute()."""

from xentcheck.backends.base import Backend


class NoCompute(Backend):
    name = "broken-nocompute"


BACKEND = NoCompute
