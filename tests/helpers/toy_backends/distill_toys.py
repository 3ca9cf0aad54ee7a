"""Distillation toy kernels: a careful one (every step in float64 with the row maximum taken out,
log M by logaddexp, 0 log 0 as 0, rounded once to the dtype) and six each broken one way, as
users reported them (issue 27): pick one with --backend-file distill_toys.py::NAME."""

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.problems.distill.cases import parse


def _log_softmax(x, running_max_zero=False):
    m = np.zeros((len(x), 1)) if running_max_zero else x.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return (x - m) - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _pq(p, v):
    with np.errstate(invalid="ignore"):
        return np.where(p > 0, p * np.where(p > 0, v, 0), 0)


class CarefulDistill(Backend):
    name = "distill-careful"
    dtypes = ("float32", "float64")
    breaks: frozenset = frozenset()

    def variants(self):
        return [Variant("toy_distill", "eager", ("soft", "index"), kind="distill",
                        options=("fkl", "rkl", "jsd", "t", "sq", "tg", "ign", "batchmean", "sum", "mean", "none"))]

    def run_variant(self, variant, case, inputs, device):
        s, br = parse(case.spec), self.breaks
        t = s.temperature
        zs, zt = inputs.student.astype(np.float64) / t, inputs.teacher.astype(np.float64) / t
        ls, lt = _log_softmax(zs, "max0" in br), _log_softmax(zt, "max0" in br)
        ps, pt = np.exp(ls), np.exp(lt)
        with np.errstate(all="ignore"):
            if s.divergence == "fkl":
                row = _pq(pt, lt - ls).sum(1)
                gs, gt = ps - pt, _pq(pt, lt - ls - row[:, None])
            elif s.divergence == "rkl":
                row = _pq(ps, ls - lt).sum(1)
                gs, gt = _pq(ps, ls - lt - row[:, None]), pt - ps
            else:
                b = s.beta
                if "beta" in br:  # the weights' roles swapped: M = b p_s + (1 - b) p_t
                    ls, lt, ps, pt = lt, ls, pt, ps
                if "mixnan" in br:  # the mixture formed in probabilities, then its log: log 0 = -inf
                    lm = np.log(b * pt + (1 - b) * ps)
                    kt, ks = (pt * (lt - lm)).sum(1), (ps * (ls - lm)).sum(1)
                else:
                    lm = np.logaddexp(np.log(b) + lt, np.log1p(-b) + ls)
                    kt, ks = _pq(pt, lt - lm).sum(1), _pq(ps, ls - lm).sum(1)
                row = b * kt + (1 - b) * ks
                gs, gt = (1 - b) * _pq(ps, ls - lm - ks[:, None]), b * _pq(pt, lt - lm - kt[:, None])
                if "beta" in br:
                    gs, gt = gt, gs
        counted = np.ones(len(zs), bool) if inputs.labels is None or "ign" in br else inputs.counted()
        n = counted.sum()
        denom = {"batchmean": n, "mean": n * case.k}.get(case.reduction, 1)
        c = s.factor if "nosq" not in br else 1.0
        rows = np.where(counted, row, 0) * c
        loss = rows if case.reduction == "none" else rows.sum() / denom
        g = (c / t / denom * counted)[:, None]
        dt = inputs.student.dtype
        grads = {"grad": (gs * g).astype(dt)}
        if s.teacher_grad or "leak" in br:  # leak: the teacher's gradient though it is detached
            grads["tgrad"] = (gt * g).astype(dt)
        return Output(np.asarray(loss).astype(dt), grads=grads)


class MixtureNan(CarefulDistill):
    name = "distill-mixture-nan"
    breaks = frozenset({"mixnan"})


class BetaReversed(CarefulDistill):
    name = "distill-beta-reversed"
    breaks = frozenset({"beta"})


class NoTSquared(CarefulDistill):
    name = "distill-no-t-squared"
    breaks = frozenset({"nosq"})


class IgnoreIgnored(CarefulDistill):
    name = "distill-ignore-ignored"
    breaks = frozenset({"ign"})


class RunningMaxZero(CarefulDistill):
    name = "distill-running-max-zero"
    breaks = frozenset({"max0"})


class TeacherLeak(CarefulDistill):
    name = "distill-teacher-leak"
    breaks = frozenset({"leak"})


BACKEND = CarefulDistill
