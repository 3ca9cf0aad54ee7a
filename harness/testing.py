"""Assertions for a kernel author's own test suite, like torch.testing:

    from xentcheck.testing import assert_backend

    def test_my_kernel():
        assert_backend(MyKernel, dtypes=["float32"], cases=20)

The backend runs through the harness's suite (xentcheck.verify: the same worker processes and
comparison as `xentcheck run`), and every finding becomes the AssertionError's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xentcheck.api import BackendLike, VerifyResult, verify

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from xentcheck.api import VerifyOptions


def assert_backend(backend: BackendLike, **options: Unpack[VerifyOptions]) -> VerifyResult:
    """Verify `backend` (a Backend subclass or instance, a plugin .py path or a backend name) with
    verify()'s keyword options, and return the result when every case is within tolerance.

    Raises AssertionError with the harness's explanation of every finding (case id,
    implementation, mode, dtype, verdict and reasons, the command that reruns it) when a result
    is bad, and when nothing was compared at all (every result skipped: an unsupported dtype, a
    missing framework), so that a test cannot pass without testing anything. A bad argument is
    a ValueError, as for verify().
    """
    result = verify(backends=[backend], **options)
    if not result.ok:
        raise AssertionError(result.explain())
    if not any(r.verdict != "skipped" for r in result.records):
        reasons = sorted({"; ".join(r.reasons or []) for r in result.records}) or ["no case was selected"]
        raise AssertionError("xentcheck: nothing was verified, every result was skipped: " + " | ".join(reasons))
    return result
