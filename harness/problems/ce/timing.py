"""How `xentcheck bench` times plain CE (the record's `timing`): an N x K shape is a suite-grammar
case (`scale1e+0`, mean), checked as any case is, with the suite's seeded inputs."""

from __future__ import annotations

from xentcheck.core.cases import Case, make_inputs
from xentcheck.timing.measure import dtype_bytes, floor_bytes

# a framework's forward+backward holds the inputs, their copy, the tensor, exp, the kept forward
# and two gradients: about this many logits-sized buffers (checked against the peak RSS recorded)
MEMORY_FACTOR = 10


def parse(text: str) -> tuple[int, ...]:
    """"1024x32000" -> (1024, 32000); ValueError when malformed or beyond the case grammar's limits."""
    try:
        n, k = (int(v) for v in text.strip().lower().split("x"))
    except ValueError:
        raise ValueError(f"malformed shape {text.strip()!r} (expected NxK, e.g. 1024x32000)") from None
    workload("float32", (n, k), "index").validate()
    return n, k


def workload(dtype: str, shape: tuple[int, ...], labels: str) -> Case:
    n, k = shape
    return Case("scale1e+0", dtype, n, k, labels, "mean")


def floor(case: Case) -> int:
    return floor_bytes(case.rows, case.k, case.dtype, case.labels)


def need(case: Case) -> int:
    return case.rows * case.k * dtype_bytes(case.dtype) * MEMORY_FACTOR


def inputs(case: Case, seed: int):
    return make_inputs(case, seed)
