"""Between the harness's rows and a backend's shapes.

The harness holds a case's arrays as rows, (M, K) with M = N x d1 x ..., so that the reference,
the comparison and the properties are written once for every shape. A backend receives the
case's own shape, class axis last: logits (N, d1, ..., K), index labels (N, d1, ...), and returns
the gradient in the logits' shape and an unreduced loss in the labels' shape. For a 2-D case
both are the same arrays. The reshapes are views: an adapter that writes into its inputs still
shows up in the input-isolation check.
"""

from __future__ import annotations

import numpy as np

from xentcheck.core.cases import Case, Inputs


class ShapeError(ValueError):
    """A backend returned an array of another shape than the case's."""


def to_case(case: Case, inputs: Inputs) -> Inputs:
    """`inputs` (rows) as the backend receives them: views in the case's shape."""
    if not case.extra:
        return inputs
    labels_shape = case.loss_shape if case.labels == "index" else case.shape
    cotangent = inputs.cotangent
    if cotangent is not None and cotangent.ndim:  # option "ct": one per loss element; a scalar stays ()
        cotangent = cotangent.reshape(case.loss_shape)
    return Inputs(inputs.logits.reshape(case.shape), inputs.labels.reshape(labels_shape),
                  inputs.target.reshape(case.loss_shape), inputs.weights, inputs.smoothing, cotangent)


def expected_shapes(case: Case) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The loss's and the gradient's shapes a backend must return for `case`."""
    return (case.loss_shape if case.reduction == "none" else ()), case.shape


def check(case: Case, loss: np.ndarray, grad: np.ndarray) -> list[str]:
    """What is wrong with the shapes of a backend's loss and gradient (empty: nothing)."""
    want_loss, want_grad = expected_shapes(case)
    reasons = []
    if np.shape(loss) != want_loss:
        reasons.append(f"loss shape {list(np.shape(loss))}, expected {list(want_loss)}")
    if np.shape(grad) != want_grad:
        reasons.append(f"gradient shape {list(np.shape(grad))}, expected {list(want_grad)}")
    return reasons


def to_rows(case: Case, loss: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A backend's loss and gradient (checked shapes) as rows: (M,) or () and (M, K)."""
    reasons = check(case, loss, grad)
    if reasons:
        raise ShapeError("; ".join(reasons))
    loss = np.asarray(loss)
    return (loss.reshape(case.rows) if loss.ndim else loss), np.asarray(grad).reshape(case.rows, case.k)


def array_to_case(case: Case, rows: np.ndarray) -> np.ndarray:
    """An (M, K) array (a tangent, a vector) in the case's shape."""
    return rows.reshape(case.shape)


def array_to_rows(case: Case, arr: np.ndarray) -> np.ndarray:
    """An array in the case's logits shape as (M, K); a ShapeError when it has another shape."""
    if np.shape(arr) != case.shape:
        raise ShapeError(f"shape {list(np.shape(arr))}, expected {list(case.shape)}")
    return np.asarray(arr).reshape(case.rows, case.k)


def run(backend, variant, case: Case, inputs: Inputs, device: str):
    """`backend.run_variant` on rows: the case's shape in, the Output's loss and gradient back as
    rows (a ShapeError when the backend returned other shapes)."""
    out = backend.run_variant(variant, case, to_case(case, inputs.copy()), device)
    out.loss, out.grad = to_rows(case, np.asarray(out.loss), np.asarray(out.grad))
    return out


def jvp(backend, variant, case: Case, inputs: Inputs, device: str, tangent: np.ndarray) -> np.ndarray:
    """The forward-mode derivative along an (M, K) tangent: () or (M,) as the loss."""
    got = np.asarray(backend.jvp(variant, case, to_case(case, inputs.copy()), device, array_to_case(case, tangent)))
    if case.reduction == "none" and got.shape == case.loss_shape:
        return got.reshape(case.rows)
    return got


def hvp(backend, variant, case: Case, inputs: Inputs, device: str, vector: np.ndarray) -> np.ndarray:
    """The Hessian of sum(loss) applied to an (M, K) vector, as (M, K)."""
    return array_to_rows(case, backend.hvp(variant, case, to_case(case, inputs.copy()), device,
                                           array_to_case(case, vector)))
