"""Linear-CE variants of the built-in backends (Variant.kind "linear"; see backends/base.py).

Each module gives `variants()` (class-level data, no framework import) and
`run(backend, variant, case, inputs, device) -> LinearOutput`; the backend's run_variant hands
linear variants to it. A new linear-CE API of a built-in framework is a Variant here and a
branch in its run()."""
