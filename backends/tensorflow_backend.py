"""TensorFlow: tf.nn.(sparse_)softmax_cross_entropy_with_logits through tf.GradientTape.

Index labels use the sparse op, one-hot and soft labels the dense one. Both return per-row
losses; mean and sum are tf.reduce_mean / tf.reduce_sum over the batch.
"""

from __future__ import annotations

import os

import numpy as np

from backends.base import Backend, Output
from harness.cases import Case, Inputs


class TensorflowBackend(Backend):
    name = "tensorflow"
    framework = "tensorflow"
    impl = "tf.nn.softmax_cross_entropy_with_logits"

    def load(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        self.tf = tf
        tf.config.experimental.enable_tensor_float_32_execution(False)

    def version(self) -> str:
        return self.tf.__version__

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if self.tf.config.list_physical_devices("GPU") else [])

    def settings(self) -> dict:
        tf = self.tf
        return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(default)"),
                **{f"build_{k}": v for k, v in tf.sysconfig.get_build_info().items()
                   if k in ("cuda_version", "cudnn_version", "is_cuda_build", "is_rocm_build")}}

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        tf = self.tf
        with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
            x = tf.constant(inputs.logits)
            labels = tf.constant(inputs.labels)
            with tf.GradientTape() as tape:
                tape.watch(x)
                if case.labels == "index":
                    rows = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)
                else:
                    rows = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=x)
                if case.reduction == "mean":
                    loss = tf.reduce_mean(rows)
                elif case.reduction == "sum":
                    loss = tf.reduce_sum(rows)
                else:
                    loss = rows
            grad = tape.gradient(loss, x, output_gradients=tf.ones_like(loss))
        return Output(loss=_np(loss), grad=_np(grad), loss_dtype=loss.dtype.name, grad_dtype=grad.dtype.name)


def _np(t) -> np.ndarray:
    return np.asarray(t.numpy())
