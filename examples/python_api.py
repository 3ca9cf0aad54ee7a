"""xentcheck from Python: verify a kernel against the high-precision reference, read the findings,
and get the reference's loss and gradient of your own arrays. Run it: python examples/python_api.py

The code below is README's Python API example, verbatim (tests/test_api.py checks it).
"""

import numpy as np

import xentcheck
from xentcheck import Backend, Output


class MyKernel(Backend):  # the kernel under test; other dtypes are reported as skipped
    name, dtypes, label_forms = "my-kernel", ("float32", "float64"), ("index",)

    def compute(self, case, inputs, device):  # logits (N, K), labels (N,) class indices
        x, rows, labels = inputs.logits, np.arange(case.n), inputs.labels
        z = x - x.max(axis=1, keepdims=True)
        log_s = np.log(np.exp(z).sum(axis=1))
        loss, grad = log_s - z[rows, labels], np.exp(z - log_s[:, None])
        grad[rows, labels] -= 1
        if case.reduction == "mean":
            return Output(loss=loss.mean(), grad=grad / x.dtype.type(case.n))
        return Output(loss=loss.sum() if case.reduction == "sum" else loss, grad=grad)

if __name__ == "__main__":  # the worker imports this file to find MyKernel
    result = xentcheck.verify(backends=["numpy", MyKernel], dtypes=["float32"], cases=8, out="xentcheck-out")
    print("ok:", result.ok, {v: n for v, n in result.counts.items() if n})
    for f in result.findings:  # grouped as report.md's Findings table
        print(f"{f.backend} {f.impl}: {f.kind} ({f.results} results, e.g. {f.cases[0]})")
    ref = xentcheck.reference(np.array([[2.0, 1.0, 0.1]], np.float32), np.array([0]))
    print("reference loss", ref.loss, "gradient", ref.grad, "in", ref.precision)
