"""Harness performance figures, each printed with its target and PASS / MISS.

    python benchmarks/bench_harness.py [--cases N] [--big] [--json FILE] [--only PART,...]

1. wall time of `xentcheck run` on the default suite vs a plain loop doing the same work by hand
   (benchmarks/plain_loop.py: every case's inputs, each framework's loss and gradient through its
   autodiff, the reference and a comparison, in one loop; as many of them side by side as the
   machine has cores, each every P-th case), three rounds taken alternately, the median of each
   round's ratio: <= 1.2x; and the cores the run kept busy (CPU seconds / wall seconds of it and
   its workers): >= 1.5 of 2. No ratio, and exit status 1, when either side crashed, made no call,
   had calls raise, or the two made different numbers of calls (refusal(): a time without the work
   is not a measurement);
2. the reference on 4096 x 32,000 float32, best of calls 2 to 5 (computed into the first's gradient
   buffer, as the harness's next case of a size is: harness/core/spare.py), vs the memory-bandwidth floor
   (copy bandwidth measured here): <= 3x (printed beside it: calls into fresh pages, its NumPy
   implementation's time, and np.ones of the gradient's shape, what a fresh array of that size
   costs to touch); its peak memory (logits +
   everything it allocates, by tracemalloc) on N x 128,256 float32 vs the logits' size: <= 4x
   (N = 2048, or 8192 with --big: 17 GB of RAM);
3. `xentcheck --help` wall time (a fresh interpreter): < 0.5 s; and no framework imported by the
   parent process of `--help` or `backends`;
4. `xentcheck bench`'s torch figures vs torch.utils.benchmark.Timer.blocked_autorange on the same
   shape and thread count: end to end (`xentcheck bench` and Timer in separate processes, three
   rounds taken alternately; printed, with Timer's own spread over the rounds), and, the figure,
   in one process, the worker's `time_case`'s callables with `measure()` (the code behind
   `xentcheck bench`) and Timer taking turns 25 times per phase, the median of each turn's ratio:
   within 10%; with Timer against itself in the same turns as the control (the resolution the host
   allows).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xentcheck.run.environment import fingerprint, worker_env  # noqa: E402
from xentcheck.timing.bench import BenchConfig, timing_worker_env  # noqa: E402

FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "optax", "keras")
BACKENDS = ("numpy", "torch", "tensorflow", "jax")
rows: list[dict] = []
rounds_log: list[dict] = []  # the overhead comparison's rounds, each side as it ran


def report(figure: str, value: float, target: str, ok: bool, detail: str = "") -> None:
    rows.append({"figure": figure, "value": value, "target": target, "pass": ok, "detail": detail})
    print(f"{'PASS' if ok else 'MISS'}  {figure}: {value:.3g} (target {target}){'  ' + detail if detail else ''}", flush=True)


def _env() -> dict:
    env = worker_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class Side:
    """One side of one round of the overhead comparison, as it ran."""

    name: str  # "harness" or "plain loop"
    seconds: float
    cores: float  # CPU seconds of its processes / wall seconds
    calls: int  # framework calls: the run's results less the skipped ones; the loop's calls
    raised: int = 0  # calls that raised (the run: results "error", "crashed", "timeout")
    first_error: str | None = None
    crash: str = ""  # why the side did not finish as it should: its exit status and last stderr line
    detail: dict = field(default_factory=dict)


def refusal(harness: Side, plain: Side) -> str | None:
    """Why the two sides' times give no ratio, in one line (None: they do). A side that crashed,
    made no call or had calls raise did not do the work, and a time without the work is not a
    measurement; two sides that made different calls did not do the same work."""
    why = None
    for side in (harness, plain):
        if side.crash:
            why = f"the {side.name} crashed ({side.crash})"
        elif side.calls == 0:
            why = f"the {side.name} made no call"
        elif side.raised:
            why = f"{side.raised} of the {side.name}'s {side.calls} calls raised (first: {side.first_error})"
        if why:
            break
    if why is None and harness.calls != plain.calls:
        why = "the two sides did not make the same calls"
    if why is None:
        return None
    return (f"no ratio: {why}; harness {harness.calls} calls in {harness.seconds:.1f} s, "
            f"plain loop {plain.calls} calls in {plain.seconds:.1f} s")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else "no output"


def run_harness(n_cases: int | None, backends: str) -> Side:
    """`xentcheck run` on the default suite (its first n_cases), in a fresh folder."""
    extra = ["--cases", str(n_cases)] if n_cases else []
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, t0 = _children_cpu(), time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "xentcheck", "run", "--out", tmp, "--no-progress",
                              "--backends", backends, *extra], cwd=ROOT, env=_env(), capture_output=True, text=True,
                             check=False)
        seconds = time.perf_counter() - t0
        results = Path(tmp) / "results.jsonl"
        verdicts = Counter(json.loads(line)["verdict"] for line in results.read_text().splitlines()) \
            if results.exists() else Counter()
    side = Side("harness", seconds, (_children_cpu() - cpu0) / seconds, sum(verdicts.values()) - verdicts["skipped"],
                raised=sum(verdicts[v] for v in ("error", "crashed", "timeout")), detail={"verdicts": dict(verdicts)})
    if side.raised:
        side.first_error = "see the run's report.md"
    if res.returncode not in (0, 1):  # 1: findings, which the run exists to report
        side.crash = f"exit status {res.returncode}: {_last_line(res.stderr)}"
    return side


def run_plain(n_cases: int | None, backends: str, script: Path, processes: int) -> Side:
    """`processes` plain loops side by side, each every processes-th case of the suite."""
    extra = ["--cases", str(n_cases)] if n_cases else []
    cpu0, t0 = _children_cpu(), time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(script), "--shard", f"{i}/{processes}", "--backends", backends,
                               *extra], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(1, processes + 1)]
    outputs = [p.communicate() for p in procs]
    done = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]
    seconds = time.perf_counter() - t0
    side = Side("plain loop", seconds, (_children_cpu() - cpu0) / seconds, 0, detail={"processes": processes})
    totals: Counter = Counter()
    for i, (code, out, err) in enumerate(done, 1):
        try:
            record = json.loads(out.strip().splitlines()[-1])
            calls = int(record["calls"])
        except (IndexError, KeyError, TypeError, ValueError):
            record, calls = None, 0
        if code != 0 or record is None:
            side.crash = side.crash or (f"process {i} of {processes}: exit status {code}: "
                                        f"{_last_line(err if code != 0 or not out.strip() else out)}")
            continue
        side.calls += calls
        side.raised += int(record.get("raised", 0))
        side.first_error = side.first_error or record.get("first_error")
        totals.update({f"{k}_seconds": v for k, v in record.get("seconds", {}).items()})
        totals.update(disagree=int(record.get("disagree", 0)), cases=int(record.get("cases", 0)))
        if record.get("missing"):
            side.detail["missing"] = record["missing"]
    side.detail.update({k: round(v, 3) for k, v in totals.items()})
    return side


def harness_overhead(n_cases: int | None, backends: str = ",".join(BACKENDS), rounds: int = 3,
                     script: Path = ROOT / "benchmarks" / "plain_loop.py", processes: int | None = None) -> str | None:
    """`rounds` runs of each, alternating which goes first (ABBA): on a shared machine either one
    moves by 15% from one minute to the next. The ratio is taken within each round; the figures are
    the medians over the rounds. Returns why there is no ratio (None: there is one), after the
    first round that gives none."""
    processes = processes or os.cpu_count() or 1
    runs: list[tuple[Side, Side]] = []
    for i in range(rounds):
        load = os.getloadavg()[0]
        if i % 2:
            b = run_plain(n_cases, backends, script, processes)
            a = run_harness(n_cases, backends)
        else:
            a = run_harness(n_cases, backends)
            b = run_plain(n_cases, backends, script, processes)
        runs.append((a, b))
        record = {"round": i + 1, "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
                  "harness": asdict(a), "plain_loop": asdict(b)}
        rounds_log.append(record)
        why = refusal(a, b)
        print(f"      round {i + 1}: harness {a.seconds:.1f} s ({a.cores:.2f} cores, {a.calls} calls), plain loop "
              f"{b.seconds:.1f} s ({b.cores:.2f} cores, {b.calls} calls in {processes} processes), "
              + (why or f"ratio {a.seconds / b.seconds:.3f} (CPU seconds {a.seconds * a.cores:.1f} / "
                        f"{b.seconds * b.cores:.1f})") + f"; load average {load:.2f}", flush=True)
        if why:
            rows.append({"figure": "harness wall time / plain loop", "value": None, "target": "<= 1.2", "pass": False,
                         "refused": why, "detail": f"round {i + 1} of {rounds}"})
            print(f"FAIL  harness wall time / plain loop: {why}", file=sys.stderr, flush=True)
            return why
    ratio = statistics.median(a.seconds / b.seconds for a, b in runs)
    cpu_ratio = statistics.median(a.seconds * a.cores / (b.seconds * b.cores) for a, b in runs)
    cores = statistics.median(a.cores for a, _ in runs)
    loop_cores = statistics.median(b.cores for _, b in runs)
    h, p = runs[0]
    report("harness wall time / plain loop", ratio, "<= 1.2", ratio <= 1.2,
           f"median of {rounds} alternating rounds; harness {statistics.median(a.seconds for a, _ in runs):.1f} s "
           f"({h.calls} calls, verdicts {h.detail['verdicts']}), plain loop "
           f"{statistics.median(b.seconds for _, b in runs):.1f} s ({p.calls} calls, {p.detail.get('disagree')} outputs "
           f"outside torch.testing's tolerances, {processes} processes), {n_cases or 'all'} cases; CPU seconds "
           f"{statistics.median(a.seconds * a.cores for a, _ in runs):.1f} / "
           f"{statistics.median(b.seconds * b.cores for _, b in runs):.1f} = {cpu_ratio:.3f} (less moved by other load)")
    report("cores busy while verifying", cores, f">= 1.5 of {processes}", cores >= 1.5,
           f"CPU seconds of the run and its workers / wall, median of {rounds}; the plain loop's {processes} processes "
           f"side by side: {loop_cores:.2f} (what this machine gave us: load average {os.getloadavg()[0]:.2f} at the end)")
    return None


def _child(code: str, extra_env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**_env(), **(extra_env or {})}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


REFERENCE_TIME = """
import json, time
import numpy as np
from xentcheck.core import kernel
from xentcheck.core.cases import Case, make_inputs
from xentcheck.problems.ce.reference import reference
from xentcheck.core.spare import SPARE
from xentcheck.timing.measure import copy_bandwidth, floor_bytes
case = Case("scale1e+0", "float32", 4096, 32000, "index", "mean")
inputs = make_inputs(case, 0)
bw = copy_bandwidth()["bytes_per_second"]
times, touch = [], []
for _ in range(5):  # as timeit repeats: the host's worst moments (compacting memory for huge pages) left out
    t = time.perf_counter(); ref = reference(case, inputs); times.append(time.perf_counter() - t); del ref
    # what a fresh array of the gradient's size costs to touch at all: the pages' faults and zeroing
    t = time.perf_counter(); ones = np.ones((case.n, case.k)); touch.append(time.perf_counter() - t); del ones
# the first call's gradient is fresh pages; the later ones reuse them (harness/core/spare.py), as the
# harness's next case of the same size does
SPARE.release()
fresh = []
for _ in range(3):
    t = time.perf_counter(); ref = reference(case, inputs); fresh.append(time.perf_counter() - t); del ref; SPARE.release()
# the reference reads float32 logits and int64 labels, writes a float64 gradient and row losses
floor = floor_bytes(case.n, case.k, "float32", grad_bytes=8) / bw
print(json.dumps({"seconds": min(times[1:]), "all": times, "fresh": min(fresh), "all_fresh": fresh, "reused": SPARE.reused,
                  "floor": floor, "bandwidth": bw, "kernel": kernel.name(), "first_touch": min(touch)}))
"""

REFERENCE_MEMORY = """
import json, tracemalloc
from xentcheck.core.cases import Case, make_inputs
from xentcheck.problems.ce.reference import reference
case = Case("scale1e+0", "float32", {n}, 128256, "index", "mean")
inputs = make_inputs(case, 0)
tracemalloc.start()
ref = reference(case, inputs)
peak = tracemalloc.get_traced_memory()[1]
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({{"peak": peak, "logits": inputs.logits.nbytes, "labels": inputs.labels.nbytes, "hwm": hwm}}))
"""


def reference_figures(big: bool) -> None:
    r = _child(REFERENCE_TIME)
    r_np = _child(REFERENCE_TIME, {"XENTCHECK_REFERENCE_KERNEL": "numpy"})  # the NumPy implementation: what the kernel saves
    report("reference 4096x32000 float32 / bandwidth floor", r["seconds"] / r["floor"], "<= 3", r["seconds"] / r["floor"] <= 3,
           f"{r['seconds']:.3f} s (best of calls 2-5 of {', '.join(f'{t:.2f}' for t in r['all'])}, into the first's gradient "
           f"pages, {r['reused']} reused; computed by {r['kernel']}) vs floor {r['floor']:.3f} s at "
           f"{r['bandwidth'] / 1e9:.1f} GB/s; into fresh pages: {r['fresh']:.3f} s = {r['fresh'] / r['floor']:.2f}x (best of "
           f"{', '.join(f'{t:.2f}' for t in r['all_fresh'])}); in NumPy: {r_np['seconds']:.3f} s = "
           f"{r_np['seconds'] / r_np['floor']:.2f}x (best of {', '.join(f'{t:.2f}' for t in r_np['all'][1:])}); "
           f"np.ones of the gradient's shape, one thread, for scale: {r['first_touch']:.3f} s")
    n = 8192 if big else 2048
    m = _child(REFERENCE_MEMORY.format(n=n))
    ratio = (m["logits"] + m["labels"] + m["peak"]) / m["logits"]
    report(f"reference peak memory {n}x128256 float32 / logits", ratio, "<= 4", ratio <= 4,
           f"inputs {m['logits'] / 2**30:.2f} GiB + reference {m['peak'] / 2**30:.2f} GiB (tracemalloc); "
           f"process VmHWM {m['hwm'] / 2**30:.2f} GiB (input generation included)")


def cli_figures() -> None:
    times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "xentcheck", "--help"], cwd=ROOT, env=_env(), capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    report("xentcheck --help wall time (s)", min(times), "< 0.5", min(times) < 0.5,
           f"best of 5, median {sorted(times)[2]:.3f} s, fresh interpreter each")
    code = ("import sys, io, contextlib, json; from xentcheck.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['--help']); a = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
            f"    main(['backends']); b = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
            "print(json.dumps({'help': a, 'backends': b}))")
    r = _child(code)
    n = len(r["help"]) + len(r["backends"])
    report("frameworks imported by --help and backends (parent)", n, "0", n == 0,
           f"--help: {r['help'] or 'none'}; backends: {r['backends'] or 'none'} (workers import their own)")


TORCH_TIMER = """
import json, torch, torch.nn.functional as F
from torch.utils.benchmark import Timer
from xentcheck.core.cases import Case, make_inputs
out = {{}}
for n, k in {shapes}:
    case = Case("scale1e+0", "float32", n, k, "index", "mean")
    inputs = make_inputs(case, 0)
    x = torch.from_numpy(inputs.logits.copy()).requires_grad_(True)
    t = torch.from_numpy(inputs.labels.copy())
    g = {{"x": x, "t": t, "F": F}}
    fwd = Timer("F.cross_entropy(x, t)", globals=g, num_threads={threads}).blocked_autorange(min_run_time=2)
    both = Timer("x.grad = None; F.cross_entropy(x, t).backward()", globals=g,
                 num_threads={threads}).blocked_autorange(min_run_time=2)
    out[f"{{n}}x{{k}}"] = {{"forward": fwd.median, "forward_backward": both.median}}
print(json.dumps(out))
"""


TORCH_INTERLEAVED = """
import json, torch, torch.nn.functional as F
from torch.utils.benchmark import Timer
from xentcheck.backends.registry import create
from xentcheck.timing.bench import BenchConfig, bench_case
from xentcheck.core.cases import make_inputs
from xentcheck.problems.ce.layout import to_case
from xentcheck.timing.measure import measure
bench = BenchConfig(backends=["torch"])  # its block settings: what `xentcheck bench` uses by default
backend = create("torch")
backend.load()
torch.set_num_threads({threads})
variant = next(v for v in backend.variants() if v.impl == "cross_entropy_index" and v.mode == "eager")
stmts = {{"forward": "F.cross_entropy(x, t)", "forward_backward": "x.grad = None; F.cross_entropy(x, t).backward()"}}
out = {{}}
for n, k in {shapes}:
    case = bench_case("float32", n, k, "index")
    inputs = to_case(case, make_inputs(case, 0))
    # the timing report's own code: time_case's callables (the adapter's timing_fns) and measure()
    # with bench's block settings, on the inputs time_case builds
    fns = backend.timing_fns(variant, case, inputs.copy(), "cpu")
    g = {{"x": torch.from_numpy(inputs.logits.copy()).requires_grad_(True), "t": torch.from_numpy(inputs.labels.copy()), "F": F}}
    for r in range({rounds}):
        for phase, stmt in stmts.items():
            # ours, Timer, and Timer again as a control (what the host lets a tool agree with
            # itself to), one phase at a time, back to back, in rotating order
            got = {{}}
            for name in (["ours", "timer", "control"] * 2)[r % 3:r % 3 + 3]:
                got[name] = measure(fns[phase], min_block=bench.min_block, blocks=bench.blocks)["median"] if name == "ours" else \
                    Timer(stmt, globals=g, num_threads={threads}).blocked_autorange(min_run_time={min_run_time}).median
            out.setdefault(f"{{n}}x{{k}} {{phase}}", []).append([got["ours"], got["timer"], got["control"]])
print(json.dumps(out))
"""


def torch_agreement_in_process(threads: int = 1, rounds: int = 25, min_run_time: float = 1.4) -> None:
    """The same comparison in one process, the tools taking turns, so that the host's drift reaches
    both alike. Ours is the code behind `xentcheck bench`: the worker's time_case's callables (the
    adapter's timing_fns) and `measure()` with bench's settings (7 blocks of 0.2 s after 0.2 s of
    warm-up). A second Timer reading in each turn is the control: how well Timer agrees with
    itself here, the resolution this host allows the comparison.
    Each turn measures one phase with all three back to back, each for about the same time (Timer's
    min_run_time 1.4 s, as measure's seven blocks): with a whole time_case (three phases, 5 s) on one
    side and 0.5 s Timer readings on the other, the Timer pair sat closer in time than ours and
    Timer, and the control understated the noise between them. The process has the timing workers'
    environment, malloc setting included: left to itself, glibc gave one tool's 1 MB buffers back
    to the OS after every call in some stretches (30 page faults a call) and the other's not, a
    difference of heap history rather than of the tools. Twenty-five turns, about nine minutes: with
    fifteen, four runs gave 11.4%, 8.7%, 1.3% and 5.1% (Timer against itself 3.5% to 6.9%), and the
    spread of a median narrows as the square root of the turns."""
    shapes = [(256, 1000), (1024, 32000)]
    code = TORCH_INTERLEAVED.format(shapes=shapes, threads=threads, rounds=rounds, min_run_time=min_run_time)
    # the environment `xentcheck bench` gives its timing workers: threads and malloc setting
    env = {**_env(), **timing_worker_env(BenchConfig(backends=["torch"], threads=threads))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"      {'shape, phase':<29} {'measure() ms':>13} {'blocked_autorange ms':>21} {'ratio':>6}  {'Timer/Timer':>11}"
          f"   (medians over {rounds} turns of each turn's ratio)")
    worst = control = 0.0
    for key, turns in data.items():  # turns: the median of ours, of Timer, of Timer again
        ratio = statistics.median(a / b for a, b, _ in turns)
        self_ratio = statistics.median(c / b for _, b, c in turns)
        worst, control = max(worst, abs(ratio - 1)), max(control, abs(self_ratio - 1))
        print(f"      {key:<29} {statistics.median(a for a, _, _ in turns) * 1e3:>13.3f} "
              f"{statistics.median(b for _, b, _ in turns) * 1e3:>21.3f} {ratio:>6.3f}  {self_ratio:>11.3f}")
    report("torch timing vs blocked_autorange in one process, worst |ratio - 1|", worst, "<= 0.10", worst <= 0.10,
           f"{threads} thread, medians, median over {rounds} turns of each turn's ratio (Timer: min_run_time "
           f"{min_run_time} s); Timer against itself, same turns: worst |ratio - 1| {control:.3f}")


def torch_agreement(threads: int = 1, rounds: int = 3) -> None:
    """Both tools, `rounds` times, alternating which goes first (ABBA): on a shared machine a
    sub-millisecond figure moves by 10-30% within seconds, so one reading each, taken apart, compares
    the moments more than the tools. The ratio is taken within each round; its median is the figure."""
    shapes = [(256, 1000), (1024, 32000)]
    env = {**_env(), **timing_worker_env(BenchConfig(backends=["torch"], threads=threads))}  # as bench's workers have it

    def ours() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "xentcheck", "bench", "--backends", "torch", "--impls", "cross_entropy_index",
                            "--modes", "eager", "--shapes", ",".join(f"{n}x{k}" for n, k in shapes), "--threads",
                            str(threads), "--out", tmp, "--no-progress"], cwd=ROOT, env=_env(), capture_output=True, check=True)
            data = json.loads((Path(tmp) / "timing.json").read_text())
        return {(f"{r['n']}x{r['k']}", phase): r["phases"][phase]["median"] for r in data["rows"]
                for phase in ("forward", "forward_backward")}

    def theirs() -> dict:
        out = subprocess.run([sys.executable, "-c", TORCH_TIMER.format(shapes=shapes, threads=threads)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        timer = json.loads(out.stdout.strip().splitlines()[-1])
        return {(shape, phase): t for shape, phases in timer.items() for phase, t in phases.items()}

    readings = []  # (ours, theirs) per round
    for i in range(rounds):
        if i % 2:
            b = theirs()
            a = ours()
        else:
            a = ours()
            b = theirs()
        readings.append((a, b))
    print(f"      {'shape':<12} {'phase':<17} {'xentcheck bench ms':>19} {'blocked_autorange ms':>21} {'ratio':>6}   (median of "
          f"{rounds} rounds; each round's ratio; Timer against itself over the rounds, max/min)")
    worst = 0.0
    for key in readings[0][0]:
        ratios = [a[key] / b[key] for a, b in readings]
        ratio = statistics.median(ratios)
        worst = max(worst, abs(ratio - 1))
        timer_times = [b[key] for _, b in readings]
        print(f"      {key[0]:<12} {key[1]:<17} {statistics.median(a[key] for a, _ in readings) * 1e3:>19.3f} "
              f"{statistics.median(timer_times) * 1e3:>21.3f} {ratio:>6.3f}   " + " ".join(f"{r:.3f}" for r in ratios)
              + f"   {max(timer_times) / min(timer_times):.2f}")
    # no target here: separate processes a minute apart compare the host's moments as much as the
    # tools (Timer's own spread, printed, is as wide); the figure is torch_agreement_in_process's
    print(f"      end to end, `xentcheck bench` vs Timer in separate processes: worst |ratio - 1| {worst:.3f} "
          f"(median of {rounds} interleaved rounds, {threads} thread; no target: see the next figure)", flush=True)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, help="only the first N cases of the default suite (quicker, for development)")
    ap.add_argument("--big", action="store_true", help="peak memory on 8192 x 128,256 (needs about 17 GB of RAM)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--only", help="comma-separated subset of: cli, reference, torch, torch-interleaved, harness (default: all)")
    ap.add_argument("--backends", default=",".join(BACKENDS), help="harness: the backends both sides run (default: the run's)")
    ap.add_argument("--rounds", type=int, default=3, help="harness: rounds of each side (default 3)")
    ap.add_argument("--plain-loop", type=Path, default=ROOT / "benchmarks" / "plain_loop.py",
                    help="harness: the baseline (takes --cases, --shard I/P, --backends; prints plain_loop.py's JSON line)")
    args = ap.parse_args(argv)
    refused: list[str] = []

    def harness() -> None:
        why = harness_overhead(args.cases, args.backends, args.rounds, args.plain_loop)
        if why:
            refused.append(why)

    parts = {"cli": cli_figures, "reference": lambda: reference_figures(args.big), "torch": torch_agreement,
             "torch-interleaved": torch_agreement_in_process, "harness": harness}
    chosen = args.only.split(",") if args.only else list(parts)
    if unknown := set(chosen) - set(parts):
        ap.error(f"unknown --only part(s): {', '.join(sorted(unknown))}; choose from {', '.join(parts)}")
    env = fingerprint()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before, uptime_before = os.getloadavg()[0], _uptime()
    print(f"{env['cpu']}, {env['cpu_count']} cores, load average {load_before:.2f}; {started}", flush=True)
    for name in chosen:
        parts[name]()
    if args.json:
        # The load average is the host's, other users included: a figure measured with the load
        # above the core count was measured under load, and the record says so.
        record = {"date": started, "parts": chosen, "big": args.big, "cases": args.cases, "backends": args.backends,
                  "load_average": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
                  "uptime": {"start": uptime_before, "end": _uptime()},
                  "machine": env, "figures": rows, "harness_rounds": rounds_log}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"{sum(r['pass'] for r in rows)} of {len(rows)} figures within target")
    for why in refused:  # a figure that could not be measured is no MISS: the run failed
        print(f"bench_harness: {why}", file=sys.stderr)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
