"""Toy kernels of Keras's clipped KLDivergence (semantics "keras_clip", forward KL with a detached
teacher): a careful one (the clip of both distributions at eps in float64, rounded once to the
dtype) and three that get the clip wrong: none at all (plain forward KL), the teacher's only, the
student's only. Pick one with --backend-file keras_clip_toys.py::NAME."""

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.problems.distill.cases import parse

EPS = 1e-7


class CarefulClip(Backend):
    name = "clip-careful"
    dtypes = ("float32", "float64")
    clip_teacher, clip_student = True, True

    def variants(self):
        return [Variant("toy_kl_clip", "eager", ("soft",), kind="distill", semantics="keras_clip",
                        options=("fkl", "t", "sq", "batchmean", "sum", "none"))]

    def run_variant(self, variant, case, inputs, device):
        s = parse(case.spec)
        eps = float(np.dtype(case.dtype).type(EPS))
        probs = []
        for z in (inputs.student, inputs.teacher):
            x = z.astype(np.float64) / s.temperature
            e = np.exp(x - x.max(axis=1, keepdims=True))
            probs.append(e / e.sum(axis=1, keepdims=True))
        ps, pt = probs
        cs = np.maximum(ps, eps) if self.clip_student else ps
        ct = np.maximum(pt, eps) if self.clip_teacher else pt
        keep = (ps >= eps) if self.clip_student else np.ones_like(ps, dtype=bool)
        row = (ct * np.log(ct / cs)).sum(axis=1)
        kept = np.where(keep, ct, 0)
        grad = ps * kept.sum(axis=1, keepdims=True) - kept  # d/da: -c(p_t) I + p_s sum c(p_t) I
        denom = len(row) if case.reduction == "batchmean" else 1
        loss = row if case.reduction == "none" else row.sum() / denom
        grad = grad * s.factor / s.temperature / denom
        return Output(np.asarray(loss * s.factor).astype(case.dtype), grads={"grad": grad.astype(case.dtype)})


class NoClip(CarefulClip):
    name = "clip-none"
    clip_teacher, clip_student = False, False


class TeacherClipOnly(CarefulClip):
    name = "clip-teacher-only"
    clip_student = False


class StudentClipOnly(CarefulClip):
    name = "clip-student-only"
    clip_teacher = False
