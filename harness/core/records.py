"""Typed records that cross module boundaries: what a worker computed for one variant
(`VariantOutput`), and a result (`Result`, with its `Metrics`) as evaluation makes it and
results.jsonl stores it.

`Result.to_dict` / `Result.from_dict` are the one serialiser of a results.jsonl line
(`result_line`; reports.files.read_results reads them back): fields are written in the order they are declared, a field
left at None is absent, and keys this version does not know are kept and written last, so a
file read and written again is unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

MATCH_FIELDS: dict[str, str] = {  # a known-differences entry's key -> the result field it matches
    "backend": "backend", "impl": "impl", "mode": "mode", "case": "case_id", "family": "family",
    "dtype": "dtype", "labels": "labels", "reduction": "reduction", "verdict": "verdict",
}


def _to_dict(obj) -> dict:
    """Declared fields that are not None, in declaration order, then the unknown keys (`other`).
    A result's `metrics` are written in its place, one key per output."""
    out: dict = {}
    for f in fields(obj):
        if f.name == "other":
            continue
        value = getattr(obj, f.name)
        if f.name == "metrics":
            out.update((name, m.to_dict()) for name, m in value.items())
        elif value is not None:
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
    out.update(obj.other)
    return out


def _split(cls, data: dict) -> tuple[dict, dict]:
    """(keyword arguments of cls's declared fields, the other keys)."""
    names = {f.name for f in fields(cls)} - {"other"}
    return {k: v for k, v in data.items() if k in names}, {k: v for k, v in data.items() if k not in names}


@dataclass
class Metrics:
    """Error metrics of a loss or a gradient against the reference (xentcheck.core.metrics.array_metrics)."""
    size: int | None = None
    abs_err: float | None = None
    rel_err: float | None = None
    ulp_err: float | None = None
    n_exceed: int | None = None
    n_nonfinite_mismatch: int | None = None
    p50_abs: float | None = None
    p99_abs: float | None = None
    p50_rel: float | None = None
    p99_rel: float | None = None
    p50_ulp: float | None = None
    p99_ulp: float | None = None
    atol_needed: list[float] | None = None  # at each rtol of metrics.rtol_grid
    excess: dict[str, float | str] | None = None  # max(error / allowed) under each tolerance preset
    sample_ulp: list[float | None] | None = None
    # the worst element (absent for an empty array); "nan"/"inf" as strings
    worst_index: list[int] | None = None
    worst_actual: float | str | None = None
    worst_expected: float | str | None = None
    worst_scale: float | None = None
    worst_allowed: float | None = None
    other: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Metrics:
        known, other = _split(cls, data)
        return cls(**known, other=other)


@dataclass
class Result:
    """One result: the case, the backend's implementation x mode that ran it, and the outcome.
    Every record has case_id, backend, verdict and reasons; the rest depends on the outcome."""
    # the case (Case.as_dict)
    case_id: str | None = None
    family: str | None = None
    dtype: str | None = None
    n: int | None = None
    k: int | None = None
    labels: str | None = None
    reduction: str | None = None
    extra: list[int] | None = None
    options: str | None = None
    # who computed it, where, on which inputs
    seed: int | None = None
    backend: str | None = None
    impl: str | None = None
    mode: str | None = None
    api: str | None = None
    device: str | None = None
    backend_version: str | None = None
    # the outcome
    loss_dtype: str | None = None  # the dtypes the backend computed in (grad_dtype: of its gradients)
    grad_dtype: str | None = None
    # each declared output's metrics (the kind's record in xentcheck.problems declares them), in
    # the kind's order; a results.jsonl line has one key per output, here
    metrics: dict[str, Metrics] = field(default_factory=dict)
    verdict: str | None = None  # one of metrics.VERDICTS
    reasons: list[str] | None = None
    traceback: str | None = None  # error: the backend's
    exit: dict | None = None  # crashed: how the worker ended
    tolerance: dict | None = None  # {"preset", and per tolerance row (tolerances.TOLERANCE_ROWS): {"rtol", "atol"}}
    reference_precision: str | None = None
    inputs_modified: list[str] | None = None
    notes: list[str] | None = None
    properties: dict[str, dict] | None = None  # name -> {"verdict", "detail"} (--properties)
    timing: dict | None = None
    documented: str | None = None  # the variant's documented deviation
    original_verdict: str | None = None  # a known difference: the verdict it had
    known: dict | None = None  # a known difference: {"id", "reason", "link"}
    # the case's fields that only some cases have (Case.as_dict), declared last: a line keeps them
    # after the outcome, where results.jsonl has always had them
    d: int | None = None  # linear-CE: the hidden size
    part: str | None = None  # a partitioning (sharded kinds)
    spec: str | None = None  # a kind segment (distillation, RL)
    inputs_file: str | None = None  # a user's file case (--inputs): its file
    other: dict[str, Any] = field(default_factory=dict)

    @property
    def recorded_verdict(self) -> str | None:
        """The verdict the run gave it: a known difference's own, before it was accepted."""
        return self.verdict if self.original_verdict is None else self.original_verdict

    @property
    def id_fields(self) -> dict:
        """The fields a known-differences entry matches on (MATCH_FIELDS; xentcheck.core.evaluate.matches)."""
        return {k: getattr(self, k) for k in MATCH_FIELDS.values() if getattr(self, k) is not None}

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        from xentcheck.problems import OUTPUT_NAMES
        outputs = {k: v for k, v in data.items() if k in OUTPUT_NAMES and isinstance(v, dict)}
        known, other = _split(cls, {k: v for k, v in data.items() if k not in outputs and k != "metrics"})
        return cls(**known, metrics={k: Metrics.from_dict(v) for k, v in outputs.items()}, other=other)


def result_line(result: Result) -> str:
    """A results.jsonl line (with its newline)."""
    return json.dumps(result.to_dict()) + "\n"


VARIANT_KEYS = ("impl", "mode", "label_forms", "api", "documented", "default", "opt_in", "options", "semantics",
                "takes", "kind")


def variant_info(v) -> dict:
    """A backend variant described as VariantOutput.variant holds it (a plain one without "kind")."""
    info = {"impl": v.impl, "mode": v.mode, "label_forms": list(v.label_forms), "api": v.api,
            "documented": v.documented, "default": v.default, "opt_in": v.opt_in,
            "options": list(v.options), "semantics": v.semantics,
            "takes": getattr(v, "takes", "logits")}
    from xentcheck.problems import DEFAULT_KIND
    kind = getattr(v, "kind", DEFAULT_KIND)
    if kind != DEFAULT_KIND:  # only then: plain variants' messages stay as they were
        info["kind"] = kind
    return info


def as_array(value, what: str) -> np.ndarray:
    """A backend's returned output as a NumPy array; TypeError when it is not numeric."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" and arr.dtype.name != "bfloat16":
        raise TypeError(f"backend returned {what} of type {type(value).__name__} "
                        f"(dtype {arr.dtype}), not a numeric array")
    return arr


@dataclass
class VariantOutput:
    """What a worker computed for one implementation x mode of a case; crosses the worker's pipe
    as a dict (to_dict / from_dict). The loss and gradients travel in a .npz file beside it, not in
    the message: `loss` and `grads` are set by whoever holds the arrays."""
    # "ok", "error" or "skipped"; "crashed" or "timeout": one of the variant's ranks died or hung
    # (xentcheck.run.ranks), its `error` says which and how
    status: str
    variant: dict = field(default_factory=dict)  # variant_info: impl, mode, api, semantics...
    reason: str = ""  # skipped: why
    error: str = ""  # error: "Type: message"
    traceback: str = ""
    seconds: float = 0.0  # the backend's call
    timings: dict[str, float] = field(default_factory=dict)  # more of the worker's seconds: properties_seconds...
    loss_dtype: str | None = None  # the dtypes it computed in
    grad_dtype: str | None = None
    inputs_modified: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    properties: dict[str, dict] | None = None  # computed by the worker when asked for
    loss: np.ndarray | None = None  # in the case's shape, as the backend returned them
    grads: dict[str, np.ndarray] | None = None  # the gradients, by the kind's declared output names

    @property
    def semantics(self) -> str:
        return self.variant.get("semantics", "plain")

    def to_dict(self) -> dict:
        out = {**self.variant, "status": self.status}
        if self.status == "skipped":
            out["reason"] = self.reason
        elif self.status in ("error", "crashed", "timeout"):
            out.update(error=self.error, traceback=self.traceback)
        else:
            out.update(seconds=self.seconds, inputs_modified=self.inputs_modified, loss_dtype=self.loss_dtype,
                       grad_dtype=self.grad_dtype, notes=self.notes)
            if self.properties is not None:
                out["properties"] = self.properties
            if self.timings:
                out["timings"] = self.timings
        return out

    @classmethod
    def from_dict(cls, data: dict) -> VariantOutput:
        return cls(status=data.get("status", "error"), variant={k: data[k] for k in VARIANT_KEYS if k in data},
                   reason=data.get("reason", ""),
                   error=data.get("error", "unknown error" if data.get("status") == "error" else ""),
                   traceback=data.get("traceback", ""), seconds=data.get("seconds", 0.0),
                   timings=dict(data.get("timings", {})),
                   loss_dtype=data.get("loss_dtype"), grad_dtype=data.get("grad_dtype"),
                   inputs_modified=list(data.get("inputs_modified", [])), notes=list(data.get("notes", [])),
                   properties=data.get("properties"))


@dataclass
class Subject:
    """Who computed a result, where, and on which inputs: the record's fields besides the case's
    and the outcome's."""
    backend: str
    impl: str = ""
    mode: str = ""
    api: str = ""
    device: str = "cpu"
    seed: int | None = None
    backend_version: str | None = None
    documented: str = ""  # the variant's documented deviation, if any

    def result(self, case, **outcome) -> Result:
        """A record of `case` (a Case) computed by this subject, with these outcome fields."""
        r = Result.from_dict({**case.as_dict(), "seed": self.seed, "backend": self.backend, "impl": self.impl,
                              "mode": self.mode, "api": self.api, "device": self.device,
                              "backend_version": self.backend_version, **outcome})
        r.documented = self.documented or None
        return r
