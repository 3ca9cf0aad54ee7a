"""NumPy adapters (no autodiff: hand-written backwards): `ce.py`, the NumPy backend and its plain
CE variants; `linear.py`, its linear-CE variants."""
