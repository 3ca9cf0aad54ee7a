"""The adapter interface every backend implements (built-in or a user's plugin).

A backend computes, for one case, the loss and the gradient of sum(loss) with respect to the
logits through its own autodiff, and returns them as NumPy arrays together with the dtype it
actually computed in. It imports its framework lazily (in `load`), never at module import.

Minimal plugin::

    from backends.base import Backend, Output

    class MyKernel(Backend):
        name = "mykernel"
        def compute(self, case, inputs, device):
            loss, grad = my_fused_ce(inputs.logits, inputs.labels, case.reduction)
            return Output(loss=loss, grad=grad)

    BACKEND = MyKernel  # what `--backend-file` and the entry point look for
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.cases import Case, Inputs

ALL_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")


@dataclass
class Output:
    loss: np.ndarray  # () for mean/sum reductions, (N,) for none
    grad: np.ndarray  # (N, K)
    loss_dtype: str | None = None  # dtype the framework computed in; None: taken from the array
    grad_dtype: str | None = None
    notes: list[str] = field(default_factory=list)


class Backend:
    """Base class of adapters. Subclasses set `name` and implement `compute`."""

    name: str = "unnamed"
    framework: str = ""  # distribution name whose version is reported, e.g. "torch"
    impl: str = "default"  # the API called, reported with every result
    mode: str = "eager"
    dtypes: tuple[str, ...] = ALL_DTYPES
    label_forms: tuple[str, ...] = ("index", "onehot", "soft")

    def load(self) -> None:
        """Import the framework and configure it. Raise ImportError when it is missing."""

    def version(self) -> str:
        if not self.framework:
            return ""
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version(self.framework)
        except PackageNotFoundError:
            return ""

    def devices(self) -> list[str]:
        return ["cpu"]

    def settings(self) -> dict:
        """Numerics-relevant settings in force (thread counts, x64, TF32...), for the report."""
        return {}

    def unsupported(self, case: Case, device: str) -> str | None:
        """Why this backend cannot run `case` on `device`, or None when it can."""
        if case.dtype not in self.dtypes:
            return f"{self.name} does not support dtype {case.dtype}"
        if case.labels not in self.label_forms:
            return f"{self.name} does not support {case.labels} labels"
        if device not in self.devices():
            return f"device {device!r} not available to {self.name} (has: {', '.join(self.devices())})"
        return None

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        raise NotImplementedError
