"""PyTorch: torch.nn.functional.cross_entropy through autograd.

Index labels use class-index targets, one-hot and soft labels use probability targets (both
documented forms of the same API). The gradient is that of sum(loss): backward() with ones.
"""

from __future__ import annotations

import numpy as np

from backends.base import Backend, Output
from harness.cases import Case, Inputs


class TorchBackend(Backend):
    name = "torch"
    framework = "torch"
    impl = "F.cross_entropy"

    def load(self) -> None:
        import torch
        self.torch = torch
        # correctness runs pin numerics: no TF32 on CUDA matmuls/convolutions
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if self.torch.cuda.is_available() else [])

    def settings(self) -> dict:
        t = self.torch
        cudnn = t.backends.cudnn.version() if t.backends.cudnn.is_available() else None
        return {"num_threads": t.get_num_threads(), "cuda_available": t.cuda.is_available(),
                "cuda": t.version.cuda, "cudnn": cudnn, "allow_tf32": t.backends.cuda.matmul.allow_tf32,
                "cudnn_allow_tf32": t.backends.cudnn.allow_tf32, "mkldnn": t.backends.mkldnn.is_available(),
                "cpu_capability": t.backends.cpu.get_cpu_capability(), "git_version": t.version.git_version,
                "float32_matmul_precision": t.get_float32_matmul_precision()}

    def _tensor(self, a: np.ndarray, device: str):
        t = self.torch
        if a.dtype.name == "bfloat16":  # torch cannot read ml_dtypes arrays: go through the bits
            return t.from_numpy(a.view(np.int16).copy()).view(t.bfloat16).to(device)
        return t.from_numpy(a.copy()).to(device)

    def _numpy(self, x) -> np.ndarray:
        x = x.detach().cpu()
        if x.dtype == self.torch.bfloat16:
            return x.float().numpy()
        return x.numpy()

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        t = self.torch
        x = self._tensor(inputs.logits, device).requires_grad_(True)
        labels = self._tensor(inputs.labels, device)
        loss = t.nn.functional.cross_entropy(x, labels, reduction=case.reduction)
        loss.backward(t.ones_like(loss))
        if device == "cuda":
            t.cuda.synchronize()
        return Output(loss=self._numpy(loss), grad=self._numpy(x.grad),
                      loss_dtype=str(loss.dtype).removeprefix("torch."),
                      grad_dtype=str(x.grad.dtype).removeprefix("torch."))
