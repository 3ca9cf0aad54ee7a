"""The worker's timing message for every kind, and each timed variant's own peak memory."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.registry import create
from xentcheck.run import worker
from xentcheck.run.protocol import TimeRequest

QUICK = {"min_block": 0.001, "blocks": 2, "warmup": 0.001}


def _numpy():
    backend = create("numpy")
    backend.load()
    return backend


def test_a_linear_ce_case_is_timed_through_the_timing_message():
    """No variants named: the backend's default ones of the case's kind (linear-CE's), fed h, W, y."""
    backend = _numpy()
    reply = worker.time_case(backend, TimeRequest("scale1e+0_float32_8x64_lin16_index_mean", 0, "cpu", **QUICK))
    kinds = {v.impl: getattr(v, "kind", "ce") for v in backend.variants()}
    assert reply.results and all(r.status == "ok" for r in reply.results), [r.error for r in reply.results]
    assert {kinds[r.variant["impl"]] for r in reply.results} == {"linear"}
    assert all(r.phases and r.phases["forward_backward"]["median"] > 0 for r in reply.results)
    # a plain case on the same worker: plain CE's variants only
    plain = worker.time_case(backend, TimeRequest("scale1e+0_float32_8x64_index_mean", 0, "cpu", **QUICK))
    assert plain.results and {kinds[r.variant["impl"]] for r in plain.results} == {"ce"}


def test_each_timed_variant_has_its_own_peak_memory(monkeypatch):
    backend = _numpy()
    request = TimeRequest("scale1e+0_float32_4x10_index_mean", 0, "cpu", **QUICK)
    big = np.ones(25_000_000)  # 200 MB touched, then returned to the OS (a large block is its own mapping)
    worker_peak = worker.peak_rss()
    del big
    timed = worker.time_case(backend, request).results[0]
    assert timed.status == "ok" and timed.peak_rss_bytes and worker_peak
    if timed.peak_reset:  # the high-water mark was reset before the variant: the 200 MB are not in it
        assert timed.peak_rss_bytes < worker_peak - 150_000_000
    else:
        assert any("clear_refs" in n for n in timed.notes)
    # where the kernel refuses the reset, the reply says so and the peak is the worker's whole one
    monkeypatch.setattr(worker, "reset_peak", lambda: False)
    refused = worker.time_case(backend, request).results[0]
    assert refused.peak_reset is False and any("clear_refs not writable" in n for n in refused.notes)
    assert refused.status == "ok" and refused.peak_rss_bytes
