"""Test plugin whose name and error message carry HTML and Markdown markup."""

from xentcheck.backends.base import Backend

NAME = '<script>alert("name")</script>*em*|[x](javascript:alert(1))'
MESSAGE = '<img src=x onerror=alert(1)> **bold** `code` | cell & <b>tag</b>\nsecond line'


class Markup(Backend):
    name = NAME

    def compute(self, case, inputs, device):
        raise ValueError(MESSAGE)


BACKEND = Markup
