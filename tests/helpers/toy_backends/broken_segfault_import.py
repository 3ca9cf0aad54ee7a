"""Test plugin whose import kills the worker before it can say hello."""

import ctypes

ctypes.string_at(0)
