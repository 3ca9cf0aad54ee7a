"""Runs a plan's cases through every backend, each backend in a worker process of its own.

Workers run side by side (both cores busy) and regenerate inputs from (seed, case id); the
parent computes each case's reference once, compares, and appends results to results.jsonl in
a fixed order (case, then backend) as soon as that prefix is complete, so the file is
deterministic and grows while the run goes on. A worker that dies, or passes the memory ceiling
(--worker-memory, run/memory.py), is recorded as `crashed` for its case and replaced; a case that
outlives --case-timeout is `timeout`.

The Runner is the event loop that wires the parts together: processes.Worker (the processes and
their events), schedule.Schedule (which worker computes which case: its decisions are carried
out here), ordering.Ordering (the canonical order, and a resumed run's earlier results, taken as
done once a backend's worker says who it is) and the comparison of each answer with the
reference (below).
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xentcheck.core.cases import make_inputs
from xentcheck.core.evaluate import Result, Subject, VariantOutput, evaluate
from xentcheck.core.spare import SPARE
from xentcheck.core.tolerances import GRAD_ROW
from xentcheck.problems import DEFAULT_KIND, problem_of
from xentcheck.regress import known as known_differences
from xentcheck.run.environment import compile_cache_env, compile_cache_folder
from xentcheck.run.ordering import Ordering
from xentcheck.run.plan import RunPlan, select_variants
from xentcheck.run.processes import Worker, quit_all, scratch_dir, sigint_flag
from xentcheck.run.protocol import Hello, RunReply, RunRequest
from xentcheck.run.protocol import Quit as QuitMessage  # schedule's Quit is the decision to send it
from xentcheck.run.references import DEFAULT_BUDGET, References
from xentcheck.run.schedule import Action, Quit, Restart, Schedule, Send, StartHelper


@dataclass
class RunOptions:
    """How the Runner carries out a plan: none of it changes the results, none is stored in run.json."""
    log_dir: Path | None = None  # each worker's stderr goes to worker-<index>.log in it
    progress: bool = True
    startup_timeout: float = 300.0  # for a worker's hello
    helpers: bool = True  # a finished backend's worker slot goes to the backend with the most cases left
    workers: Callable[..., Worker] = Worker  # makes a backend's worker (xentcheck.run.executor: local or Ray)
    # the workers share their compiled programs (environment.compile_cache_env) in the run's scratch
    # folder, or $XENTCHECK_COMPILE_CACHE: a helper does not compile again what its backend's first
    # worker did. Local workers only
    compile_cache: bool = True
    # bytes of references the parent keeps for cases some backend has not answered yet (run.references)
    reference_budget: int = DEFAULT_BUDGET


class Runner:
    """Drives the workers; results are handed to `emit` in canonical order."""

    def __init__(self, config: RunPlan, emit: Callable[[Result], None], prior: Sequence[Result] = (),
                 options: RunOptions | None = None):
        self.config = config  # the plan
        self.options = options or RunOptions()
        self.n_backends = len(config.backends)
        # prior: results of an earlier, interrupted run of the same plan
        self.ordering = Ordering(len(config.cases), self.n_backends, emit, prior)
        self.schedule = Schedule(self.n_backends, len(config.cases), self.options.helpers)
        self.workers: list[Worker] = []  # by worker index (= schedule slot): one per backend, helpers appended
        self.events: queue.Queue = queue.Queue()
        self.refs = References(self.options.reference_budget)  # each case's references, within a budget
        self.ref_uses: dict[int, int] = {}
        self.scratch = scratch_dir()
        self.infos: list[dict | None] = [None] * self.n_backends
        self.selected: dict[int, list[dict]] = {}
        self.interrupted = False
        # known differences: a matching bad result is recorded `known` (xentcheck.core.evaluate)
        self.known: list[dict] = known_differences.load(config.known_file) if config.known_file else []

    @property
    def records(self) -> list[Result]:
        """Every result, prior ones included, in canonical order."""
        return self.ordering.records

    # --- results -------------------------------------------------------------------------

    def _subject(self, bi: int, variant: dict) -> Subject:
        """Who computed a slot's record: the backend as its worker named itself, and the variant
        (the backend's own impl and mode when the outcome has none, as a crash before any answer)."""
        info = self.infos[bi] or {}
        return Subject(backend=info.get("name", self.config.backends[bi]),
                       impl=variant.get("impl", info.get("impl", "")), mode=variant.get("mode", info.get("mode", "")),
                       api=variant.get("api", ""), device=self.config.device, seed=self.config.seed,
                       backend_version=info.get("version", ""), documented=variant.get("documented", ""))

    def _slot_variants(self, ci: int, bi: int) -> list[dict]:
        """The selected variants that take this case's label form (one record each)."""
        labels, kind = self.config.cases[ci].labels, self.config.cases[ci].kind
        chosen = [v for v in self.selected.get(bi, []) if labels in v.get("label_forms", [labels])
                  and v.get("kind", DEFAULT_KIND) == kind]
        return chosen or [{}]

    def _record(self, ci: int, bi: int, fields: dict) -> None:
        """The same outcome (crash, timeout, broken backend) for every variant of the slot."""
        self._record_slot(ci, bi, [(v, dict(fields)) for v in self._slot_variants(ci, bi)])

    def _record_slot(self, ci: int, bi: int, entries: list[tuple[dict, dict]]) -> None:
        case = self.config.cases[ci]
        self._done(ci, bi, [self._subject(bi, variant).result(case, **{"reasons": [], **fields})
                            for variant, fields in entries])

    def _done(self, ci: int, bi: int, recs: list[Result], replayed: bool = False) -> None:
        """The slot's records are final: its reference is dropped once every backend has the case."""
        self.ref_uses[ci] = self.ref_uses.get(ci, 0) + 1
        if self.ref_uses[ci] == self.n_backends:
            self.refs.drop_case(ci)
        self.ordering.add(ci, bi, recs, replayed)

    def _identify(self, w: int, bi: int, info: dict) -> None:
        """The backend's identity is known (first hello, or it failed before one): take its prior
        results as done. Every outcome of a backend is recorded under this name."""
        if self.infos[bi] is not None:
            return
        spec = self.config.backends[bi]
        identity = {"name": spec, **info, "spec": spec}  # a plugin broken before naming itself: its spec
        self.infos[bi] = identity
        name = identity["name"]
        for ci in list(self.schedule.slots[w].pending):
            recs = self.ordering.claim_prior(self.config.cases[ci].id, name, self._expected(ci, bi))
            if recs is not None:
                self.schedule.drop(w, ci)
                self._done(ci, bi, recs, replayed=True)

    def _expected(self, ci: int, bi: int) -> set[tuple[str, str]]:
        """The (impl, mode) of every record the slot has once complete."""
        return {(v["impl"], v["mode"]) for v in self._slot_variants(ci, bi) if v}

    def _reference(self, ci: int, semantics: str = "plain") -> Any:
        """The case's reference (its kind's), computed once per case (and per API semantics where they differ)."""
        case = self.config.cases[ci]
        key = problem_of(case).reference_key(case, semantics)
        return self.refs.get(ci, key, lambda: problem_of(case).reference(case, make_inputs(case, self.config.seed), key))

    def _on_result(self, ci: int, bi: int, reply: RunReply, seconds: float) -> None:
        results = [self._result(ci, bi, j, output, seconds) for j, output in enumerate(reply.results)]
        self._done(ci, bi, list(results))

    def _result(self, ci: int, bi: int, j: int, output: VariantOutput, seconds: float) -> Result:
        """Variant j's record (xentcheck.core.evaluate judges it), with the time it took."""
        case = self.config.cases[ci]
        if output.status == "ok":
            output.loss, output.grads = self._take_output(bi, ci, j)
        result = evaluate(case, self._subject(bi, output.variant), output, self.config.tolerances, known=self.known,
                          reference=lambda: self._reference(ci, output.semantics))
        if result.verdict != "skipped":
            result.timing = {"wall_seconds": round(seconds, 6)}
            if output.status == "ok" and "oor" not in case.option_set:
                result.timing["compute_seconds"] = round(output.seconds, 6)
                result.timing.update((k, round(v, 6)) for k, v in output.timings.items())
        return result

    def _take_output(self, bi: int, ci: int, j: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Variant j's loss and gradients (named as its kind declares them) as the worker wrote
        them; the file is removed once read."""
        path = self._out_path(bi, ci, j)
        try:
            with np.load(path) as data:
                return data["loss"], {k: data[k] for k in data.files if k != "loss"}
        finally:
            path.unlink(missing_ok=True)

    def _fail_all(self, w: int, bi: int, verdict: str, reason: str) -> None:
        for ci in self.schedule.take_pending(w):
            self._record(ci, bi, {"verdict": verdict, "reasons": [reason]})

    # --- dispatch ------------------------------------------------------------------------

    def _out_path(self, bi: int, ci: int, j: int | None = None) -> Path:
        """Where the worker writes variant j's arrays (it appends -j.npz to the prefix)."""
        prefix = self.scratch / f"{bi}-{ci}"
        return prefix if j is None else Path(f"{prefix}-{j}.npz")

    def _request(self, bi: int, ci: int) -> RunRequest:
        case = self.config.cases[ci]
        tol = self.config.tolerances
        rtol, atol = tol.get(case.dtype, GRAD_ROW)
        return RunRequest(case_id=case.id, seed=self.config.seed, device=self.config.device,
                          out=str(self._out_path(bi, ci)),
                          variants=[(v["impl"], v["mode"]) for v in self.selected.get(bi, [])],
                          properties=self.config.properties, rtol=rtol, atol=atol, scaled=tol.scaled,
                          inputs=case.source)

    def _dispatch(self, w: int) -> None:
        """Keep worker w fed (Schedule.dispatch): it starts its next case the moment it answers, not once
        the parent has compared the answer (the parent's comparisons, the references and other
        backends' results would otherwise stall it)."""
        self._act(self.schedule.dispatch(w))

    def _act(self, actions: Sequence[Action]) -> None:
        """Carry out the schedule's decisions."""
        dead: set[int] = set()  # workers a send failed on: their EOF event will follow and record the crash
        for a in actions:
            if isinstance(a, Send):
                if a.worker in dead:
                    continue  # the case stays queued: a restart runs it again
                worker = self.workers[a.worker]
                ok = worker.send(self._request(self.schedule.slots[a.worker].backend, a.case).to_dict())
                if a.computing:
                    worker.begin_case(self.config.case_timeout)
                if not ok:
                    worker.deadline = 0.0
                    dead.add(a.worker)
            elif isinstance(a, Quit):
                self.workers[a.worker].send(QuitMessage().to_dict())
            elif isinstance(a, StartHelper):
                assert a.worker == len(self.workers)
                self.workers.append(self._make_worker(a.worker, self.config.backends[a.backend]))
                self._start(a.worker)
            elif isinstance(a, Restart):
                self._start(a.worker)

    def _make_worker(self, w: int, spec: str) -> Worker:
        cache = compile_cache_folder(self.scratch, os.environ)
        env = compile_cache_env(cache, os.environ) if self.options.compile_cache else None
        return self.options.workers(w, spec, self.events, self.options.log_dir, self.config.interpreters,
                                    env=env, memory_ceiling=self.config.worker_memory)

    def _start(self, w: int) -> None:
        self.workers[w].start()
        self.workers[w].expect_hello(self.options.startup_timeout)

    def _retire_helper(self, w: int) -> None:
        """A helper that did not start, or is not the same backend: its cases go back to its
        backend's worker (started again if it had already quit)."""
        worker = self.workers[w]
        worker.kill()
        worker.generation += 1  # its EOF is stale now
        worker.deadline = 0.0
        self._act(self.schedule.retire_helper(w))

    # --- events --------------------------------------------------------------------------

    def _on_event(self, w: int, msg: dict | None) -> None:
        bi = self.schedule.slots[w].backend
        if msg is None:
            self._on_exit(w, bi)
        elif msg.get("op") == "hello":
            self._on_hello(w, bi, Hello.from_dict(msg))
        elif msg.get("op") == "result" and self.schedule.slots[w].in_flight is not None:
            worker = self.workers[w]
            seconds = time.monotonic() - worker.started_at
            ci, computing = self.schedule.answered(w)
            if computing is not None:
                worker.begin_case(self.config.case_timeout)
            self._dispatch(w)  # before comparing: the worker is busy meanwhile
            self._on_result(ci, bi, RunReply.from_dict(msg), seconds)
            self._act(self.schedule.when_idle(w))

    def _on_hello(self, w: int, bi: int, hello: Hello) -> None:
        if self.schedule.slots[w].helper:
            known = self.infos[bi] or {}
            if hello.status != "ok" or hello.name != known.get("name") or hello.version != known.get("version"):
                self._retire_helper(w)
                return
            self.schedule.said_hello(w, hello.status)
            self._dispatch(w)
            return
        if self.infos[bi] is None:
            cfg = self.config
            self.selected[bi] = select_variants(hello.variants or [], cfg.suite, cfg.impls, cfg.modes)
        self._identify(w, bi, hello.to_dict())
        if hello.status == "ok" and not self.selected.get(bi):
            for ci in self.schedule.take_pending(w):  # nothing of this backend was asked for: no records
                self._record_slot(ci, bi, [])
        if hello.status == "missing":
            self._fail_all(w, bi, "skipped", "framework not installed" if hello.reason is None else hello.reason)
        elif hello.status != "ok":
            self._fail_all(w, bi, "error", f"backend broken: {'' if hello.reason is None else hello.reason}")
        self.schedule.said_hello(w, hello.status)
        self._dispatch(w)

    def _on_exit(self, w: int, bi: int) -> None:
        slot, worker = self.schedule.slots[w], self.workers[w]
        if slot.quitting:  # told to quit with nothing left: its exit is no crash
            return
        how = worker.exit_description()
        if slot.status is None and slot.helper:  # a helper that never started: its cases go back
            self._retire_helper(w)
            return
        if slot.status is None:  # died before saying hello
            reason = f"backend worker {how} while starting: {worker.stderr_tail()}"
            self._identify(w, bi, {"status": "broken", "name": self.config.backends[bi], "reason": reason})
            self._fail_all(w, bi, "error", reason)
            return
        if slot.in_flight is not None:
            tail = worker.stderr_tail(2)
            self._record(slot.in_flight, bi, {"verdict": "crashed", "reasons": [f"worker {how}" + (f": {tail}" if tail else "")],
                                              "exit": worker.exit_status()})
        self._act(self.schedule.restart(w))

    def _on_timeout(self, w: int, bi: int) -> None:
        slot, worker = self.schedule.slots[w], self.workers[w]
        worker.kill()
        worker.generation += 1  # the killed worker's EOF is stale now
        if slot.status is None and slot.helper:
            self._retire_helper(w)
            return
        if slot.status is None:
            reason = f"backend did not start within {self.options.startup_timeout:g} s"
            self._identify(w, bi, {"status": "broken", "name": self.config.backends[bi], "reason": reason})
            self._fail_all(w, bi, "error", reason)
            return
        assert slot.in_flight is not None  # a started worker is overdue only while it computes a case
        self._record(slot.in_flight, bi, {"verdict": "timeout",
                                          "reasons": [f"no answer within {self.config.case_timeout:g} s; worker killed"]})
        self._act(self.schedule.restart(w))

    def _on_sigint(self) -> None:
        self.interrupted = True

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> bool:
        """Run every case on every backend. Returns False when interrupted (Ctrl-C)."""
        from tqdm import tqdm

        for bi, spec in enumerate(self.config.backends):
            self.workers.append(self._make_worker(bi, spec))
            self._start(bi)
        order = self.ordering
        bar = tqdm(total=order.total, unit="result", disable=None if self.options.progress else True, file=sys.stderr)
        last = 0
        try:
            # Ctrl-C only sets a flag: the loop stops between events, never halfway through writing a result
            with sigint_flag(self._on_sigint):
                while not order.complete and not self.interrupted:
                    try:
                        w, gen, msg = self.events.get(timeout=0.2)
                    except queue.Empty:
                        w = None
                    if w is not None and gen == self.workers[w].generation:  # else from a worker already replaced
                        self._on_event(w, msg)
                    now = time.monotonic()
                    for w in range(len(self.workers)):
                        if self.schedule.waiting(w) and self.workers[w].overdue(now):
                            self._on_timeout(w, self.schedule.slots[w].backend)
                    if order.cursor != last:
                        bar.update(order.cursor - last)
                        last = order.cursor
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            bar.close()
            if self.interrupted:
                for worker in self.workers:
                    worker.kill()
            else:
                quit_all(self.workers)
            order.close(self.interrupted)
            shutil.rmtree(self.scratch, ignore_errors=True)
            SPARE.release()  # the references' spare gradient: no case of this run needs it now
        return not self.interrupted
