"""Shared by the optional torch-based linear-CE kernels (cut-cross-entropy, Liger): NumPy <-> torch
and one forward + backward through autograd with the case's cotangent."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xentcheck.backends.base import Output


def tensor(torch, a: np.ndarray, device: str):
    """A torch copy of `a` on `device` (bfloat16 through its 16-bit pattern: torch cannot read ml_dtypes)."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16).to(device)
    return torch.from_numpy(a.copy()).to(device)


def array(torch, t) -> np.ndarray:
    """`t` as NumPy in its own dtype (bfloat16 as ml_dtypes' bfloat16)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


def forward_backward(torch, inputs, device: str, loss_fn: Callable) -> Output:
    """loss = loss_fn(h, W, b, y) on leaf tensors, then loss.backward(v) (v: the cotangent, else ones)."""
    h = tensor(torch, inputs.hidden, device).requires_grad_(True)
    w = tensor(torch, inputs.weight, device).requires_grad_(True)
    b = None if inputs.bias is None else tensor(torch, inputs.bias, device).requires_grad_(True)
    y = torch.from_numpy(inputs.labels.copy()).to(device)
    loss = loss_fn(h, w, b, y)
    v = torch.ones_like(loss) if inputs.cotangent is None else tensor(torch, inputs.cotangent, device).to(loss.dtype)
    loss.backward(v)
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in (h, w)]  # no grad: nothing reached it
    db = None if b is None else array(torch, b.grad if b.grad is not None else torch.zeros_like(b))
    return Output(array(torch, loss), grads={"dh": array(torch, grads[0]), "dw": array(torch, grads[1]), "db": db},
                  loss_dtype=str(loss.dtype).replace("torch.", ""),
                  grad_dtype=str(grads[0].dtype).replace("torch.", ""))
