"""Backend adapters: one file per framework, all with the surface of `xentcheck.backends.base.Backend`.

Nothing here imports a framework; `load` imports one adapter module when asked.
"""
