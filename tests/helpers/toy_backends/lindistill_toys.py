"""Linear distillation toy kernels: a careful one (logits h W^T, the divergence and the chain rule in
float64, rounded once) and two each broken one way: the temperature left out of dW, and dW formed
from the teacher's hidden states. Pick one with --backend-file lindistill_toys.py::NAME."""

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.core.cases import IGNORE_INDEX
from xentcheck.problems.distill.cases import parse as parse_kd
from xentcheck.problems.distill.reference import divergence
from xentcheck.problems.lindistill.cases import kd_case


def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return (z - m) - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


class CarefulLinDistill(Backend):
    name = "lindistill-careful"
    dtypes = ("float32", "float64")
    label_forms = ("soft", "index")
    breaks: frozenset = frozenset()

    def variants(self):
        return [Variant("toy_lindistill", "eager", ("soft", "index"), kind="lindistill",
                        options=("fkl", "rkl", "jsd", "t", "sq", "ign", "batchmean", "sum"))]

    def run_variant(self, variant, case, inputs, device):
        s = parse_kd(kd_case(case).spec)
        t = s.temperature
        hs, ws, ht, wt = (getattr(inputs, a).astype(np.float64) for a in inputs.ARRAYS[:4])
        d = divergence(s, _log_softmax(hs @ ws.T / t), _log_softmax(ht @ wt.T / t))
        counted = np.ones(case.n, bool) if inputs.labels is None else inputs.labels != IGNORE_INDEX
        denom = counted.sum() if case.reduction == "batchmean" else 1
        loss = np.where(counted, d["row"], 0).sum() * s.factor / denom
        g = d["gs"] * (counted * s.factor / denom)[:, None]
        dh = g @ ws / t
        dw = g.T @ (ht if "teacher" in self.breaks else hs) / (1 if "no_t" in self.breaks else t)
        dt = inputs.student_hidden.dtype
        return Output(np.asarray(loss).astype(dt), grads={"dh": dh.astype(dt), "dw": dw.astype(dt)})


class NoTemperatureInDw(CarefulLinDistill):
    name = "lindistill-no-t-in-dw"
    breaks = frozenset({"no_t"})


class TeacherHiddenInDw(CarefulLinDistill):
    name = "lindistill-teacher-hidden-in-dw"
    breaks = frozenset({"teacher"})


BACKEND = CarefulLinDistill
