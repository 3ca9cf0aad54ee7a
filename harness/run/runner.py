"""Runs cases through every backend, each backend in a worker process of its own.

Workers run side by side (both cores busy) and regenerate inputs from (seed, case id); the
parent computes each case's reference once, compares, and appends results to results.jsonl in
a fixed order (case, then backend) as soon as that prefix is complete, so the file is
deterministic and grows while the run goes on. A worker that dies is recorded as `crashed` for
its case and replaced; a case that outlives --case-timeout is `timeout`.

A resumed run hands the runner the results it already has: once a backend's worker says who it
is, the results recorded under that backend's name are taken as done instead of run again, and
they take their place in the canonical order (`Runner.records`).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.metrics import compare
from xentcheck.run.environment import worker_env
from xentcheck.run import launch
from xentcheck.run.interpreters import LABEL_ENV, resolve as resolve_interpreter
from xentcheck.core.reference import Reference, reference, semantics_matter
from xentcheck.core.spare import SPARE
from xentcheck.core.tolerances import Tolerances



def package_folders() -> dict[str, str]:
    """Where this process imported xentcheck's three packages from (for run/launch.py)."""
    import xentcheck
    import xentcheck.backends
    import xentcheck.reports

    return {m.__name__: str(Path(m.__file__).resolve().parent) for m in (xentcheck, xentcheck.backends, xentcheck.reports)}


@dataclass
class RunConfig:
    backends: list[str]
    cases: list[Case]
    seed: int = 0
    device: str = "cpu"
    tolerances: Tolerances = field(default_factory=Tolerances)
    case_timeout: float = 300.0
    startup_timeout: float = 300.0
    log_dir: Path | None = None
    progress: bool = True
    suite: str = "default"  # "default": each backend's default variants; "full": all but opt-in ones
    impls: list[str] | None = None
    modes: list[str] | None = None
    properties: bool = False
    interpreters: dict[str, str] = field(default_factory=dict)  # --python LABEL -> executable
    helpers: bool = True  # a finished backend's worker slot goes to the backend with the most cases left


def select_variants(variants: list[dict], suite: str, impls: list[str] | None, modes: list[str] | None) -> list[dict]:
    """The implementations x modes to run: named ones, else the suite's (opt-in modes only when named)."""
    chosen = []
    for v in variants:
        if v.get("opt_in") and not (modes and v["mode"] in modes):
            continue
        if (impls and v["impl"] not in impls) or (modes and v["mode"] not in modes):
            continue
        if not impls and not modes and suite == "default" and not v.get("default", True):
            continue
        chosen.append(v)
    return chosen


class Worker:
    """One backend's worker process and the thread that reads its replies."""

    def __init__(self, index: int, spec: str, events: queue.Queue, log_dir: Path | None,
                 interpreters: dict[str, str] | None = None, env: dict | None = None):
        self.index, self.spec, self.events, self.log_dir = index, spec, events, log_dir
        self.interpreters = interpreters or {}
        self.env = env or {}  # overrides of the worker's environment (bench: its thread count)
        self.generation = 0
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.log_offset = 0  # where this generation's stderr starts in the (shared, appended) log

    def start(self) -> None:
        self.generation += 1
        env = {**worker_env(), **self.env}
        env[launch.ENV] = json.dumps(package_folders())
        if self.log_dir is not None:
            self.log_path = self.log_dir / f"worker-{self.index}.log"
            log = open(self.log_path, "ab")
            self.log_offset = log.seek(0, os.SEEK_END)
        else:
            log = subprocess.DEVNULL
        python, spec, label = resolve_interpreter(self.spec, self.interpreters)
        if label:
            env[LABEL_ENV] = label
        self.proc = subprocess.Popen([python, launch.__file__, spec],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     env=env, start_new_session=True)
        if log is not subprocess.DEVNULL:
            log.close()
        gen, proc = self.generation, self.proc
        threading.Thread(target=self._read, args=(proc, gen), daemon=True).start()

    def _read(self, proc: subprocess.Popen, gen: int) -> None:
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            self.events.put((self.index, gen, msg))
        self.events.put((self.index, gen, None))

    def send(self, msg: dict) -> bool:
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def stderr_tail(self, lines: int = 3) -> str:
        """The last lines the current worker wrote to stderr (not those of earlier workers)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            text = f.read().decode(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def exit_status(self) -> dict:
        """How the worker ended: {"signal": "SIGSEGV"} or {"code": 3}."""
        if self.proc is None:
            return {}
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its stdout but lives on
            self.kill()
            rc = self.proc.returncode
        if rc < 0:
            try:
                return {"signal": signal.Signals(-rc).name}
            except ValueError:
                return {"signal": str(-rc)}
        return {"code": rc}

    def exit_description(self) -> str:
        how = self.exit_status()
        if "signal" in how:
            return f"killed by signal {how['signal']}"
        return f"exited with status {how.get('code')}"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            self.proc.wait()

    def quit(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.send({"op": "quit"})
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def quit_all(workers: list[Worker]) -> None:
    """Ask every worker to quit, then wait for them: their teardowns overlap."""
    for w in workers:
        if w.proc and w.proc.poll() is None:
            w.send({"op": "quit"})
    for w in workers:
        w.quit()


AHEAD = 1  # cases sent to a worker beyond the one it computes
HELPER_MIN_CASES = 8  # a backend with fewer cases left gets no helper: its startup would not pay off


@dataclass
class _State:
    """Where one worker stands: its hello, its queue of cases, the case in flight. A backend has
    one worker, and a helper while it runs alone with many cases left (see Runner._lend_slot)."""
    worker: Worker
    info: dict | None = None
    pending: list[int] = field(default_factory=list)
    in_flight: int | None = None  # the case the worker is computing
    queued: list[int] = field(default_factory=list)  # sent after it, waiting in the worker's stdin
    deadline: float = 0.0
    started_at: float = 0.0
    quitting: bool = False  # nothing left for it: told to quit, its EOF is expected
    backend: int = 0  # index of its backend in config.backends
    helper: bool = False  # a second worker of the backend, started on a finished backend's slot


def describe_backends(specs: list[str], timeout: float = 300.0) -> list[dict]:
    """Each backend's hello (name, version, dtypes, devices, or why missing/broken), in parallel."""
    events: queue.Queue = queue.Queue()
    with tempfile.TemporaryDirectory() as logs:
        workers = [Worker(i, s, events, Path(logs)) for i, s in enumerate(specs)]
        for w in workers:
            w.start()
        infos: list[dict | None] = [None] * len(specs)
        deadline = time.monotonic() + timeout
        while any(i is None for i in infos) and time.monotonic() < deadline:
            try:
                idx, _, msg = events.get(timeout=0.5)
            except queue.Empty:
                continue
            if infos[idx] is None:
                w = workers[idx]
                infos[idx] = msg if msg else {"status": "broken", "reason": f"worker {w.exit_description()}: {w.stderr_tail()}"}
        for i, w in enumerate(workers):
            w.quit()
            if infos[i] is None:
                infos[i] = {"status": "broken", "reason": f"no answer within {timeout:g} s"}
            infos[i].setdefault("name", specs[i])
            infos[i]["spec"] = specs[i]
    return infos


def _scratch_dir() -> Path:
    """A fresh folder for the workers' outputs, in memory where possible. Its name carries our
    pid, so the folders of runs that were killed (SIGKILL skips all cleanup) are found and removed."""
    parent = Path("/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir())
    for old in parent.glob("xentcheck-run-*-*"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"xentcheck-run-{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class Runner:
    """Drives the workers; `results` are handed to `emit` in canonical order."""

    def __init__(self, config: RunConfig, emit: Callable[[dict], None], prior: Sequence[dict] = ()):
        self.config = config
        self.emit = emit
        # results of an earlier, interrupted run of the same plan: (case id, backend name) -> record
        # prior results per (case, backend) slot, one per (impl, mode); a repeated one keeps the last
        self.prior: dict[tuple[str, str], list[dict]] = {}
        for r in prior:
            slot = self.prior.setdefault((r["case_id"], r["backend"]), [])
            slot[:] = [x for x in slot if (x.get("impl"), x.get("mode")) != (r.get("impl"), r.get("mode"))] + [r]
        self.replayed: set[tuple[int, int]] = set()
        self.records: list[dict] = []  # every result, prior ones included, in canonical order
        self.events: queue.Queue = queue.Queue()
        self.n_backends = len(config.backends)
        self.done: dict[tuple[int, int], dict] = {}
        self.cursor = 0
        self.refs: dict[int, dict[str, Reference]] = {}
        self.ref_uses: dict[int, int] = {}
        self.scratch = _scratch_dir()
        self.infos: list[dict | None] = [None] * self.n_backends
        self.selected: dict[int, list[dict]] = {}
        self.interrupted = False
        self.states: list[_State] = []  # every worker's, by the index its events carry

    # --- results -------------------------------------------------------------------------

    def _base(self, ci: int, bi: int, variant: dict | None = None) -> dict:
        case = self.config.cases[ci]
        info = self.infos[bi] or {}
        v = variant or {}
        return {**case.as_dict(), "seed": self.config.seed, "backend": info.get("name", self.config.backends[bi]),
                "impl": v.get("impl", info.get("impl", "")), "mode": v.get("mode", info.get("mode", "")),
                "api": v.get("api", ""), "device": self.config.device, "backend_version": info.get("version", "")}

    def _slot_variants(self, ci: int, bi: int) -> list[dict]:
        """The selected variants that take this case's label form (one record each)."""
        labels = self.config.cases[ci].labels
        chosen = [v for v in self.selected.get(bi, []) if labels in v.get("label_forms", [labels])]
        return chosen or [{}]

    def _record(self, ci: int, bi: int, fields: dict) -> None:
        """The same outcome (crash, timeout, broken backend) for every variant of the slot."""
        self._record_slot(ci, bi, [(v, dict(fields)) for v in self._slot_variants(ci, bi)])

    def _record_slot(self, ci: int, bi: int, entries: list[tuple[dict, dict]]) -> None:
        recs = []
        for variant, fields in entries:
            rec = {**self._base(ci, bi, variant), **fields}
            rec.setdefault("reasons", [])
            if variant.get("documented"):
                rec["documented"] = variant["documented"]
            recs.append(rec)
        self._done(ci, bi, recs)

    def _done(self, ci: int, bi: int, recs: list[dict]) -> None:
        self.done[(ci, bi)] = recs
        self.ref_uses[ci] = self.ref_uses.get(ci, 0) + 1
        if self.ref_uses[ci] == self.n_backends:
            self.refs.pop(ci, None)
        total = len(self.config.cases) * self.n_backends
        while self.cursor < total:
            key = divmod(self.cursor, self.n_backends)
            if key not in self.done:
                break
            self._emit(key)
            self.cursor += 1

    def _emit(self, key: tuple[int, int]) -> None:
        recs = self.done.pop(key)
        self.records.extend(recs)
        if key not in self.replayed:  # prior results are in results.jsonl already
            for rec in recs:
                self.emit(rec)

    def _identify(self, st: "_State", bi: int, info: dict) -> None:
        """The backend's identity is known (first hello, or it failed before one): take its prior
        results as done. Every outcome of a backend is recorded under this name."""
        if self.infos[bi] is not None:
            return
        spec = self.config.backends[bi]
        self.infos[bi] = {"name": spec, **info, "spec": spec}  # a plugin broken before naming itself: its spec
        name = self.infos[bi]["name"]
        for ci in list(st.pending):
            recs = self.prior.pop((self.config.cases[ci].id, name), None)
            if recs is not None and self._complete(ci, bi, recs):
                st.pending.remove(ci)
                self.replayed.add((ci, bi))
                self._done(ci, bi, recs)

    def _complete(self, ci: int, bi: int, recs: list[dict]) -> bool:
        """A slot cut short by a kill (some variants written, not all) is run again."""
        expected = {(v["impl"], v["mode"]) for v in self._slot_variants(ci, bi) if v}
        return expected <= {(r.get("impl"), r.get("mode")) for r in recs}

    def _reference(self, ci: int, semantics: str = "plain") -> Reference:
        """The case's reference, computed once per case (and per API semantics where they differ)."""
        case = self.config.cases[ci]
        key = semantics if semantics_matter(case) else "plain"
        cached = self.refs.setdefault(ci, {})
        if key not in cached:
            cached[key] = reference(case, make_inputs(case, self.config.seed), key)
        return cached[key]

    def _on_result(self, ci: int, bi: int, msg: dict, seconds: float) -> None:
        entries = [(entry, self._result_fields(ci, bi, j, entry, seconds)) for j, entry in enumerate(msg.get("results", []))]
        self._record_slot(ci, bi, entries)

    def _result_fields(self, ci: int, bi: int, j: int, entry: dict, seconds: float) -> dict:
        case = self.config.cases[ci]
        timing = {"wall_seconds": round(seconds, 6)}
        status = entry.get("status")
        if status == "skipped":
            return {"verdict": "skipped", "reasons": [entry.get("reason", "")]}
        if "oor" in case.option_set and status in ("ok", "error"):
            return self._out_of_range(ci, bi, j, entry, timing)
        if status != "ok":
            return {"verdict": "error", "reasons": [entry.get("error", "unknown error")],
                    "traceback": entry.get("traceback", ""), "timing": timing}
        loss, grad = self._take_output(bi, ci, j)
        tol = self.config.tolerances
        # extreme cases (logits near the dtype's max, +inf, NaN) overflow in intermediate casts by
        # design; their NaN/inf are compared explicitly, so numpy's warnings would only be noise
        with np.errstate(all="ignore"):
            ref = self._reference(ci, entry.get("semantics", "plain"))
            fields = compare(case, ref, loss, grad, entry.get("loss_dtype"), entry.get("grad_dtype"), tol)
        fields["tolerance"] = {"preset": tol.preset, **{w: dict(zip(("rtol", "atol"), tol.get(case.dtype, w)))
                                                       for w in ("loss", "grad")}}
        fields["reference_precision"] = ref.precision
        fields["inputs_modified"] = entry.get("inputs_modified", [])
        if entry.get("notes"):
            fields["notes"] = entry["notes"]
        if "properties" in entry:
            fields["properties"] = entry["properties"]
        timing["compute_seconds"] = round(entry.get("seconds", 0.0), 6)
        fields["timing"] = timing
        return fields

    def _take_output(self, bi: int, ci: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Variant j's loss and gradient as the worker wrote them; the file is removed once read."""
        path = self._out_path(bi, ci, j)
        try:
            with np.load(path) as data:
                return data["loss"], data["grad"]
        finally:
            path.unlink(missing_ok=True)

    def _out_of_range(self, ci: int, bi: int, j: int, entry: dict, timing: dict) -> dict:
        """An out-of-range class index must be refused; a value returned in silence is a finding."""
        if entry["status"] == "error":
            return {"verdict": "pass", "reasons": [f"raised on the out-of-range class index: {entry.get('error', '')[:200]}"],
                    "timing": timing}
        loss, _ = self._take_output(bi, ci, j)
        shown = np.array2string(np.asarray(loss, dtype=np.float64).ravel()[:4], precision=6)
        return {"verdict": "fail", "timing": timing,
                "reasons": [f"silently returned loss {shown} for an out-of-range class index "
                            f"(label {self.config.cases[ci].k} with K = {self.config.cases[ci].k})"]}

    def _fail_all(self, st: _State, bi: int, verdict: str, reason: str) -> None:
        for ci in st.pending:
            self._record(ci, bi, {"verdict": verdict, "reasons": [reason]})
        st.pending = []

    # --- dispatch ------------------------------------------------------------------------

    def _out_path(self, bi: int, ci: int, j: int | None = None) -> Path:
        """Where the worker writes variant j's arrays (it appends -j.npz to the prefix)."""
        prefix = self.scratch / f"{bi}-{ci}"
        return prefix if j is None else Path(f"{prefix}-{j}.npz")

    def _dispatch(self, st: _State, bi: int) -> None:
        """Keep the worker fed: the case it computes plus AHEAD more in its stdin, so it starts the
        next case the moment it answers, not once the parent has compared the answer (the parent's
        comparisons, the references and other backends' results would otherwise stall it)."""
        while st.pending and (st.in_flight is None or len(st.queued) < AHEAD):
            ci = st.pending.pop(0)
            ok = self._send_case(st, bi, ci)
            if st.in_flight is None:
                st.in_flight, st.started_at = ci, time.monotonic()
                st.deadline = st.started_at + self.config.case_timeout
            else:
                st.queued.append(ci)
            if not ok:
                st.deadline = 0.0  # the EOF event will follow and record the crash
                break

    def _send_case(self, st: _State, bi: int, ci: int) -> bool:
        case = self.config.cases[ci]
        rtol, atol = self.config.tolerances.get(case.dtype, "grad")
        return st.worker.send({"op": "run", "case_id": case.id, "seed": self.config.seed,
                               "device": self.config.device, "out": str(self._out_path(bi, ci)),
                               "variants": [[v["impl"], v["mode"]] for v in self.selected.get(bi, [])],
                               "properties": self.config.properties,
                               "tolerance": {"rtol": rtol, "atol": atol, "scaled": self.config.tolerances.scaled}})

    def _next_in_flight(self, st: _State) -> int | None:
        """The worker answered its case: the first queued one is the one it computes now. Returns
        the answered case."""
        ci, st.in_flight = st.in_flight, None
        if st.queued:
            st.in_flight, st.started_at = st.queued.pop(0), time.monotonic()
            st.deadline = st.started_at + self.config.case_timeout
        return ci

    def _quit_if_done(self, st: _State) -> None:
        """A worker with nothing left to do takes half of a sibling's cases (its backend's other
        worker), else exits now, while the others run: its teardown (seconds for TensorFlow or JAX)
        and memory are not left to the end of the run, and its slot goes to a busy backend."""
        if not st.pending and st.in_flight is None and not st.quitting and st.info is not None:
            donor = max(self._siblings(st), key=lambda s: len(s.pending), default=None)
            if donor is not None and len(donor.pending) >= 2:
                half = len(donor.pending) // 2
                st.pending, donor.pending = donor.pending[half:], donor.pending[:half]
                self._dispatch(st, st.backend)
                return
            st.quitting = True
            st.worker.send({"op": "quit"})
            self._lend_slot()

    def _siblings(self, st: _State) -> list[_State]:
        """The other live workers of st's backend."""
        return [s for s in self.states if s is not st and s.backend == st.backend and not s.quitting]

    def _lend_slot(self) -> None:
        """A worker quit: while fewer workers run than there are backends, the backend with the most
        cases left (at least HELPER_MIN_CASES, one helper at most, its own worker started and
        identified) gets a helper, which takes the last half of its worker's cases. The run's
        cores would otherwise idle while one slow backend (JAX compiling op by op) finishes alone.
        Results do not depend on which worker computed them, and are written in the canonical order."""
        if not self.config.helpers:
            return
        # workers with something to do (a broken or missing backend's worker has not)
        live = [s for s in self.states if not s.quitting and
                (s.info is None or s.pending or s.queued or s.in_flight is not None)]
        if len(live) >= self.n_backends:
            return
        candidates = [s for s in live if not s.helper and s.info is not None and s.info.get("status") == "ok"
                      and not any(h.helper and h.backend == s.backend for h in live)
                      and len(s.pending) >= HELPER_MIN_CASES]
        if not candidates:
            return
        donor = max(candidates, key=lambda s: len(s.pending))
        half = len(donor.pending) // 2
        take, donor.pending = donor.pending[half:], donor.pending[:half]
        spec = self.config.backends[donor.backend]
        helper = _State(Worker(len(self.states), spec, self.events, self.config.log_dir, self.config.interpreters),
                        pending=take, backend=donor.backend, helper=True)
        self.states.append(helper)
        helper.worker.start()
        helper.deadline = time.monotonic() + self.config.startup_timeout

    def _retire_helper(self, st: _State) -> None:
        """A helper that did not start, or is not the same backend: its cases go back to its
        backend's worker (started again if it had already quit)."""
        st.worker.kill()
        st.worker.generation += 1  # its EOF is stale now
        back = st.queued + ([] if st.in_flight is None else [st.in_flight]) + st.pending
        st.pending, st.queued, st.in_flight, st.quitting, st.deadline = [], [], None, True, 0.0
        main = self.states[st.backend]
        main.pending = sorted(main.pending + back)
        if main.quitting and main.pending:
            main.quitting = False
            main.worker.generation += 1  # the quitting worker's EOF is stale
            self._restart(main, main.backend)

    def _on_hello(self, st: _State, bi: int, msg: dict) -> None:
        if st.helper:
            known = self.infos[bi] or {}
            if msg.get("status") != "ok" or msg.get("name") != known.get("name") or \
                    msg.get("version") != known.get("version"):
                self._retire_helper(st)
                return
            st.info = msg
            self._dispatch(st, bi)
            return
        if self.infos[bi] is None:
            cfg = self.config
            self.selected[bi] = select_variants(msg.get("variants", []), cfg.suite, cfg.impls, cfg.modes)
        self._identify(st, bi, msg)
        if msg.get("status") == "ok" and not self.selected.get(bi):
            for ci in st.pending:  # nothing of this backend was asked for: no records
                self._record_slot(ci, bi, [])
            st.pending = []
        status = msg.get("status")
        if status == "missing":
            self._fail_all(st, bi, "skipped", msg.get("reason", "framework not installed"))
        elif status != "ok":
            self._fail_all(st, bi, "error", f"backend broken: {msg.get('reason', '')}")
        st.info = msg
        self._dispatch(st, bi)

    def _restart(self, st: _State, bi: int) -> None:
        st.info = None
        st.in_flight = None
        st.pending[:0], st.queued = st.queued, []  # sent to the dead worker, never started: run again
        if st.pending:
            st.worker.start()
            st.deadline = time.monotonic() + self.config.startup_timeout

    def _on_exit(self, st: _State, bi: int) -> None:
        if st.quitting:  # told to quit with nothing left: its exit is no crash
            return
        how = st.worker.exit_description()
        if st.info is None and st.helper:  # a helper that never started: its cases go back
            self._retire_helper(st)
            return
        if st.info is None:  # died before saying hello
            reason = f"backend worker {how} while starting: {st.worker.stderr_tail()}"
            self._identify(st, bi, {"status": "broken", "name": self.config.backends[bi], "reason": reason})
            self._fail_all(st, bi, "error", reason)
            return
        if st.in_flight is not None:
            tail = st.worker.stderr_tail(2)
            self._record(st.in_flight, bi, {"verdict": "crashed", "reasons": [f"worker {how}" + (f": {tail}" if tail else "")],
                                            "exit": st.worker.exit_status()})
        self._restart(st, bi)

    def run(self) -> bool:
        """Run every case on every backend. Returns False when interrupted (Ctrl-C)."""
        from tqdm import tqdm

        cfg = self.config
        states = self.states  # one per backend, in order; helpers are appended
        for bi, spec in enumerate(cfg.backends):
            st = _State(Worker(bi, spec, self.events, cfg.log_dir, cfg.interpreters), pending=list(range(len(cfg.cases))),
                        backend=bi)
            st.worker.start()
            st.deadline = time.monotonic() + cfg.startup_timeout
            states.append(st)
        total = len(cfg.cases) * self.n_backends
        bar = tqdm(total=total, unit="result", disable=None if cfg.progress else True, file=sys.stderr)
        last = 0
        # Ctrl-C only sets a flag: the loop stops between events, never halfway through writing a result
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while self.cursor < total and not self.interrupted:
                try:
                    si, gen, msg = self.events.get(timeout=0.2)
                except queue.Empty:
                    si = None
                if si is not None:
                    st = states[si]
                    bi = st.backend
                    if gen != st.worker.generation:
                        continue  # from a worker already replaced
                    if msg is None:
                        self._on_exit(st, bi)
                    elif msg.get("op") == "hello":
                        self._on_hello(st, bi, msg)
                    elif msg.get("op") == "result" and st.in_flight is not None:
                        seconds = time.monotonic() - st.started_at
                        ci = self._next_in_flight(st)
                        self._dispatch(st, bi)  # before comparing: the worker is busy meanwhile
                        self._on_result(ci, bi, msg, seconds)
                        self._quit_if_done(st)
                now = time.monotonic()
                for st in list(states):
                    bi = st.backend
                    if st.deadline and now > st.deadline and (st.in_flight is not None or st.info is None) \
                            and st.worker.proc.poll() is None:
                        self._on_timeout(st, bi)
                if self.cursor != last:
                    bar.update(self.cursor - last)
                    last = self.cursor
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            bar.close()
            if self.interrupted:
                for st in states:
                    st.worker.kill()
            else:
                quit_all([st.worker for st in states])
            if self.interrupted:  # keep what finished, even out of order
                for key in sorted(self.done):
                    self._emit(key)
            # prior results no backend claimed (names changed?) are kept, never dropped
            self.records.extend(r for recs in self.prior.values() for r in recs)
            self.prior = {}
            shutil.rmtree(self.scratch, ignore_errors=True)
            SPARE.release()  # the references' spare gradient: no case of this run needs it now
        return not self.interrupted

    def _on_sigint(self, signum, frame) -> None:
        self.interrupted = True

    def _on_timeout(self, st: _State, bi: int) -> None:
        st.worker.kill()
        st.worker.generation += 1  # the killed worker's EOF is stale now
        if st.info is None and st.helper:
            self._retire_helper(st)
            return
        if st.info is None:
            reason = f"backend did not start within {self.config.startup_timeout:g} s"
            self._identify(st, bi, {"status": "broken", "name": self.config.backends[bi], "reason": reason})
            self._fail_all(st, bi, "error", reason)
            return
        ci, st.in_flight = st.in_flight, None
        self._record(ci, bi, {"verdict": "timeout",
                              "reasons": [f"no answer within {self.config.case_timeout:g} s; worker killed"]})
        self._restart(st, bi)
