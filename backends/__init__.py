"""Backend adapters: one folder per framework, a module per loss kind (numpy/ce.py, numpy/linear.py,
...), all with the surface of `xentcheck.backends.base.Backend`.

Nothing here imports a framework; `load` imports one adapter module when asked.
"""
