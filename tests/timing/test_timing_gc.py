"""measure() times with the garbage collector off, as timeit and torch's Timer do, and restores it."""

from __future__ import annotations

import gc

from xentcheck.timing.measure import measure


def test_gc_is_off_while_timing_and_restored():
    seen = []
    assert gc.isenabled()
    measure(lambda: seen.append(gc.isenabled()), min_block=0.001, blocks=2, warmup=0.001)
    assert seen and not any(seen)
    assert gc.isenabled()


def test_a_disabled_gc_stays_disabled():
    gc.disable()
    try:
        measure(lambda: None, min_block=0.001, blocks=2, warmup=0.001)
        assert not gc.isenabled()
    finally:
        gc.enable()
