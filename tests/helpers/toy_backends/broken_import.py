"""Test plugin that raises while being imported."""

raise RuntimeError("cannot load libfancykernel.so")
