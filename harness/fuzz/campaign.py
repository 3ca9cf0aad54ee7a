"""A fuzz campaign: draw cases, run them in batches, keep each new kind of finding, shrunk.

The campaign folder holds campaign.json (the configuration and how far it got: written after
every batch, so `xentcheck fuzz --resume DIR` continues from it), batches/NNNN/ (each an ordinary
run folder: run.json, results.jsonl, logs/, summary.json, and repro/ for its new kinds), and
report.md / report.json (xentcheck.fuzz.report), rewritten after every batch.

A batch is a RunPlan of drawn cases carried out by xentcheck.run.execute.execute, the entry point
`xentcheck run` uses, with the campaign's template plan (backends, dtypes, known differences,
every implementation and mode of the full suite): the same workers, reference, verdicts and
known differences as a run. An interrupted batch is finished on --resume as `run --resume`
finishes a run. The budget and Ctrl-C stop a batch the same way, between two results (the
runner's SIGINT flag: the budget's timer sends this process SIGINT), keeping what finished.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from xentcheck.core.records import Result
from xentcheck.fuzz.draw import DRAW_VERSION, draw_cases
from xentcheck.fuzz.kinds import Findings, Kind
from xentcheck.run.plan import RunPlan

STATE_FILE = "campaign.json"
FORMAT = 1
BATCH = 16  # cases per batch: the backends' workers start once per batch
SHRINK_TIMEOUT = 300.0  # seconds for one backend's shrinking child (all its new kinds of a batch)
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """Seconds of "10m", "90s", "1h30m", "45" (seconds); ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise ValueError(f"--budget {text!r} is not a duration (e.g. 10m, 90s, 1h30m)")
    h, mi, s = (float(g or 0) for g in m.groups())
    seconds = 3600 * h + 60 * mi + s
    if seconds <= 0:
        raise ValueError(f"--budget {text!r} must be more than 0 seconds")
    return seconds


@dataclass
class State:
    """campaign.json: what the campaign runs, and how far it got."""
    seed: int
    plan: dict  # the template RunPlan's JSON (its cases: the first drawn case)
    budget_s: float | None  # None: no time limit (a --cases campaign)
    cases: int | None  # how many cases to draw in all; None: until the budget is spent
    batch: int = BATCH
    next_index: int = 0  # cases drawn so far (case i is draw_case(seed, i))
    batches: list[dict] = field(default_factory=list)  # {"dir", "first", "count", "cases", "finished"}
    elapsed_s: float = 0.0  # time spent in the campaign so far, over every session
    stopped: str | None = None  # "budget", "cases" or "interrupted"
    kinds: list[dict] = field(default_factory=list)
    draw_version: int = DRAW_VERSION  # what (seed, i) drew (xentcheck.fuzz.draw): a resume draws alike

    def template(self) -> RunPlan:
        return RunPlan.from_json(self.plan)

    def to_json(self) -> dict:
        return {"format": FORMAT, **self.__dict__}

    @classmethod
    def load(cls, folder: Path) -> State:
        path = Path(folder) / STATE_FILE
        if not path.is_file():
            raise ValueError(f"cannot resume {folder}: no {STATE_FILE} (not a folder written by xentcheck fuzz)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.pop("format", None) != FORMAT:
                raise ValueError(f"unsupported format (expected {FORMAT})")
            data.setdefault("draw_version", 1)  # written before draw versions: the first draw
            state = cls(**data)
            state.template()  # validates the plan
            return state
        except (OSError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    def save(self, folder: Path) -> None:
        from xentcheck.reports.files import write_atomic

        write_atomic(Path(folder) / STATE_FILE, json.dumps(self.to_json(), indent=2) + "\n")


def run_batch(plan: RunPlan, folder: Path, prior: list[Result], warn: Callable[[str], None], executor=None):
    """One batch through the backends: `xentcheck run`'s own entry point (execute), without the
    reports (the campaign writes its own), with summary.json (repro and shrinking read it)."""
    from xentcheck.reports.files import write_atomic
    from xentcheck.reports.summary import render
    from xentcheck.run.execute import execute
    from xentcheck.run.executor import LOCAL

    done = execute(plan, folder, prior, progress=False, repro=False, reports=False, warn=warn,
                   executor=executor or LOCAL)
    write_atomic(folder / "summary.json", render(done.summary))
    return done


class Campaign:
    """Runs a campaign in `out` until its budget or case count is spent, or Ctrl-C."""

    def __init__(self, out: Path, state: State, progress: bool = True, warn: Callable[[str], None] = lambda m: None,
                 executor=None):
        # executor: where the backend workers run (xentcheck.run.executor; None: this machine)
        self.out, self.state, self.progress, self.warn, self.executor = Path(out), state, progress, warn, executor
        self.findings = Findings(state.kinds)
        self.deadline = float("inf")
        self.budget_hit = False  # the budget's timer fired (else a SIGINT is the user's)
        self.interrupted = False

    # --- stopping -------------------------------------------------------------------------

    def _on_sigint(self, signum, frame) -> None:
        if not self.budget_hit:
            self.interrupted = True

    def _watch_budget(self, budget_s: float, stopped: threading.Event) -> None:
        """At the budget, SIGINT this process: a running batch stops between two results, as on
        Ctrl-C. Again each second until the campaign stops, in case the signal came in the moment
        before a batch's runner took over SIGINT (it would then have run the batch to its end)."""
        if stopped.wait(budget_s):
            return
        self.budget_hit = True
        while not stopped.is_set():
            os.kill(os.getpid(), signal.SIGINT)
            stopped.wait(1.0)

    def _stop_reason(self) -> str | None:
        s = self.state
        if self.interrupted:
            return "interrupted"
        if self.budget_hit or time.monotonic() >= self.deadline:
            return "budget"
        if s.cases is not None and s.next_index >= s.cases and all(b["finished"] for b in s.batches):
            return "cases"
        return None

    # --- the loop -------------------------------------------------------------------------

    def run(self, budget_s: float | None) -> State:
        """Run until the budget (seconds from now; None: none) or the case count is spent, or
        Ctrl-C. Saves the state and the report after every batch."""
        from tqdm import tqdm

        start, self.elapsed_before = time.monotonic(), self.state.elapsed_s
        self.deadline = start + budget_s if budget_s is not None else float("inf")
        stopped = threading.Event()
        watch = threading.Thread(target=self._watch_budget, args=(budget_s, stopped), daemon=True) \
            if budget_s is not None else None
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        bar = tqdm(total=self.state.cases, initial=sum(b["cases"] for b in self.state.batches if b["finished"]),
                   unit="case", disable=None if self.progress else True, file=sys.stderr)
        if watch is not None:
            watch.start()
        try:
            while (reason := self._stop_reason()) is None:
                batch = self._next_batch()
                if batch is None:
                    continue
                done = self._run(batch)
                if done is not None and done.finished:
                    bar.update(batch["cases"])
                bar.set_postfix(kinds=len(self.findings.kinds))
                self._save(start)
            self.state.stopped = reason
        finally:
            stopped.set()
            if watch is not None:
                watch.join()
            bar.close()
            signal.signal(signal.SIGINT, previous)
            self._save(start)
        return self.state

    def _save(self, start: float) -> None:
        from xentcheck.fuzz.report import write

        self.state.elapsed_s = self.elapsed_before + time.monotonic() - start
        self.state.kinds = self.findings.to_list()
        self.state.save(self.out)
        write(self.out, self.state)

    def _next_batch(self) -> dict | None:
        """The unfinished batch, else a new one of freshly drawn cases (its folder started);
        None when every drawn case of the new batch already ran."""
        from xentcheck.run.execute import start_folder

        s = self.state
        if s.batches and not s.batches[-1]["finished"]:
            return s.batches[-1]
        count = s.batch if s.cases is None else min(s.batch, s.cases - s.next_index)
        template = s.template()
        drawn = draw_cases(s.seed, s.next_index, count, template.dtypes)
        seen = self._seen()
        cases = [c for c in dict.fromkeys(drawn) if c.id not in seen]
        batch: dict = {"dir": f"batches/{len(s.batches):04d}", "first": s.next_index, "count": count,
                 "cases": len(cases), "finished": not cases}
        s.next_index += count
        s.batches.append(batch)
        if not cases:
            return None
        start_folder(self.out / batch["dir"], replace(template, cases=cases, case_order=[c.id for c in cases]))
        return batch

    def _seen(self) -> set[str]:
        """The ids of every case an earlier batch ran (a drawn duplicate runs once)."""
        if not hasattr(self, "_seen_ids"):
            self._seen_ids: set[str] = set()
            for b in self.state.batches:
                path = self.out / b["dir"] / "run.json"
                if path.is_file():
                    self._seen_ids.update(json.loads(path.read_text(encoding="utf-8"))["cases"])
        return self._seen_ids

    def _run(self, batch: dict):
        """Carry out a batch (resuming it when it was interrupted), then count and shrink its kinds."""
        from xentcheck.run import plan as runplan
        from xentcheck.run import resume as resuming

        folder = self.out / batch["dir"]
        plan = runplan.load(folder)
        prior = resuming.prior_results(folder, plan)
        resuming.rewrite_results(folder, prior)  # without a torn last line
        self._seen().update(c.id for c in plan.cases)
        done = run_batch(plan, folder, prior, self.warn, self.executor)
        if not done.finished and not self.budget_hit:
            self.interrupted = True
        batch["finished"] = done.finished
        self._count(batch["dir"], done.records, done.summary)
        if not self.interrupted:
            self._shrink([k for k in self.findings.kinds.values() if k.shrunk is None])
        return done

    def _count(self, batch: str, records: list[Result], summary: dict) -> list[Kind]:
        """Add the batch's bad results to the findings; a new kind gets its repro script now."""
        from xentcheck.core.cases import Case, make_inputs
        from xentcheck.problems import problem_of
        from xentcheck.regress import repro

        new = [k for k in (self.findings.add(r, batch, repro.result_id(r)) for r in records) if k is not None]
        by_id = {repro.result_id(r): r for r in records}
        for kind in new:  # the standalone script of its smallest case here (no framework is imported)
            r = by_id[kind.smallest["result_id"]]
            try:
                case = Case.from_id(str(r.case_id))
                inputs = make_inputs(case, self.state.seed if r.seed is None else r.seed)
                ref = problem_of(case).reference(case, inputs, repro._semantics(summary, r))
                spec = repro.specs_by_name(summary).get(str(r.backend))
                script = repro.write(self.out / batch / "repro", r, inputs, case, ref, spec=spec,
                                     numerics=repro.numerics_of(summary, r))[1]
                kind.repro = str(script.relative_to(self.out))
            except Exception as exc:  # a repro is an aid: never lose the finding to it
                self.warn(f"repro of {kind.smallest['result_id']} failed: {type(exc).__name__}: {exc}")
        return new

    def _shrink(self, pending: list[Kind]) -> None:
        """Shrink the smallest result of each kind not shrunk yet (new ones, and those a spent
        budget left before a resume), one child process per batch and backend (its framework
        imported once), within the budget."""
        groups: dict[tuple[str, str], list[Kind]] = {}
        for k in pending:
            groups.setdefault((k.smallest["batch"], k.backend), []).append(k)
        for (batch, _), kinds in groups.items():
            left = min(SHRINK_TIMEOUT, self.deadline - time.monotonic())
            if left < 5 or self.interrupted or self.budget_hit:
                return  # left for later (shrunk stays None)
            folder = self.out / batch
            lines = self._shrink_child(folder, [k.smallest["result_id"] for k in kinds], left)
            if self.interrupted or self.budget_hit:
                return  # the child was stopped: try again on --resume
            for k in kinds:
                got = lines.get(k.smallest["result_id"])
                if got and got.get("script"):
                    k.shrunk = {"script": str((folder / got["script"]).relative_to(self.out)), "case_id": got["case_id"],
                                "note": ""}
                elif got and got.get("error"):
                    k.shrunk = {"script": None, "case_id": None, "note": f"shrinking failed: {got['error']}"}
                elif got:
                    k.shrunk = {"script": None, "case_id": None,
                                "note": f"not reproduced when run again in one process ({got.get('verdict')})"}
                else:
                    k.shrunk = {"script": None, "case_id": None, "note": "shrinking did not finish in time"}

    def _shrink_child(self, folder: Path, rids: list[str], timeout: float) -> dict[str, dict]:
        from xentcheck.run import launch
        from xentcheck.run.processes import package_folders

        # this campaign's own copy of xentcheck, whatever the interpreter has installed (as a worker's)
        boot = ("import json, os, sys, importlib.util as u; "
                f"spec = u.spec_from_file_location('_launch', {launch.__file__!r}); m = u.module_from_spec(spec); "
                "spec.loader.exec_module(m); sys.meta_path.insert(0, m._PackageFolders(json.loads(os.environ[m.ENV]))); "
                "from xentcheck.fuzz.shrinking import main; sys.exit(main(sys.argv[1:]))")
        cmd = [sys.executable, "-c", boot, str(folder), *rids]
        env = {**os.environ, launch.ENV: json.dumps(package_folders())}
        logs = folder / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / "shrink.out", "w+", encoding="utf-8") as out_f, \
                open(logs / "shrink.log", "a", encoding="utf-8") as err_f:
            # its own session: a Ctrl-C on the terminal is the campaign's to handle (it ends the child)
            proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env, start_new_session=True)
            end = time.monotonic() + timeout
            while proc.poll() is None:
                if self.interrupted or self.budget_hit or time.monotonic() > end:
                    proc.kill()
                try:
                    proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
            out_f.seek(0)
            stdout = out_f.read()
        out = {}
        for line in stdout.splitlines():
            try:
                d = json.loads(line)
                out[d["result_id"]] = d
            except (ValueError, KeyError, TypeError):
                continue
        return out

