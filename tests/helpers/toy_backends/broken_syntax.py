"""Test plugin with a syntax error: reported as broken, other backends still run."""

from xentcheck.backends.base import Backend


class Broken(Backend):
    name = "broken-syntax"

    def compute(self, case inputs, device):
        return None
