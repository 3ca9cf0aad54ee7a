"""Backend worker processes: starting one, reading its replies, its crash, timeout and exit.

A `Worker` is one backend's process (`run/launch.py SPEC`, in the backend's interpreter) and the
thread that turns its stdout lines into events (worker index, generation, message or None at
EOF) on a shared queue, and, with a memory ceiling, the thread that watches its resident memory
(run/memory.py) and kills it past the ceiling. A replaced process gets a new generation, so the
events of the one it replaces are told apart and dropped. Also here: asking every backend who it is
(describe_backends), the run's scratch folder for the workers' outputs, and Ctrl-C as a flag.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from xentcheck.run import launch, memory
from xentcheck.run.environment import worker_env
from xentcheck.run.interpreters import LABEL_ENV
from xentcheck.run.interpreters import resolve as resolve_interpreter
from xentcheck.run.protocol import Quit


def package_folders() -> dict[str, str]:
    """Where this process imported xentcheck's three packages from (for run/launch.py)."""
    import xentcheck
    import xentcheck.backends
    import xentcheck.reports

    folders = {}
    for m in (xentcheck, xentcheck.backends, xentcheck.reports):
        assert m.__file__ is not None  # regular packages (with an __init__.py), imported from files
        folders[m.__name__] = str(Path(m.__file__).resolve().parent)
    return folders


class Worker:
    """One backend's worker process and the thread that reads its replies. `deadline` is when the
    answer the worker owes (its hello, a case's result) is overdue (0: none is); `started_at` is
    when it began the case it computes."""

    def __init__(self, index: int, spec: str, events: queue.Queue, log_dir: Path | None,
                 interpreters: dict[str, str] | None = None, env: dict | None = None,
                 memory_ceiling: int | None = None):
        self.index, self.spec, self.events, self.log_dir = index, spec, events, log_dir
        self.interpreters = interpreters or {}
        self.env = env or {}  # overrides of the worker's environment (bench: its thread count)
        self.memory_ceiling = memory_ceiling  # bytes of resident memory (with its children's); None: no ceiling
        self.over_ceiling: dict[int, int] = {}  # pid -> its resident memory when the watch killed it
        self.generation = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.log_offset = 0  # where this generation's stderr starts in the (shared, appended) log
        self.deadline = 0.0
        self.started_at = 0.0

    def start(self) -> None:
        self.generation += 1
        env = {**worker_env(), **self.env}
        env[launch.ENV] = json.dumps(package_folders())
        log: BinaryIO | None = None  # None: stderr goes to /dev/null
        if self.log_dir is not None:
            self.log_path = self.log_dir / f"worker-{self.index}.log"
            log = open(self.log_path, "ab")
            self.log_offset = log.seek(0, os.SEEK_END)
        python, spec, label = resolve_interpreter(self.spec, self.interpreters)
        if label:
            env[LABEL_ENV] = label
        self.proc = subprocess.Popen([python, launch.__file__, spec],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL if log is None else log,
                                     env=env, start_new_session=True)
        if log is not None:
            log.close()
        gen, proc = self.generation, self.proc
        threading.Thread(target=self._read, args=(proc, gen), daemon=True).start()
        if self.memory_ceiling is not None and memory.watchable():
            exceeded = functools.partial(self.over_ceiling.__setitem__, proc.pid)
            threading.Thread(target=memory.watch, args=(proc, self.memory_ceiling, exceeded), daemon=True).start()

    def expect_hello(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout

    def begin_case(self, timeout: float) -> None:
        """The worker now computes a case: its time and its timeout run from here."""
        self.started_at = time.monotonic()
        self.deadline = self.started_at + timeout

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def overdue(self, now: float) -> bool:
        """Past its deadline and still running (a dead worker's EOF is on its way instead)."""
        return bool(self.deadline) and now > self.deadline and self.running()

    def _read(self, proc: subprocess.Popen[bytes], gen: int) -> None:
        assert proc.stdout is not None  # started with stdout=PIPE
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            self.events.put((self.index, gen, msg))
        self.events.put((self.index, gen, None))

    def send(self, msg: dict) -> bool:
        assert self.proc is not None and self.proc.stdin is not None  # started, with stdin=PIPE
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
        """How the worker ended: {"signal": "SIGSEGV"} or {"code": 3}; killed past its memory
        ceiling, {"signal": "SIGKILL", "memory_ceiling": bytes, "rss": bytes}."""
        if self.proc is None:
            return {}
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its stdout but lives on
            self.kill()
            rc = self.proc.returncode
        if rc == -signal.SIGKILL and self.proc.pid in self.over_ceiling:
            return {"signal": "SIGKILL", "memory_ceiling": self.memory_ceiling, "rss": self.over_ceiling[self.proc.pid]}
        if rc < 0:
            try:
                return {"signal": signal.Signals(-rc).name}
            except ValueError:
                return {"signal": str(-rc)}
        return {"code": rc}

    def exit_description(self) -> str:
        how = self.exit_status()
        if "memory_ceiling" in how:
            return (f"exceeded the memory ceiling of {memory.describe(how['memory_ceiling'])} set by --worker-memory "
                    f"and was killed (RSS {memory.describe(how['rss'])})")
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
            self.send(Quit().to_dict())
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def quit_all(workers: list[Worker]) -> None:
    """Ask every worker to quit, then wait for them: their teardowns overlap."""
    for w in workers:
        if w.running():
            w.send(Quit().to_dict())
    for w in workers:
        w.quit()


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
        answered: list[dict] = []
        for i, w in enumerate(workers):
            w.quit()
            info = infos[i]
            if info is None:
                info = {"status": "broken", "reason": f"no answer within {timeout:g} s"}
            info.setdefault("name", specs[i])
            info["spec"] = specs[i]
            answered.append(info)
    return answered


def scratch_dir() -> Path:
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


@contextmanager
def sigint_flag(on_sigint: Callable[[], None]) -> Iterator[None]:
    """Within the block, Ctrl-C only calls `on_sigint` (a flag the caller checks between events, so
    that it never stops halfway through writing a result); the previous handler is restored after.
    Signal handlers can be set from the main thread only: elsewhere Ctrl-C is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: on_sigint())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
