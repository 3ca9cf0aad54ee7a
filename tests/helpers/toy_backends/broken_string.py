"""Test plugin returning strings instead of arrays."""

from xentcheck.backends.base import Backend, Output


class Strings(Backend):
    name = "broken-string"

    def compute(self, case, inputs, device):
        return Output(loss="0.5", grad="not an array")


BACKEND = Strings
