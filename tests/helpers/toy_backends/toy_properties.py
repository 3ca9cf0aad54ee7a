"""A toy backend with one correct variant and one variant per property, each breaking just that
property. The property checks must catch each one (tests/test_properties.py)."""

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant

BREAKS = ("determinism", "shift_invariance", "permutation_equivariance", "int_vs_onehot", "mean_vs_sum",
          "grad_row_sums", "grad_bounds", "loss_nonnegative", "dtype_fidelity", "input_isolation",
          "eager_vs_compiled", "forward_vs_reverse", "second_order")


def exact(x, q, reduction, n):
    m = x.max(axis=1, keepdims=True)
    s = np.exp(x - m).sum(axis=1, keepdims=True)
    rows = np.where(q != 0, q * (np.log(s) - (x - m)), 0).sum(axis=1)
    p = np.exp(x - m) / s
    grad = p * q.sum(axis=1, keepdims=True) - q
    d = n if reduction == "mean" else 1
    return (rows if reduction == "none" else rows.sum() / d), grad / d, p


class Toy(Backend):
    name = "toy"
    dtypes = ("float64",)

    def variants(self):
        out = [Variant("correct", "eager"), Variant("correct", "compiled")]
        out += [Variant(f"breaks_{b}", "eager") for b in BREAKS]
        out += [Variant("breaks_eager_vs_compiled", "compiled")]
        return out

    def _q(self, case, inputs):
        if case.labels == "index":
            q = np.zeros(inputs.labels.shape + (case.k,))  # np.eye(k)[labels], without the K x K matrix
            np.put_along_axis(q, inputs.labels[..., None], 1.0, axis=-1)
            return q
        q = inputs.labels.astype(np.float64)
        return q * 0.9 if self._impl == "breaks_int_vs_onehot" else q

    def run_variant(self, variant, case, inputs, device):
        self._impl = impl = variant.impl
        x = inputs.logits.astype(np.float64)
        loss, grad, _ = exact(x, self._q(case, inputs), case.reduction, case.n)
        loss = np.asarray(loss)
        if impl == "breaks_determinism":
            grad = grad + np.random.default_rng().uniform(0, 1e-12, grad.shape)
        elif impl == "breaks_shift_invariance":
            loss = loss + 1e-3 * x.mean()
        elif impl == "breaks_permutation_equivariance":
            grad = grad + 1e-6 * np.arange(case.k) / case.k
        elif impl == "breaks_mean_vs_sum" and case.reduction == "mean":
            loss = loss * case.n / (case.n - 1)
        elif impl == "breaks_grad_row_sums":
            grad = grad + 1e-3
        elif impl == "breaks_grad_bounds":
            grad = grad * 3
        elif impl == "breaks_loss_nonnegative":
            loss = -loss - 1
        elif impl == "breaks_dtype_fidelity":
            loss, grad = loss.astype(np.float32), grad.astype(np.float32)
        elif impl == "breaks_input_isolation":
            inputs.logits[:] = 0
        elif impl == "breaks_eager_vs_compiled" and variant.mode == "compiled":
            grad = grad * (1 + 1e-6)
        return Output(loss=loss, grad=grad)

    def jvp(self, variant, case, inputs, device, tangent):
        self._impl = variant.impl
        _, grad, _ = exact(inputs.logits, self._q(case, inputs), case.reduction, case.n)
        terms = grad * tangent
        out = terms.sum(axis=1) if case.reduction == "none" else terms.sum()
        return out * (1.001 if variant.impl == "breaks_forward_vs_reverse" else 1)

    def hvp(self, variant, case, inputs, device, vector):
        self._impl = variant.impl
        q = self._q(case, inputs)
        _, _, p = exact(inputs.logits, q, case.reduction, case.n)
        big_q = q.sum(axis=1, keepdims=True)
        d = case.n if case.reduction == "mean" else 1
        pv = p * vector
        if variant.impl == "breaks_second_order":
            return big_q * pv / d
        return big_q * (pv - p * pv.sum(axis=1, keepdims=True)) / d
