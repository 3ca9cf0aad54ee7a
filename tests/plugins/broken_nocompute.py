"""Test plugin that forgot to implement compute()."""

from backends.base import Backend


class NoCompute(Backend):
    name = "broken-nocompute"


BACKEND = NoCompute
