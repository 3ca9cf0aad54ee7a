"""A backend's worker process: `python -m xentcheck.run.worker SPEC`.

Speaks JSON lines, each a record of xentcheck.run.protocol: the first message is a Hello
describing the backend (or why it is missing or broken); for each RunRequest the worker
regenerates the inputs from (seed, case_id) (a user's file case: reads its file), runs the backend,
writes each variant's loss and gradients to the .npz file `out` and answers with a RunReply; only
small messages cross the pipe. A TimeRequest times the variants instead (`xentcheck bench`),
answered by a TimingReply; Quit ends it. The framework's own chatter
on stdout is redirected to stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

import numpy as np

from xentcheck.core.cases import Case, Inputs, make_inputs
from xentcheck.core.dtypes import transport_dtype
from xentcheck.core.records import VariantOutput, variant_info
from xentcheck.problems import problem_of, runs
from xentcheck.run.environment import numerics_env
from xentcheck.run.memory import current_rss, peak_rss, release_if_large, reset_peak
from xentcheck.run.protocol import Hello, Quit, RunReply, RunRequest, TimedVariant, TimeRequest, TimingReply, message

if TYPE_CHECKING:
    from xentcheck.core.tolerances import Tol


def describe(backend) -> dict:
    return {"name": str(backend.name), "impl": backend.impl, "mode": backend.mode,
            "variants": [variant_info(v) for v in backend.variants()],
            "version": backend.version(), "dtypes": list(backend.dtypes),
            "label_forms": list(backend.label_forms), "devices": backend.devices(),
            "settings": backend.settings(), "numerics_env": numerics_env(os.environ),
            "python": sys.version.split()[0],
            "executable": sys.executable}


def hello(spec: str) -> tuple[object, Hello]:
    """Create and load the backend; returns (backend or None, hello message)."""
    from xentcheck.backends.base import Backend
    from xentcheck.backends.registry import BackendLoadError, create
    try:
        backend = create(spec)
    except BackendLoadError as exc:
        return None, Hello("broken", reason=str(exc))
    except Exception as exc:
        return None, Hello("broken", reason=f"{type(exc).__name__}: {exc}")
    cls = type(backend)
    if cls.compute is Backend.compute and cls.run_variant is Backend.run_variant:  # say so once, not per case
        return None, Hello("broken", name=str(getattr(backend, "name", spec)),
                           reason=f"{type(backend).__name__} does not implement compute()")
    try:
        backend.load()
    except ImportError as exc:
        return None, Hello("missing", name=backend.name, reason=f"{backend.name}: framework not installed ({exc})")
    except Exception as exc:
        return None, Hello("broken", name=backend.name,
                           reason=f"{backend.name} failed to load: {type(exc).__name__}: {exc}")
    try:
        return backend, Hello("ok", **describe(backend))
    except Exception as exc:
        return None, Hello("broken", name=getattr(backend, "name", spec),
                           reason=f"describing the backend failed: {type(exc).__name__}: {exc}")


def missing_options(v, case: Case) -> list[str]:
    """The case's options this variant's API does not take ("oor" goes to every index API)."""
    return sorted(case.option_set - {"oor"} - set(v.options))


def run_case(backend, request: RunRequest) -> RunReply:
    """Run one case through the requested variants; one result entry per variant that applies."""
    case = Case.from_id(request.case_id, request.inputs)
    reply = RunReply(case.id)
    all_variants = backend.variants()
    chosen = _chosen(all_variants, request.variants)
    applicable = [v for v in chosen if case.labels in v.label_forms and runs(v, case)]
    why = backend.unsupported(case, request.device)
    if not applicable and chosen and not why:
        why = (f"{backend.name}: no selected implementation takes {case.labels} labels"
               if any(runs(v, case) for v in chosen) else
               f"{backend.name}: no selected implementation takes {problem_of(case).title} cases")
    if why:  # one skipped result per variant that would have run, so every result key exists
        reply.results = [VariantOutput("skipped", variant_info(v), reason=why)
                         for v in (applicable or chosen[:1] or all_variants[:1])]
        return reply
    inputs = make_inputs(case, request.seed)
    for j, v in enumerate(applicable):
        missing = _missing_reason(v, case)
        if missing:  # an unsupported combination is a skip with a reason, never an error
            reply.results.append(VariantOutput("skipped", variant_info(v), reason=missing))
            continue
        reply.results.append(_run_variant(backend, v, case, inputs, request, j, all_variants))
    return reply


def _chosen(variants: list, wanted: list[tuple[str, str]]) -> list:
    """The variants asked for by (impl, mode), in the backend's order; none asked: its default ones."""
    return [v for v in variants if (v.impl, v.mode) in wanted] if wanted else [v for v in variants if v.default]


def _missing_reason(v, case: Case) -> str:
    missing = missing_options(v, case)
    return f"{v.impl} takes no option {', '.join(missing)} ({case.options})" if missing else ""


def output_of(backend, v, case: Case, inputs: Inputs, device: str) -> VariantOutput:
    """One variant of a loaded backend on the case's inputs (rows), in this process, as a worker
    would compute it (without properties): the pytest plugin's and `xentcheck repro`'s way in."""
    why = backend.unsupported(case, device) or _missing_reason(v, case)
    if why:
        return VariantOutput("skipped", variant_info(v), reason=why)
    return compute(backend, v, case, inputs, device)


def time_case(backend, request: TimeRequest) -> TimingReply:
    """Time forward, backward and forward+backward of each chosen variant of the workload's kind,
    with the peak resident memory of each (reset_peak before it, VmHWM after). The workload is a
    case id that its kind's record checks and makes the inputs of (Problem.timing): a bench shape
    may lie beyond the suites' size limits."""
    from xentcheck.timing.measure import measure
    case = Case.from_id(request.case_id, request.inputs, validate=False)
    problem = problem_of(case)
    if problem.timing is None:
        raise ValueError(f"xentcheck bench does not time {problem.title} cases")
    problem.timing.check(case)
    of_kind = [v for v in _chosen(backend.variants(), request.variants) if runs(v, case)]
    chosen = [v for v in of_kind if case.labels in v.label_forms]
    reply = TimingReply(case.id)
    why = backend.unsupported(case, request.device) or ("" if chosen else (
        f"no selected implementation takes {case.labels} labels" if of_kind
        else f"no selected implementation takes {problem.title} cases"))
    if why:
        reply.results = [TimedVariant("skipped", reason=why)]
        return reply
    inputs = problem.backend_inputs(case, problem.timing.inputs(case, request.seed))
    device, opts = request.device, request.measure_options()
    for v in chosen:
        mine = inputs.copy()  # the variant's own copy, made before the reset: its peak is the call's
        entry = TimedVariant("ok", variant_info(v), peak_reset=reset_peak(), rss_start_bytes=current_rss())
        if not entry.peak_reset:
            entry.notes.append("/proc/self/clear_refs not writable: the peak is the worker's since it started")
        fns: dict | None = None
        try:
            fns = backend.timing_fns(v, case, mine, device)
            if fns is None:  # a plugin without timing_fns: forward+backward through its compute path
                # v and mine bound as defaults: this variant's (measure calls it in this iteration)
                fns = {"forward_backward": lambda v=v, mine=mine: backend.run_variant(v, case, mine, device)}
                entry.notes.append("no timing_fns: forward+backward timed through run_variant (NumPy conversions included)")
            entry.phases = {name: measure(fn, **opts) for name, fn in fns.items()}
        except Exception as exc:
            entry.status, entry.error = "error", f"{type(exc).__name__}: {exc}"
        entry.peak_rss_bytes = peak_rss()
        del mine, fns
        reply.results.append(entry)
    return reply


def compute(backend, v, case: Case, pristine: Inputs, device: str, properties: Tol | None = None,
            all_variants=()) -> VariantOutput:
    """Run variant `v` on a copy of the case's inputs (its kind's compute). The output holds the
    loss and gradients as returned; with `properties` (the run's tolerance) the property checks too."""
    return problem_of(case).compute(backend, v, case, pristine, device, properties, all_variants)


def _run_variant(backend, v, case: Case, pristine: Inputs, request: RunRequest, j: int, all_variants) -> VariantOutput:
    """compute(), its arrays written to the .npz file the parent reads (not sent on the pipe)."""
    tol = None
    if request.properties:
        from xentcheck.core.tolerances import Tol
        tol = Tol(request.rtol, request.atol, request.scaled)
    result = compute(backend, v, case, pristine, request.device, tol, all_variants)
    if result.status == "ok":
        assert result.loss is not None and result.grads is not None  # compute's "ok" carries the arrays
        # named as the kind declares them (Any: savez's own allow_pickle keyword is not among them)
        arrays: dict[str, Any] = {k: a.astype(transport_dtype(a.dtype))
                                  for k, a in {"loss": result.loss, **result.grads}.items()}
        np.savez(f"{request.out}-{j}.npz", **arrays)
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m xentcheck.run.worker BACKEND_SPEC", file=sys.stderr)
        return 2
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    backend, greeting = hello(argv[0])
    label = os.environ.get("XENTCHECK_INTERPRETER_LABEL")  # --python LABEL=...: name it BACKEND@LABEL
    if label:
        greeting.name = f"{argv[0] if greeting.name is None else greeting.name}@{label}"
    send(greeting.to_dict())
    if backend is None:
        return 0
    for line in sys.stdin:
        data = json.loads(line)
        try:
            request = message(data)
            if isinstance(request, Quit):
                break
            if isinstance(request, TimeRequest):
                send(time_case(backend, request).to_dict())
            elif isinstance(request, RunRequest):
                send(run_case(backend, request).to_dict())
                before = release_if_large(backend)
                if before is not None:
                    print(f"xentcheck worker: released compiled programs at {before / 2**30:.2f} GiB resident, "
                          f"{(current_rss() or 0) / 2**30:.2f} GiB after", file=sys.stderr)
            else:
                raise ValueError(f"a worker takes no {data.get('op')!r} message")
        except Exception as exc:  # keep serving: one bad case must not end the backend's run
            send(RunReply(data.get("case_id"), [
                VariantOutput("error", error=f"worker: {type(exc).__name__}: {exc}",
                              traceback=traceback.format_exc(limit=-3))]).to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
