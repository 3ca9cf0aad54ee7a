"""Running one variant on several ranks of this machine: the multi-rank run mode.

A problem kind whose cases are split over ranks (xentcheck.problems.sharded) hands `launch` one
task per process. The variant's mode says how its ranks live:

- "gloo": W processes, one per rank, joined by torch.distributed over gloo on 127.0.0.1. The port
  is a socket this process binds on 127.0.0.1 (port 0: a free one) and hands to rank 0 as its
  TCPStore's listening socket, so no other process can take it in between, and no rank listens
  beyond the loopback (gloo's own sockets: GLOO_SOCKET_IFNAME=lo).
- "devices": one process holding every rank as a host device
  (XLA_FLAGS=--xla_force_host_platform_device_count=W: JAX's shard_map).

Every rank process runs run/rank.py's `run(TASK)`, in a process group of its own (rank 0 leads
it), and dies with the process that started it (PR_SET_PDEATHSIG), so a worker killed by the
runner leaves no rank behind. A gloo rank is forked by the worker's zygote (run/zygote.py: a
process that has imported the rank's frameworks once, and itself dies with the worker); a
"devices" process, and every rank where no zygote can be used, is `launch.py --rank TASK`.
A rank that dies by a signal or exits with an error status, or ranks still running at the
deadline, end the variant: the whole group is killed and reaped (its ports close
with it), and the outcome says `crashed` or `timeout`. The workers run under Ray too: the ranks
are children of the worker, on its node.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from xentcheck.run import launch

TIMEOUT_ENV = "XENTCHECK_RANK_TIMEOUT"  # seconds a variant's ranks may run (default DEFAULT_TIMEOUT)
ZYGOTE_ENV = "XENTCHECK_RANK_ZYGOTE"  # 0: every gloo rank a fresh interpreter (run/zygote.py)
DEFAULT_TIMEOUT = 240.0
POLL = 0.02
CRASH_SETTLE = 2.0  # seconds the other ranks get to end once one has failed (see _first_cause)
_PR_SET_PDEATHSIG = 1


@dataclass
class RankOutcome:
    """How one variant's ranks ended: status "ok" (every rank wrote `out-<rank>.npz` and its
    `.json`), "crashed", "timeout" or "error" (a rank's own report of a failure), with why."""
    status: str
    reason: str = ""
    files: list[Path] = field(default_factory=list)  # each process's output prefix, in rank order


def timeout() -> float:
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: the child between fork and exec only calls it


def set_death_signal(group: int | None) -> None:
    """In a child (before exec, or after a zygote's fork): join the ranks' process group (0: lead a
    new one; None: stay in its parent's), and get SIGKILL when the process that started it ends."""
    if group is not None:
        os.setpgid(0, group)
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _env(world: int, devices: bool) -> dict[str, str]:
    from xentcheck.run.processes import package_folders
    env = dict(os.environ)
    env[launch.ENV] = json.dumps(package_folders())
    env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's pair sockets on the loopback only
    if devices:
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
        # first: XLA stops reading flags at the worker's bare "intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = " ".join([f"--xla_force_host_platform_device_count={world}", *flags])
        env["JAX_NUM_CPU_DEVICES"] = str(world)
        env["JAX_PLATFORMS"] = "cpu"
    return env


def launch_ranks(task: dict, world: int, mode: str, folder: Path, limit: float | None = None) -> RankOutcome:
    """Run `task` (a JSON-able dict: the backend, variant, case and seed) on `world` ranks as `mode`
    says ("gloo": a process per rank; "devices": one process with `world` host devices). Each
    process writes `<folder>/rank-<r>.npz` and `.json`; their prefixes come back in rank order.
    gloo ranks are forked by this worker's zygote (run/zygote.py), which has imported the modules
    of task["preload"] once; fresh interpreters where it cannot be used or ZYGOTE_ENV is 0."""
    limit = timeout() if limit is None else limit
    env = _env(world, mode == "devices")
    if mode == "gloo" and os.environ.get(ZYGOTE_ENV, "1") != "0":
        from xentcheck.run.zygote import zygote
        z = zygote(tuple(task.get("preload", ())), env)
        if z is not None:
            return z.run(task, world, folder, limit)
    return run_group(task, world, folder, limit, functools.partial(_popen_rank, env), mode)


def _popen_rank(env: dict[str, str], this: dict, err, fds: tuple[int, ...], group: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, launch.__file__, "--rank", json.dumps(this)], stdin=subprocess.DEVNULL,
                            stdout=err, stderr=err, env=env, pass_fds=fds,
                            preexec_fn=functools.partial(set_death_signal, group))


def run_group(task: dict, world: int, folder: Path, limit: float, start, mode: str = "gloo") -> RankOutcome:
    """Start the ranks with `start(this, err, fds, group)` (a handle with Popen's poll, kill, wait,
    pid and returncode), wait for them within `limit` seconds, and leave none running."""
    procs: list = []
    listener = None
    n = world if mode == "gloo" else 1
    errs = []
    try:
        if mode == "gloo":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
        for r in range(n):
            prefix = folder / f"rank-{r}"
            this = {**task, "rank": r if mode == "gloo" else None, "world": world, "out": str(prefix)}
            fds: tuple[int, ...] = ()
            if listener is not None:
                this["port"] = listener.getsockname()[1]
                if r == 0:
                    this["listen_fd"] = listener.fileno()
                    fds = (listener.fileno(),)
            err = open(f"{prefix}.stderr", "w+b")
            errs.append(err)
            procs.append(start(this, err, fds, 0 if r == 0 else procs[0].pid))
        if listener is not None:  # rank 0 holds it now
            listener.close()
            listener = None
        return _wait(procs, folder, limit, errs)
    finally:
        if listener is not None:
            listener.close()
        _kill(procs)
        for err in errs:
            err.close()


def _wait(procs: list, folder: Path, limit: float, errs) -> RankOutcome:
    deadline = time.monotonic() + limit
    while True:
        codes = [p.poll() for p in procs]
        if any(c not in (None, 0) for c in codes):
            return _first_cause(procs, folder, errs)
        if all(c == 0 for c in codes):
            return RankOutcome("ok", files=[folder / f"rank-{r}" for r in range(len(procs))])
        if time.monotonic() > deadline:
            running = [r for r, c in enumerate(codes) if c is None]
            return RankOutcome("timeout", f"rank {', '.join(map(str, running))} still running after {limit:g} s; "
                                          f"ranks killed")
        time.sleep(POLL)


def _first_cause(procs: list, folder: Path, errs) -> RankOutcome:
    """A rank ended badly. A rank killed mid-collective makes its peers fail too, with errors of
    their own ("connection closed"), and the one polled first need not be the cause: give the
    others a moment to end, then name a crash before any rank's own report of an error."""
    settle = time.monotonic() + CRASH_SETTLE
    while time.monotonic() < settle and any(p.poll() is None for p in procs):
        time.sleep(POLL)
    ended = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode not in (None, 0)]
    outcomes = [_failed(r, code, folder, errs[r]) for r, code in ended]
    return next((o for o in outcomes if o.status == "crashed"), outcomes[0])


def _failed(r: int, code: int, folder: Path, err) -> RankOutcome:
    """A rank that ended badly: its own report (an exception, a missing framework), else a crash."""
    report = folder / f"rank-{r}.json"
    if code == RANK_FAILED and report.exists():
        data = json.loads(report.read_text())
        return RankOutcome(data["status"], data["reason"])
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    err.flush()
    err.seek(0)
    tail = err.read()[-600:].decode(errors="replace").strip().replace("\n", " | ")
    return RankOutcome("crashed", f"rank {r} {how}; its group killed" + (f": {tail}" if tail else ""))


RANK_FAILED = 3  # a rank's exit status after writing its own failure report


def _kill(procs: list) -> None:
    """Kill the ranks' process group (and any rank that left it) and reap every one."""
    if not procs:
        return
    try:
        os.killpg(procs[0].pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
