"""Keras's `KLDivergence` for distillation, on each Keras backend (docs/distillation.md):
`keras.losses.KLDivergence(reduction=R, dtype=D)(softmax(z_t / T), softmax(z_s / T))`, the
student's gradient through its softmax by the backend's own autodiff (the teacher is y_true:
detached), times T^2 where the case asks for it.

KLDivergence clips both distributions to [epsilon, 1] (epsilon = 1e-7, Keras's
`backend.epsilon()`, in the tensors' dtype) before sum y_true log(y_true / y_pred): the variant's
semantics "keras_clip" give it the clipped reference (xentcheck.problems.distill.clip). A case
where the dtype cannot tell on which side of epsilon a student's probability lies, and the side
moves the gradient by more than one u of its scale, is `skipped` saying so
(backends.base.NotApplicable). Reductions: "sum_over_batch_size" (the mean over rows:
batchmean), "sum", None (per row)."""

from __future__ import annotations

from xentcheck.backends.base import NotApplicable, Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.distill import clip
from xentcheck.problems.distill.cases import parse

REDUCTIONS = {"batchmean": "sum_over_batch_size", "sum": "sum", "none": None}
FEATURES = ("fkl", "t", "sq", *REDUCTIONS)
IMPL = "KLDivergence"
CALL = "keras.losses.KLDivergence(reduction, dtype)(softmax(z_t / T), softmax(z_s / T))"


def variants(backend) -> list[Variant]:
    return [Variant(IMPL, m, ("soft",), backend.compiled.get(m, "{}").format(CALL), options=FEATURES,
                    semantics=clip.SEMANTICS, kind="distill", opt_in=m in backend.opt_in_modes) for m in backend.modes]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    why = clip.undecidable(case, inputs)
    if why:
        raise NotApplicable(why)
    spec = parse(case.spec)
    keras, ops = backend.keras, backend.keras.ops
    key = ("distill", case.spec, case.reduction, variant.mode, case.dtype)
    if key not in backend._fns:
        kl = keras.losses.KLDivergence(reduction=REDUCTIONS[case.reduction], dtype=case.dtype)
        t, factor = spec.temperature, spec.factor

        def loss_fn(zs, zt):
            loss = kl(ops.softmax(zt / t, axis=-1), ops.softmax(zs / t, axis=-1))
            return loss * factor if spec.squared else loss

        backend._fns[key] = backend._autodiff(loss_fn, variant.mode)
    with keras.device("gpu:0" if device == "cuda" else "cpu:0"):
        loss, grad = backend._fns[key](backend._tensor(inputs.student), backend._tensor(inputs.teacher), None)
        (loss, loss_dtype), (grad, grad_dtype) = backend._numpy(loss), backend._numpy(grad)
    return Output(loss, grads={"grad": grad}, loss_dtype=loss_dtype, grad_dtype=grad_dtype)
