"""PyTorch linear-CE: F.linear_cross_entropy (torch 2.13) without options and with
LinearCrossEntropyOptions for each acc_policy at two batch chunk sizes, and the materialised
composition F.cross_entropy(F.linear(h, W, b), y). Gradients by autograd: loss.backward(v)."""

from __future__ import annotations

import warnings

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import IGNORE_INDEX, Case

OPTIONS = ("w", "ign", "allign", "ls", "ct", "b")
POLICIES = ("accurate", "balanced", "compact")
CHUNKS = (8, 16)  # rows per batch chunk: the default suite's N (16 to 32) spans 1 to 4 chunks
COMPOSED = "linear_then_cross_entropy"


def variants() -> list[Variant]:
    out = [Variant(COMPOSED, "eager", ("index",), api="F.cross_entropy(F.linear(h, W, b), y)", options=OPTIONS,
                   semantics="torch", kind="linear"),
           Variant("linear_cross_entropy", "eager", ("index",), api="F.linear_cross_entropy(h, W, y)",
                   options=OPTIONS, semantics="torch", kind="linear")]
    out += [Variant(f"linear_cross_entropy_{p}_c{c}", "eager", ("index",),
                    api=f"F.linear_cross_entropy(h, W, y, options=LinearCrossEntropyOptions(batch_chunk_size={c}, "
                        f"acc_policy={p!r}))", options=OPTIONS, semantics="torch", kind="linear")
            for p in POLICIES for c in CHUNKS]
    return out


def options_of(impl: str):
    """(acc_policy, batch_chunk_size) of an options variant, None for the others."""
    if not impl.startswith("linear_cross_entropy_"):
        return None
    policy, chunk = impl[len("linear_cross_entropy_"):].rsplit("_c", 1)
    return policy, int(chunk)


def _prepare(backend, variant: Variant, case: Case, inputs, device: str):
    """The leaf tensors h, W, b (requiring gradients), and loss(): the variant's call on them."""
    t = backend.torch
    F = t.nn.functional
    h = backend._tensor(inputs.hidden, device).requires_grad_(True)
    w = backend._tensor(inputs.weight, device).requires_grad_(True)
    b = None if inputs.bias is None else backend._tensor(inputs.bias, device).requires_grad_(True)
    y = t.from_numpy(inputs.labels.copy()).to(device)
    kw = dict(weight=None if inputs.weights is None else backend._tensor(inputs.weights, device),
              reduction=case.reduction, ignore_index=IGNORE_INDEX, label_smoothing=inputs.smoothing)
    if variant.impl == COMPOSED:
        return h, w, b, lambda: F.cross_entropy(F.linear(h, w, b), y, **kw)
    opts = options_of(variant.impl)
    extra = {} if opts is None else {"options": t.nn.LinearCrossEntropyOptions(
        batch_chunk_size=opts[1], acc_policy=opts[0])}
    return h, w, b, lambda: F.linear_cross_entropy(h, w, y, linear_bias=b, **kw, **extra)


def _cotangent(backend, loss, inputs, device: str):
    return backend.torch.ones_like(loss) if inputs.cotangent is None else backend._tensor(inputs.cotangent, device)


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h, w, b, fn = _prepare(backend, variant, case, inputs, device)
        loss = fn()
        loss.backward(_cotangent(backend, loss, inputs, device))
    notes += sorted({f"warning: {str(c.message)[:200]}" for c in caught})

    def arr(x) -> np.ndarray:
        return backend._numpy(x.detach())

    return Output(arr(loss), grads={"dh": arr(h.grad), "dw": arr(w.grad), "db": None if b is None else arr(b.grad)},
                  loss_dtype=str(loss.dtype).replace("torch.", ""),
                  grad_dtype=str(h.grad.dtype).replace("torch.", ""), notes=notes)


def timing_fns(backend, variant: Variant, case: Case, inputs, device: str) -> dict:
    """bench's phases on tensors made once (no NumPy conversion timed, as plain CE's): forward,
    backward replaying a kept forward (retain_graph), forward+backward. The chunked op (an
    options variant) refuses a second backward of one forward, and the fused op's replay is not
    relied on (a test process died replaying the fused variants): the backward phase is the
    composition's only."""
    t = backend.torch
    h, w, b, fn = _prepare(backend, variant, case, inputs, device)
    leaves = [x for x in (h, w, b) if x is not None]
    sync = t.cuda.synchronize if device == "cuda" else (lambda: None)
    kept = fn()
    ones = _cotangent(backend, kept, inputs, device)

    def clear():
        for x in leaves:
            x.grad = None  # no accumulation into the previous gradients

    def forward():
        fn()
        sync()

    def backward():
        clear()
        kept.backward(ones, retain_graph=True)
        sync()

    def forward_backward():
        clear()
        fn().backward(ones)
        sync()

    fns = {"forward": forward, "backward": backward, "forward_backward": forward_backward}
    if variant.impl != COMPOSED:
        del fns["backward"]
    return fns
