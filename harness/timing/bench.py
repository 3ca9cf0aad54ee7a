"""`xentcheck bench`: forward, backward and forward+backward times per backend x variant x dtype x shape.

One backend's worker at a time does the timing (the others are not started), every worker with
the same thread count and malloc setting (environment.allocator_env), forced through the
environment and recorded. The copy bandwidth of this machine is measured in the same run, before
the workers start, and each time is set against the shape's memory-bandwidth floor (bytes it must
move / that bandwidth).
"""

from __future__ import annotations

import datetime
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path

from xentcheck.core.cases import Case
from xentcheck.problems import DEFAULT_KIND
from xentcheck.run import memory
from xentcheck.run.environment import allocator_env, fingerprint, thread_env
from xentcheck.run.plan import select_variants
from xentcheck.run.processes import Worker
from xentcheck.run.protocol import TimedVariant, TimeRequest, TimingReply
from xentcheck.timing.measure import QUICK_ENV, copy_bandwidth, dtype_bytes, floor_bytes, quick

DEFAULT_SHAPES: tuple[tuple[int, int], ...] = ((256, 1000), (1024, 8192), (1024, 32000), (512, 128256))
# a framework's forward+backward holds the inputs, their copy, the tensor, exp, the kept forward
# and two gradients: about this many logits-sized buffers (checked against the peak RSS recorded)
MEMORY_FACTOR = 10
PHASES = ("forward", "backward", "forward_backward")


@dataclass
class BenchConfig:
    backends: list[str]
    dtypes: list[str] = field(default_factory=lambda: ["float32"])
    shapes: list[tuple[int, int]] = field(default_factory=lambda: list(DEFAULT_SHAPES))
    impls: list[str] | None = None
    modes: list[str] | None = None
    threads: int = 1
    allocator: str = "steady"  # environment.allocator_env
    device: str = "cpu"
    seed: int = 0
    min_block: float = 0.2
    blocks: int = 7
    case_timeout: float = 900.0
    log_dir: Path | None = None
    progress: bool = True
    worker_memory: int | None = field(default_factory=memory.default)  # bytes (run/memory.py); None: no ceiling


def parse_shapes(text: str | None) -> list[tuple[int, int]]:
    """"1024x32000,512x128256" -> [(1024, 32000), (512, 128256)]; ValueError when malformed."""
    if not text:
        return list(DEFAULT_SHAPES)
    shapes = []
    for part in text.split(","):
        try:
            n, k = (int(v) for v in part.strip().lower().split("x"))
        except ValueError:
            raise ValueError(f"malformed shape {part.strip()!r} (expected NxK, e.g. 1024x32000)") from None
        Case("scale1e+0", "float32", n, k, "index", "mean").validate()
        shapes.append((n, k))
    return shapes


def bench_case(dtype: str, n: int, k: int, labels: str) -> Case:
    return Case("scale1e+0", dtype, n, k, labels, "mean")


def available_memory() -> int | None:
    from xentcheck.run.environment import proc_kib
    return proc_kib("/proc/meminfo", "MemAvailable")


def too_big(case: Case, available: int | None) -> str | None:
    need = case.n * case.k * dtype_bytes(case.dtype) * MEMORY_FACTOR
    if available is not None and need > 0.8 * available:
        return (f"needs about {need / 2**30:.1f} GiB ({MEMORY_FACTOR} x the logits) for forward+backward; "
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


def bench_backend(spec: str, index: int, config: BenchConfig, bandwidth: float, emit) -> dict:
    """Time every selected variant of one backend on every (dtype, shape); rows go to `emit`."""
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
        # the default kind's (plain CE's) variants here; linear-CE's are timed on --linear-shapes
        # (xentcheck.problems.linear.bench)
        variants = [v for v in select_variants(hello.get("variants", []), "default", config.impls, config.modes)
                    if v.get("kind", DEFAULT_KIND) == DEFAULT_KIND]
        forms: dict[str, list[dict]] = {}
        for v in variants:
            forms.setdefault(_label_form(v), []).append(v)
        cases = sorted((bench_case(d, n, k, lf) for d in config.dtypes for n, k in config.shapes for lf in forms),
                       key=lambda c: (c.n * c.k, c.dtype, c.labels))  # small first: the peak RSS grows with them
        for case in cases:
            base = {"backend": info["name"], "dtype": case.dtype, "n": case.n, "k": case.k, "labels": case.labels,
                    "case_id": case.id, "floor_bytes": floor_bytes(case.n, case.k, case.dtype, case.labels)}
            base["floor_seconds"] = base["floor_bytes"] / bandwidth
            chosen = forms[case.labels]
            why = too_big(case, available_memory())
            if why:
                for v in chosen:
                    emit({**base, "impl": v["impl"], "mode": v["mode"], "status": "skipped", "reason": why})
                continue
            worker.send(TimeRequest(case.id, config.seed, config.device, [(v["impl"], v["mode"]) for v in chosen],
                                    min_block=config.min_block, blocks=config.blocks).to_dict())
            reply = _wait(events, worker, config.case_timeout)
            if reply is None or reply.get("op") != "timing":
                how = "timed out" if reply is None else worker.exit_description()
                for v in chosen:
                    emit({**base, "impl": v["impl"], "mode": v["mode"], "status": "error", "reason": f"worker {how}"})
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
            "config": {"backends": config.backends, "dtypes": config.dtypes, "shapes": [f"{n}x{k}" for n, k in config.shapes],
                       "impls": config.impls, "modes": config.modes, "min_block": config.min_block,
                       "blocks": config.blocks, "seed": config.seed, "worker_memory": config.worker_memory},
            "method": {"first": "the first call, timed alone (compilation, tracing, allocation)",
                       "steady": f"{config.blocks} blocks of >= {config.min_block} s after >= 0.2 s of warm-up; "
                                 "per-call median, IQR and min over the blocks; noisy when IQR/median > 10%",
                       "allocator": ("glibc's trim and mmap thresholds fixed in the workers (freed buffers are "
                                     "reused, not returned to the OS and faulted in again, whatever the heap's history)"
                                     if config.allocator == "steady" else "malloc as the caller has it"),
                       "floor": "bytes >= N*K*(logit + gradient bytes) + N*(label + loss bytes) "
                                "(N*K label bytes for probability labels), over the measured copy bandwidth",
                       **({"quick": f"{QUICK_ENV} was set: 1 ms blocks and warm-ups, a 1 MiB bandwidth copy; "
                                    "these times mean nothing"} if quick() else {})},
            "environment": fingerprint(), "backends": infos, "rows": rows}
