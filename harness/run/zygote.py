"""A starter of gloo ranks that has imported their frameworks once, and forks each rank from there.

A rank started as a fresh interpreter (run/ranks.py) imports torch, and for Megatron's variant
megatron-core: 3 to 8 CPU seconds before its first op, several times a variant (--suite full
started 230 of them: 885 of its 7,014 CPU seconds). The worker cannot fork its ranks itself: its
framework has run ops, and a child forked from a process whose thread pools have started may
hang in its first parallel region. The zygote is a process that has only *imported* the modules
the backend names (`Backend.rank_preload`), never run an op, and forks every rank from that state.

Protocol: `launch.py --zygote PRELOAD` (PRELOAD a JSON list of modules) answers one JSON line
once it has imported them ({"threads": n, "base": threads before them}), then takes one request
a line on stdin ({"task", "world", "folder", "limit"}), forks the ranks, waits for them as
run/ranks.py waits for its own (the first failure, a moment to settle, the group killed; the
deadline), and answers one JSON line, the RankOutcome. It ends at EOF on stdin, and by PR_SET_PDEATHSIG when the worker
ends; each rank likewise ends with the zygote. A zygote whose preloaded modules started a thread
(beyond numpy's OpenBLAS pool, which handles a fork itself) is not used: the worker starts fresh
interpreters then.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

from xentcheck.run import launch
from xentcheck.run.ranks import RankOutcome, run_group, set_death_signal

REPLY_SLACK = 30.0  # seconds past a request's limit before the worker gives the zygote up
_zygotes: dict[tuple[str, ...], Zygote | None] = {}  # by preload; None: not usable in this worker


class Zygote:
    """The worker's handle on a zygote process."""

    def __init__(self, preload: tuple[str, ...], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, launch.__file__, "--zygote", json.dumps(list(preload))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     preexec_fn=functools.partial(set_death_signal, None))
        hello = self._reply(600.0)  # imports: seconds, minutes on a loaded machine
        # a preloaded module that started a thread: a fork would copy it stopped, its locks held
        self.usable = hello is not None and hello["threads"] == hello["base"]

    def _reply(self, limit: float) -> dict | None:
        """The zygote's next line within `limit` seconds, None when it ended or said nothing."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], limit)
        line = self.proc.stdout.readline() if ready else b""
        return json.loads(line) if line else None

    def run(self, task: dict, world: int, folder: Path, limit: float) -> RankOutcome:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"task": task, "world": world, "folder": str(folder),
                                              "limit": limit}).encode() + b"\n")
            self.proc.stdin.flush()
            reply = self._reply(limit + REPLY_SLACK)
        except OSError:
            reply = None
        if reply is None:
            code = self.proc.poll()
            self.stop()
            how = "did not answer" if code is None else f"ended (status {code})"
            return RankOutcome("crashed", f"the ranks' starter (run/zygote.py) {how}; ranks killed with it")
        return RankOutcome(reply["status"], reply["reason"], [Path(f) for f in reply["files"]])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # its ranks get SIGKILL with it (PR_SET_PDEATHSIG)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a request still buffered for a zygote that is gone
                    pipe.close()


def zygote(preload: tuple[str, ...], env: dict[str, str]) -> Zygote | None:
    """This worker's zygote for `preload`, started on first use; None when it cannot be used."""
    if preload in _zygotes:
        known = _zygotes[preload]
        if known is None or known.proc.poll() is None:  # not usable here, or alive
            return known
    z = Zygote(preload, env)  # the first, or one that ended: start another
    if not z.usable:
        z.stop()
    _zygotes[preload] = z if z.usable else None
    return _zygotes[preload]


@atexit.register
def stop_all() -> None:
    for z in _zygotes.values():
        if z is not None:
            z.stop()
    _zygotes.clear()


# --- the zygote process -----------------------------------------------------------------------

class _Forked:
    """A forked rank, with the part of Popen's interface that ranks.py uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        code = self.returncode
        if code is None:
            _, status = os.waitpid(self.pid, 0)
            code = self.returncode = os.waitstatus_to_exitcode(status)
        return code


def _fork_rank(this: dict, err, fds: tuple[int, ...], group: int) -> _Forked:
    """Fork one rank: in the child, the ranks' process group, death with the zygote, its output
    to `err`, only the listening socket `fds` kept of the zygote's; then run/rank.py's run."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        try:  # as well as the child: whichever runs first, the group exists before the next rank joins it
            os.setpgid(pid, pid if group == 0 else group)
        except OSError:
            pass
        return _Forked(pid)
    code = 1
    try:
        set_death_signal(group)
        if os.getppid() != parent:
            os._exit(1)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(err.fileno(), 1)
        os.dup2(err.fileno(), 2)
        _close_others({0, 1, 2, err.fileno(), *fds})  # the zygote's pipes, the other ranks' files
        from xentcheck.run.rank import run
        code = run(this)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def _close_others(keep: set[int]) -> None:
    lo = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 1 << 16)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def main(preload: list[str]) -> int:
    import xentcheck.run.rank  # noqa: F401  (numpy, whose OpenBLAS pool forks safely, and the core)
    base = _threads()
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:  # a missing framework: the rank reports it itself
            pass
    out = sys.stdout.buffer
    out.write(json.dumps({"threads": _threads(), "base": base}).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        req = json.loads(line)
        outcome = run_group(req["task"], req["world"], Path(req["folder"]), req["limit"], _fork_rank)
        out.write(json.dumps({**asdict(outcome), "files": [str(f) for f in outcome.files]}).encode() + b"\n")
        out.flush()
    return 0
