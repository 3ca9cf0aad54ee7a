"""Linear distillation cases: a distillation divergence between the softmax of the teacher's
logits h_t W_t^T and the student's h_s W_s^T at a temperature, from hidden states and weights, as
fused linear distillation losses take them (Liger's LigerFusedLinearJSDLoss; docs/distillation.md).

A case composes the two kinds' grammars in its kind segment: "lkd-d<D>+" and a distillation
segment's settings (problems/distill/cases.py), independent teachers only:

    scale1e+0_float32_16x1000_lkd-d64+jsd0.5+t2_index_batchmean

is N = 16 rows, V = 1000 classes, hidden size D = 64 for both models, JSD with beta 0.5 at T = 2.
Labels "soft" (every row counts) or "index" (about 30 % of the rows hold IGNORE_INDEX); the
reductions batchmean and sum. Inputs come from the two kinds' input makers: the student's h and W
from the linear kind's for the case's shape and family (its id made with reduction "sum"), the
teacher's likewise (reduction "mean": another id, another stream), the labels from the
distillation kind's; each a pure function of (seed, id).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.problems.distill import cases as distill_cases

KIND_TOKEN = "lkd"
REDUCTIONS = ("batchmean", "sum")


@dataclass(frozen=True)
class LinDistillSpec:
    d: int  # the hidden size of both models
    kd: str  # the distillation segment, "kd-..."


@lru_cache(maxsize=1024)
def parse(spec: str) -> LinDistillSpec:
    head, _, rest = spec.partition("+")
    if not head.startswith(KIND_TOKEN + "-d") or not head[len(KIND_TOKEN) + 2:].isdigit() or not rest:
        raise ValueError(f"linear distillation segment {spec!r}: it is lkd-d<D>+<divergence>[+t<T>][+sq]")
    d = int(head[len(KIND_TOKEN) + 2:])
    if not 1 <= d <= 1 << 16 or str(d) != head[len(KIND_TOKEN) + 2:]:
        raise ValueError(f"linear distillation segment {spec!r}: D is 1 to 65536, no leading zeros")
    kd = f"{distill_cases.KIND_TOKEN}-{rest}"
    s = distill_cases.parse(kd)
    if s.teacher != "indep" or s.teacher_grad:
        raise ValueError(f"linear distillation segment {spec!r}: an independent, detached teacher only")
    return LinDistillSpec(d, kd)


def kd_case(case: Case) -> Case:
    """The distillation case of the same shape, labels and reduction: its settings and reference."""
    return Case(case.family, case.dtype, case.n, case.k, case.labels, case.reduction, spec=parse(case.spec).kd)


def linear_case(case: Case, teacher: bool) -> Case:
    """The linear-CE case whose input maker draws the student's (or the teacher's) h and W."""
    return Case(case.family, case.dtype, case.n, case.k, "index", "mean" if teacher else "sum", d=parse(case.spec).d)


def validate(case: Case) -> None:
    parse(case.spec)
    if case.options or case.extra:
        raise ValueError("a linear distillation case has no _opt- options and no extra dimensions")
    if not case.family.startswith("scale"):
        raise ValueError(f"a linear distillation case's family is scale<s>, not {case.family!r}")
    kd_case(case).validate()


@dataclass
class LinDistillInputs:
    student_hidden: np.ndarray  # (N, D) in the dtype
    student_weight: np.ndarray  # (V, D)
    teacher_hidden: np.ndarray  # (N, D)
    teacher_weight: np.ndarray  # (V, D)
    labels: np.ndarray | None  # (N,) for index labels (IGNORE_INDEX rows do not count), else None

    ARRAYS = ("student_hidden", "student_weight", "teacher_hidden", "teacher_weight", "labels")

    def copy(self) -> LinDistillInputs:
        return LinDistillInputs(self.student_hidden.copy(), self.student_weight.copy(), self.teacher_hidden.copy(),
                                self.teacher_weight.copy(), None if self.labels is None else self.labels.copy())


def make_inputs(case: Case, seed: int) -> LinDistillInputs:
    from xentcheck.problems.linear.cases import make_linear_inputs
    s, t = make_linear_inputs(linear_case(case, False), seed), make_linear_inputs(linear_case(case, True), seed)
    labels = distill_cases.make_inputs(kd_case(case), seed).labels
    return LinDistillInputs(s.hidden, s.weight, t.hidden, t.weight, labels)


def lindistill_cases(dtype_names, full: bool = False) -> list[Case]:
    """Default: two (float32 JSD at T = 2 with ignored rows; bfloat16 forward KL). full=True adds,
    per dtype, forward and reverse KL, JSD at 0.1 and at 0.5 with T = 2 and T^2, both reductions,
    D = 16 and 256, and V = 32,000."""
    out: list[Case] = []
    for dt in ("float16", "bfloat16", "float32", "float64"):
        if dt not in dtype_names:
            continue
        if dt == "float32":
            out.append(Case("scale1e+0", dt, 16, 1000, "index", "batchmean", spec="lkd-d64+jsd0.5+t2"))
        if dt == "bfloat16":
            out.append(Case("scale1e+0", dt, 16, 500, "soft", "batchmean", spec="lkd-d32+fkl"))
        if not full:
            continue
        for i, div in enumerate(("fkl", "rkl", "jsd0.1", "jsd0.5+t2+sq")):
            for d in (16, 256):
                out.append(Case("scale1e+0", dt, 16, 1000, ("soft", "index")[i % 2], REDUCTIONS[(i + d) % 2],
                                spec=f"lkd-d{d}+{div}"))
        out.append(Case("scale1e+1", dt, 8, 1000, "index", "batchmean", spec="lkd-d64+jsd0.5+t0.7"))
        out.append(Case("scale1e+0", dt, 4, 32000, "index", "batchmean", spec="lkd-d64+jsd0.5"))
    return list(dict.fromkeys(out))
