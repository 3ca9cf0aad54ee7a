"""Keras RL log-probabilities and entropy on each Keras backend (docs/rl.md), as a Keras user
writes them from its losses and ops:

    log p_y = -keras.losses.sparse_categorical_crossentropy(y, z / T, from_logits=True)
    H = -keras.ops.sum(keras.ops.softmax(z / T) * keras.ops.log_softmax(z / T), -1)

each differentiated by the backend's own autodiff with its cotangent: the advantages A for the
log-probabilities, the entropy coefficients c for the entropy (the two gradients of the kind).
Every mode of the backend (eager, tf.function, XLA, jax.jit; torch.compile when asked for)."""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.rl.cases import parse

IMPL = "sparse_cce_ops_entropy"
CALL = ("-keras.losses.sparse_categorical_crossentropy(y, z / T, from_logits=True); "
        "-keras.ops.sum(keras.ops.softmax(z / T) * keras.ops.log_softmax(z / T), -1)")


def variants(backend) -> list[Variant]:
    return [Variant(IMPL, m, ("index",), backend.compiled.get(m, "{}").format(CALL), options=("t",), kind="rl",
                    opt_in=m in backend.opt_in_modes) for m in backend.modes]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    keras, ops = backend.keras, backend.keras.ops
    t = parse(case.spec).temperature
    key = ("rl", case.spec, variant.mode, case.dtype)
    if key not in backend._fns:
        def logp_of(z, y):
            return -keras.losses.sparse_categorical_crossentropy(y, z / t, from_logits=True)

        def entropy_of(z, y):
            b = z / t
            return -ops.sum(ops.softmax(b, axis=-1) * ops.log_softmax(b, axis=-1), axis=-1)

        backend._fns[key] = (backend._autodiff(logp_of, variant.mode), backend._autodiff(entropy_of, variant.mode))
    logp_fn, entropy_fn = backend._fns[key]
    with keras.device("gpu:0" if device == "cuda" else "cpu:0"):
        z, y = backend._tensor(inputs.logits), backend._tensor(inputs.labels)
        logp, g = logp_fn(z, y, backend._tensor(inputs.advantages))
        h, eg = entropy_fn(z, y, backend._tensor(inputs.coefficients))
        (logp, loss_dtype), (g, grad_dtype) = backend._numpy(logp), backend._numpy(g)
        h, eg = backend._numpy(h)[0], backend._numpy(eg)[0]
    return Output(logp, grads={"entropy": h, "grad": g, "egrad": eg}, loss_dtype=loss_dtype, grad_dtype=grad_dtype)
