"""Runs cases through every backend, each backend in a worker process of its own.

Workers run side by side (both cores busy) and regenerate inputs from (seed, case id); the
parent computes each case's reference once, compares, and appends results to results.jsonl in
a fixed order (case, then backend) as soon as that prefix is complete, so the file is
deterministic and grows while the run goes on. A worker that dies is recorded as `crashed` for
its case and replaced; a case that outlives --case-timeout is `timeout`.
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.cases import Case, make_inputs
from harness.compare import compare
from harness.environment import worker_env
from harness.interpreters import LABEL_ENV, resolve as resolve_interpreter
from harness.reference import Reference, reference
from harness.tolerances import Tolerances

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    interpreters: dict[str, str] = field(default_factory=dict)  # --python LABEL -> executable


class Worker:
    """One backend's worker process and the thread that reads its replies."""

    def __init__(self, index: int, spec: str, events: queue.Queue, log_dir: Path | None,
                 interpreters: dict[str, str] | None = None):
        self.index, self.spec, self.events, self.log_dir = index, spec, events, log_dir
        self.interpreters = interpreters or {}
        self.generation = 0
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def start(self) -> None:
        self.generation += 1
        env = worker_env()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        if self.log_dir is not None:
            self.log_path = self.log_dir / f"worker-{self.index}.log"
            log = open(self.log_path, "ab")
        else:
            log = subprocess.DEVNULL
        python, spec, label = resolve_interpreter(self.spec, self.interpreters)
        if label:
            env[LABEL_ENV] = label
        self.proc = subprocess.Popen([python, "-m", "harness.worker", spec],
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
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def exit_description(self) -> str:
        rc = self.proc.wait(timeout=10) if self.proc else None
        if rc is not None and rc < 0:
            try:
                return f"killed by signal {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exited with status {rc}"

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


@dataclass
class _State:
    """Where one backend stands: its hello, its queue of cases, the case in flight."""
    worker: Worker
    info: dict | None = None
    pending: list[int] = field(default_factory=list)
    in_flight: int | None = None
    deadline: float = 0.0
    started_at: float = 0.0


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


class Runner:
    """Drives the workers; `results` are handed to `emit` in canonical order."""

    def __init__(self, config: RunConfig, emit):
        self.config = config
        self.emit = emit
        self.events: queue.Queue = queue.Queue()
        self.n_backends = len(config.backends)
        self.done: dict[tuple[int, int], dict] = {}
        self.cursor = 0
        self.refs: dict[int, Reference] = {}
        self.ref_uses: dict[int, int] = {}
        self.scratch = Path(tempfile.mkdtemp(prefix="xentcheck-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
        self.infos: list[dict | None] = [None] * self.n_backends
        self.interrupted = False

    # --- results -------------------------------------------------------------------------

    def _base(self, ci: int, bi: int) -> dict:
        case = self.config.cases[ci]
        info = self.infos[bi] or {}
        return {**case.as_dict(), "seed": self.config.seed, "backend": info.get("name", self.config.backends[bi]),
                "impl": info.get("impl", ""), "mode": info.get("mode", ""), "device": self.config.device,
                "backend_version": info.get("version", "")}

    def _record(self, ci: int, bi: int, fields: dict) -> None:
        rec = {**self._base(ci, bi), **fields}
        rec.setdefault("reasons", [])
        self.done[(ci, bi)] = rec
        self.ref_uses[ci] = self.ref_uses.get(ci, 0) + 1
        if self.ref_uses[ci] == self.n_backends:
            self.refs.pop(ci, None)
        total = len(self.config.cases) * self.n_backends
        while self.cursor < total:
            key = divmod(self.cursor, self.n_backends)
            if key not in self.done:
                break
            self.emit(self.done.pop(key))
            self.cursor += 1

    def _reference(self, ci: int) -> Reference:
        if ci not in self.refs:
            case = self.config.cases[ci]
            self.refs[ci] = reference(case, make_inputs(case, self.config.seed))
        return self.refs[ci]

    def _on_result(self, ci: int, bi: int, msg: dict, seconds: float) -> None:
        case = self.config.cases[ci]
        timing = {"wall_seconds": round(seconds, 6)}
        status = msg.get("status")
        if status == "skipped":
            return self._record(ci, bi, {"verdict": "skipped", "reasons": [msg.get("reason", "")]})
        if status != "ok":
            return self._record(ci, bi, {"verdict": "error", "reasons": [msg.get("error", "unknown error")],
                                         "traceback": msg.get("traceback", ""), "timing": timing})
        path = self._out_path(bi, ci)
        try:
            with np.load(path) as data:
                loss, grad = data["loss"], data["grad"]
        finally:
            path.unlink(missing_ok=True)
        tol = self.config.tolerances
        fields = compare(case, self._reference(ci), loss, grad, msg.get("loss_dtype"), msg.get("grad_dtype"), tol)
        fields["tolerance"] = {"preset": tol.preset, **{w: dict(zip(("rtol", "atol"), tol.get(case.dtype, w)))
                                                       for w in ("loss", "grad")}}
        fields["reference_precision"] = self._reference(ci).precision
        fields["inputs_modified"] = msg.get("inputs_modified", [])
        if msg.get("notes"):
            fields["notes"] = msg["notes"]
        timing["compute_seconds"] = round(msg.get("seconds", 0.0), 6)
        fields["timing"] = timing
        self._record(ci, bi, fields)

    def _fail_all(self, st: _State, bi: int, verdict: str, reason: str) -> None:
        for ci in st.pending:
            self._record(ci, bi, {"verdict": verdict, "reasons": [reason]})
        st.pending = []

    # --- dispatch ------------------------------------------------------------------------

    def _out_path(self, bi: int, ci: int) -> Path:
        return self.scratch / f"{bi}-{ci}.npz"

    def _dispatch(self, st: _State, bi: int) -> None:
        if st.in_flight is not None or not st.pending:
            return
        ci = st.pending.pop(0)
        path = self._out_path(bi, ci)
        ok = st.worker.send({"op": "run", "case_id": self.config.cases[ci].id, "seed": self.config.seed,
                             "device": self.config.device, "out": str(path)})
        st.in_flight, st.started_at = ci, time.monotonic()
        st.deadline = st.started_at + self.config.case_timeout
        if not ok:
            st.deadline = 0.0  # the EOF event will follow and record the crash

    def _on_hello(self, st: _State, bi: int, msg: dict) -> None:
        first = self.infos[bi] is None
        if first:
            self.infos[bi] = msg
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
        if st.pending:
            st.worker.start()
            st.deadline = time.monotonic() + self.config.startup_timeout

    def _on_exit(self, st: _State, bi: int) -> None:
        how = st.worker.exit_description()
        if st.info is None:  # died before saying hello
            if self.infos[bi] is None:
                self.infos[bi] = {"status": "broken", "name": self.config.backends[bi]}
            self._fail_all(st, bi, "error", f"backend worker {how} while starting: {st.worker.stderr_tail()}")
            return
        if st.in_flight is not None:
            self._record(st.in_flight, bi, {"verdict": "crashed", "reasons": [f"worker {how}: {st.worker.stderr_tail(2)}"]})
        self._restart(st, bi)

    def run(self) -> bool:
        """Run every case on every backend. Returns False when interrupted (Ctrl-C)."""
        from tqdm import tqdm

        cfg = self.config
        states = []
        for bi, spec in enumerate(cfg.backends):
            st = _State(Worker(bi, spec, self.events, cfg.log_dir, cfg.interpreters), pending=list(range(len(cfg.cases))))
            st.worker.start()
            st.deadline = time.monotonic() + cfg.startup_timeout
            states.append(st)
        total = len(cfg.cases) * self.n_backends
        bar = tqdm(total=total, unit="result", disable=None if cfg.progress else True, file=sys.stderr)
        last = 0
        try:
            while self.cursor < total:
                try:
                    bi, gen, msg = self.events.get(timeout=0.2)
                except queue.Empty:
                    bi = None
                if bi is not None:
                    st = states[bi]
                    if gen != st.worker.generation:
                        continue  # from a worker already replaced
                    if msg is None:
                        self._on_exit(st, bi)
                    elif msg.get("op") == "hello":
                        self._on_hello(st, bi, msg)
                    elif msg.get("op") == "result" and st.in_flight is not None:
                        ci, st.in_flight = st.in_flight, None
                        self._on_result(ci, bi, msg, time.monotonic() - st.started_at)
                        self._dispatch(st, bi)
                now = time.monotonic()
                for bi, st in enumerate(states):
                    if st.deadline and now > st.deadline and (st.in_flight is not None or st.info is None) \
                            and st.worker.proc.poll() is None:
                        self._on_timeout(st, bi)
                if self.cursor != last:
                    bar.update(self.cursor - last)
                    last = self.cursor
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            bar.close()
            for st in states:
                if self.interrupted:
                    st.worker.kill()
                else:
                    st.worker.quit()
            if self.interrupted:  # keep what finished, even out of order
                for key in sorted(self.done):
                    self.emit(self.done.pop(key))
            shutil.rmtree(self.scratch, ignore_errors=True)
        return not self.interrupted

    def _on_timeout(self, st: _State, bi: int) -> None:
        st.worker.kill()
        st.worker.generation += 1  # the killed worker's EOF is stale now
        if st.info is None:
            if self.infos[bi] is None:
                self.infos[bi] = {"status": "broken", "name": self.config.backends[bi]}
            self._fail_all(st, bi, "error", f"backend did not start within {self.config.startup_timeout:g} s")
            return
        ci, st.in_flight = st.in_flight, None
        self._record(ci, bi, {"verdict": "timeout",
                              "reasons": [f"no answer within {self.config.case_timeout:g} s; worker killed"]})
        self._restart(st, bi)
