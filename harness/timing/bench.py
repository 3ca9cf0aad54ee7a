"""`xentcheck bench`: forward, backward and forward+backward times per backend x variant x dtype x shape.

Every kind bench times (a problem record with `timing`: plain CE's N x K shapes, linear-CE's
N x D x V) goes the same way: each shape is the record's case-like workload, sent by its id in
a TimeRequest to the backend's worker, which makes its inputs and times the variants of its kind.
One backend's worker at a time does the timing (the others are not started), every worker with
the same thread count and malloc setting (environment.allocator_env), forced through the
environment and recorded. The copy bandwidth of this machine is measured in the same run, before
the workers start, and each time is set against the workload's memory-bandwidth floor (bytes it
must move / that bandwidth).
"""

from __future__ import annotations

import datetime
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path

from xentcheck.core.cases import Case
from xentcheck.problems import DEFAULT_KIND, PROBLEMS, problem_of
from xentcheck.problems.base import Timing
from xentcheck.run import memory
from xentcheck.run.environment import allocator_env, fingerprint, thread_env
from xentcheck.run.plan import select_variants
from xentcheck.run.processes import Worker
from xentcheck.run.protocol import TimedVariant, TimeRequest, TimingReply
from xentcheck.timing.measure import QUICK_ENV, copy_bandwidth, dtype_bytes, quick

PHASES = ("forward", "backward", "forward_backward")


@dataclass
class BenchConfig:
    backends: list[str]
    dtypes: list[str] = field(default_factory=lambda: ["float32"])
    # the shapes to time, by kind (a problem record with `timing`), each in its record's grammar
    shapes: dict[str, list[tuple[int, ...]]] = field(
        default_factory=lambda: {DEFAULT_KIND: list(timing_of(DEFAULT_KIND).default_shapes)})
    impls: list[str] | None = None  # None: each kind's default_impls, else each backend's default ones
    modes: list[str] | None = None
    threads: int = 1
    allocator: str = "steady"  # environment.allocator_env
    device: str = "cpu"
    seed: int = 0
    min_block: float = 0.2
    blocks: int = 7
    case_timeout: float = 900.0  # seconds per variant of a workload
    log_dir: Path | None = None
    progress: bool = True
    worker_memory: int | None = field(default_factory=memory.default)  # bytes (run/memory.py); None: no ceiling


def timing_of(kind: str) -> Timing:
    """The kind's timing record; ValueError for a kind bench does not time."""
    problem = PROBLEMS[kind]
    if problem.timing is None:
        raise ValueError(f"xentcheck bench does not time {problem.title} cases")
    return problem.timing


def parse_shapes(text: str | None, kind: str = DEFAULT_KIND) -> list[tuple[int, ...]]:
    """"1024x32000,512x128256" -> [(1024, 32000), (512, 128256)] in the kind's grammar (plain CE:
    N x K; nothing given: the kind's default shapes); ValueError when malformed."""
    if not text:
        return list(timing_of(kind).default_shapes)
    return [timing_of(kind).parse(part) for part in text.split(",")]


def bench_case(dtype: str, n: int, k: int, labels: str) -> Case:
    """Plain CE's workload of an N x K shape."""
    return timing_of(DEFAULT_KIND).workload(dtype, (n, k), labels)


def default_backends(kinds) -> list[str] | None:
    """The backends a bench of these kinds times when none is named: the kinds' own defaults
    (linear-CE's: torch), or None (every backend) when a kind has none."""
    named = [timing_of(k).default_backends for k in kinds]
    if not named or not all(named):
        return None
    return list(dict.fromkeys(b for group in named for b in group))


def available_memory() -> int | None:
    from xentcheck.run.environment import proc_kib
    return proc_kib("/proc/meminfo", "MemAvailable")


def too_big(case: Case, available: int | None) -> str | None:
    """Why a workload is skipped: forward+backward would need more than 80% of the memory available."""
    timing = problem_of(case).timing
    assert timing is not None  # a workload is of a timed kind
    need = timing.need_bytes(case)
    if available is not None and need > 0.8 * available:
        return (f"needs about {need / 2**30:.1f} GiB ({timing.need_text}) for forward+backward; "
                f"{available / 2**30:.1f} GiB available")
    return None


def _wait(events: queue.Queue, worker: Worker, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, gen, msg = events.get(timeout=0.5)
        except queue.Empty:
            continue
        if gen == worker.generation:
            return msg
    return None


def _label_form(variant: dict) -> str:
    forms = variant.get("label_forms") or ["index"]
    return "index" if "index" in forms else forms[0]


def timing_worker_env(config: BenchConfig) -> dict[str, str]:
    """What a timing worker's environment forces: the thread count and the allocator setting."""
    return {**thread_env(config.threads), **allocator_env(config.allocator)}


def _base(backend: str, kind: str, case: Case, bandwidth: float) -> dict:
    """A row's fields before its timings: the workload, its floor and its logits' size."""
    timing = timing_of(kind)
    base: dict = {"backend": backend, "kind": kind, "dtype": case.dtype, "n": case.rows, "k": case.k,
                  **timing.fields(case), "shape": timing.label(case), "labels": case.labels, "case_id": case.id,
                  "floor_bytes": timing.floor_bytes(case), "logits_bytes": case.rows * case.k * dtype_bytes(case.dtype)}
    base["floor_seconds"] = base["floor_bytes"] / bandwidth
    return base


def workloads(kind: str, variants: list[dict], config: BenchConfig) -> list[tuple[Case, list[dict]]]:
    """The kind's workloads (every dtype x shape x label form its variants take), the least memory
    first (the worker's peak RSS grows with them), each with the variants that time it."""
    timing = timing_of(kind)
    forms: dict[str, list[dict]] = {}
    for v in variants:
        forms.setdefault(_label_form(v), []).append(v)
    cases = [timing.workload(d, shape, lf) for d in config.dtypes for shape in config.shapes[kind] for lf in forms]
    return [(c, forms[c.labels]) for c in sorted(cases, key=lambda c: (timing.need_bytes(c), c.dtype, c.labels))]


def kind_variants(variants: list[dict], kind: str, config: BenchConfig) -> list[dict]:
    """A backend's variants of the kind to time: --impls / --modes, else the kind's default_impls
    that the backend has, else the backend's default variants of the kind."""
    def of(impls: list[str] | None) -> list[dict]:
        return [v for v in select_variants(variants, "default", impls, config.modes)
                if v.get("kind", DEFAULT_KIND) == kind]
    if config.impls:
        return of(config.impls)
    return of(list(timing_of(kind).default_impls) or None) or of(None)


def bench_backend(spec: str, index: int, config: BenchConfig, bandwidth: float, emit) -> dict:
    """Time every selected variant of one backend on every workload of every kind; rows go to `emit`."""
    events: queue.Queue = queue.Queue()
    worker = Worker(index, spec, events, config.log_dir, env=timing_worker_env(config),
                    memory_ceiling=config.worker_memory)
    worker.start()
    try:
        hello = _wait(events, worker, 300.0) or {"status": "broken", "reason": f"worker {worker.exit_description()}"}
        info = {"spec": spec, "name": hello.get("name", spec), "status": hello.get("status"),
                "version": hello.get("version", ""), "settings": hello.get("settings", {}), "reason": hello.get("reason", "")}
        if hello.get("status") != "ok":
            return info
        for kind in config.shapes:
            variants = kind_variants(hello.get("variants", []), kind, config)
            if not variants:
                emit({"backend": info["name"], "kind": kind, "impl": "", "mode": "", "dtype": "", "n": 0, "k": 0,
                      "shape": "", "status": "skipped",
                      "reason": f"no selected implementation of {PROBLEMS[kind].title} in {info['name']}"})
            for case, chosen in workloads(kind, variants, config):
                base = _base(info["name"], kind, case, bandwidth)
                why = too_big(case, available_memory())
                if why:
                    for v in chosen:
                        emit({**base, "impl": v["impl"], "mode": v["mode"], "status": "skipped", "reason": why})
                    continue
                worker.send(TimeRequest(case.id, config.seed, config.device, [(v["impl"], v["mode"]) for v in chosen],
                                        min_block=config.min_block, blocks=config.blocks).to_dict())
                timeout, sent = config.case_timeout * len(chosen), time.monotonic()
                reply = _wait(events, worker, timeout)
                if reply is None or reply.get("op") != "timing":
                    refused = reply is not None and reply.get("op") == "result"  # an error answered: it serves on
                    why = (_error_of(reply) if refused else "worker timed out" if time.monotonic() - sent >= timeout
                           else f"worker {worker.exit_description()}")
                    for v in chosen:
                        emit({**base, "impl": v["impl"], "mode": v["mode"], "status": "error", "reason": why})
                    if refused:
                        continue
                    worker.kill()
                    worker.start()
                    if _wait(events, worker, 300.0) is None:
                        return info
                    continue
                for r in TimingReply.from_dict(reply).results:
                    emit(_row(base, r))
        return info
    finally:
        worker.quit()


def _error_of(reply: dict | None) -> str:
    """The error of a worker's RunReply to a request it could not serve (worker.main: "worker: ...")."""
    results = (reply or {}).get("results") or [{}]
    return str(results[0].get("error") or "answered no timing")


def _row(base: dict, r: TimedVariant) -> dict:
    row = {**base, "impl": r.variant.get("impl", ""), "mode": r.variant.get("mode", ""), "status": r.status,
           "api": r.variant.get("api", "")}
    if r.status != "ok" or r.phases is None:
        row["reason"] = r.reason or r.error
        return row
    row["phases"] = {}
    for name, stats in r.phases.items():
        row["phases"][name] = {**stats, "floor_ratio": stats["median"] / base["floor_seconds"]}
    row["peak_rss_bytes"] = r.peak_rss_bytes
    if r.peak_reset is not None:
        row["peak_reset"] = r.peak_reset
    if r.peak_rss_bytes is not None and r.rss_start_bytes is not None:
        # the variant's own peak above what the worker held with its inputs, and that over the logits
        row["rss_start_bytes"] = r.rss_start_bytes
        row["extra_bytes"] = r.peak_rss_bytes - r.rss_start_bytes
        row["extra_over_logits"] = row["extra_bytes"] / base["logits_bytes"]
    if r.notes:
        row["notes"] = r.notes
    return row


def run_bench(config: BenchConfig) -> dict:
    """Measure the bandwidth, then each backend in turn; returns the timing report's data."""
    from tqdm import tqdm

    bw = copy_bandwidth()
    rows: list[dict] = []
    infos = []
    bar = tqdm(total=len(config.backends), unit="backend", disable=None if config.progress else True)
    for i, spec in enumerate(config.backends):
        bar.set_description(spec)
        infos.append(bench_backend(spec, i, config, bw["bytes_per_second"], rows.append))
        bar.update(1)
    bar.close()
    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "threads": config.threads, "device": config.device, "bandwidth": bw,
            "allocator": {"mode": config.allocator, "env": allocator_env(config.allocator)},
            "config": {"backends": config.backends, "dtypes": config.dtypes, "shapes": {
                kind: ["x".join(map(str, shape)) for shape in shapes] for kind, shapes in config.shapes.items()},
                       "impls": config.impls, "modes": config.modes, "min_block": config.min_block,
                       "blocks": config.blocks, "seed": config.seed, "worker_memory": config.worker_memory},
            "method": {"first": "the first call, timed alone (compilation, tracing, allocation)",
                       "steady": f"{config.blocks} blocks of >= {config.min_block} s after >= 0.2 s of warm-up; "
                                 "per-call median, IQR and min over the blocks; noisy when IQR/median > 10%",
                       "allocator": ("glibc's trim and mmap thresholds fixed in the workers (freed buffers are "
                                     "reused, not returned to the OS and faulted in again, whatever the heap's history)"
                                     if config.allocator == "steady" else "malloc as the caller has it"),
                       "floor": "; ".join(f"{PROBLEMS[kind].title}: {timing_of(kind).floor_text}"
                                          for kind in config.shapes) + ", over the measured copy bandwidth",
                       "memory": "peak_rss_bytes: the worker's VmHWM, reset to its resident set just before the "
                                 "variant (its inputs copied already), read after it; extra_bytes: that peak above "
                                 "the resident set at the reset; extra_over_logits: extra_bytes over the logits' "
                                 "N x K bytes in the dtype",
                       **({"quick": f"{QUICK_ENV} was set: 1 ms blocks and warm-ups, a 1 MiB bandwidth copy; "
                                    "these times mean nothing"} if quick() else {})},
            "environment": fingerprint(), "backends": infos, "rows": rows}
