"""The worker memory ceiling (`--worker-memory`): its size, its default, and the watch that keeps
each backend worker under it.

A plugin that allocates past the machine's memory is otherwise stopped only by the kernel's
out-of-memory killer, which may pick another process (the run's parent, another worker, anything
on the machine). RLIMIT_AS cannot bound a real worker: JAX/XLA, TensorFlow and torch reserve
address space far beyond what they touch. cgroup v2's memory.max would, where a writable,
delegated cgroup exists, which CI containers and cgroup-v1 hosts do not give. So the parent
watches: every INTERVAL seconds it reads the resident set (/proc/PID/statm) of the worker and of
its descendants, and kills the worker's process group once their sum passes the ceiling. At the
page-touching speed of a CPU (a few GB/s) a worker overshoots the ceiling by some 100 MB at most;
a child process it starts is found within CHILDREN_EVERY looks.

The default ("auto") is half the memory of this machine (or of its container's cgroup limit, if
lower). A worker's legitimate peak is a few times its largest case's logits (2.5 GiB for NumPy at
512 x 128,256; a user's --inputs batch may need more), so dividing the memory among the run's
workers (7 in a default run: 3.4 GiB each on 24 GiB) would turn large cases into crashes; half
the machine stops any one runaway worker while leaving the other half to the parent (which
computes the references), the other workers and the rest of the machine.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from xentcheck.run.environment import proc_kib

INTERVAL = 0.025  # seconds between two looks at a worker's resident memory
CHILDREN_EVERY = 20  # looks between two searches for the worker's descendants (0.5 s): a search reads every thread's list
MIN_CEILING = 64 << 20  # below this no Python worker starts: a ceiling this small is a mistaken unit
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:([KMGT])(?:I?B)?|B)?", re.IGNORECASE | re.ASCII)
USAGE = "--worker-memory takes a size such as 2G, 512M or 1.5GiB (binary units), auto or none"


def parse(text: str) -> int | None:
    """A ceiling in bytes from `--worker-memory`: "2G", "512M", "1.5GiB", "3000000000" (bytes),
    "auto" (the default) or "none" (no ceiling: None). ValueError (one line) for anything else."""
    value = text.strip().lower()
    if value == "none":
        return None
    if value == "auto":
        return default()
    match = _SIZE.fullmatch(value)
    if not match:
        raise ValueError(f"{USAGE}, got {text!r}")
    size = float(match.group(1)) * UNITS[(match.group(2) or "").upper()]
    if not math.isfinite(size) or size < MIN_CEILING:
        raise ValueError(f"--worker-memory must be at least {describe(MIN_CEILING)}, got {text!r}")
    return int(size)


def check(value: object) -> int | None:
    """A ceiling as run.json stores it (bytes, or null for none); ValueError when it is not one."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < MIN_CEILING:
        raise ValueError(f"field 'worker_memory' must be null or a number of bytes >= {MIN_CEILING}")
    return value


def describe(size: int) -> str:
    """A size for people: "2.0 GiB", "300 MiB"."""
    return f"{size / 2**30:.1f} GiB" if size >= 1 << 30 else f"{size / 2**20:.0f} MiB"


def machine_memory() -> int | None:
    """The memory this process may use: the machine's, or its cgroup's limit where that is lower
    (a container's); None where /proc has no meminfo."""
    total = proc_kib("/proc/meminfo", "MemTotal")
    limit = _cgroup_limit()
    if total is None or limit is None:
        return total or limit
    return min(total, limit)


def _cgroup_limit() -> int | None:
    """This process's cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes), if any."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            files = [f"/sys/fs/cgroup{path}/memory.max"]
        elif "memory" in controllers.split(","):
            files = [f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"]
        else:
            continue
        for name in files:
            try:
                with open(name) as f:
                    text = f.read().strip()
            except OSError:
                continue
            if text.isdigit() and int(text) < 1 << 60:  # "max", or v1's "no limit" of about 2**63
                return int(text)
    return None


def default() -> int | None:
    """The "auto" ceiling: half the memory this process may use (see the module's docstring);
    None (no ceiling) where that cannot be read, as then no worker can be watched either."""
    memory = machine_memory()
    return None if memory is None else max(MIN_CEILING, memory // 2)


# --- the watch ----------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident(pid: int) -> int:
    """A process's resident set in bytes (VmRSS); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid: int) -> list[int]:
    """The process's children, theirs, and so on (each thread's /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            found += kids
            todo += kids
    return found


def watchable() -> bool:
    """Whether this system shows processes' resident memory (Linux's /proc)."""
    return os.path.exists(f"/proc/{os.getpid()}/statm")


def watch(proc: subprocess.Popen, ceiling: int, exceeded: Callable[[int], None]) -> None:
    """Until `proc` ends: look at its resident memory and its descendants' every INTERVAL seconds;
    once their sum passes `ceiling`, call exceeded(rss) and kill proc's process group (the worker
    runs in a session of its own: its children go with it)."""
    family: list[int] = []
    looks = 0
    while proc.poll() is None:
        if looks % CHILDREN_EVERY == 0:
            family = descendants(proc.pid)
        rss = resident(proc.pid) + sum(resident(p) for p in family)
        if rss > ceiling:
            exceeded(rss)  # before the kill: the runner, woken by the worker's end, finds it recorded
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            return
        looks += 1
        time.sleep(INTERVAL)


def reset_peak() -> bool:
    """Reset this process's high-water mark VmHWM to its current resident set (writing 5 to
    /proc/self/clear_refs, Linux >= 4.0); False where the kernel refuses (or no /proc)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss() -> int | None:
    """This process's resident memory now (VmRSS): what reset_peak sets the high-water mark to."""
    return proc_kib("/proc/self/status", "VmRSS")


def peak_rss() -> int | None:
    """This process's peak resident memory since the last reset_peak, else since it started
    (VmHWM: unlike ru_maxrss, not inherited from the parent across fork and exec)."""
    return proc_kib("/proc/self/status", "VmHWM")


# A worker that keeps every compiled program grows with the suite: on --suite full a JAX worker
# reached 4 GB and the run, 23 GB on a 24 GiB machine. Past this resident set the worker asks its
# backend to drop them between cases (Backend.release); XENTCHECK_RELEASE_BYTES overrides it.
RELEASE_BYTES = 3 << 29  # 1.5 GiB


def release_if_large(backend, limit: int | None = None) -> int | None:
    """Between two cases: when this process's resident set passes `limit` (RELEASE_BYTES), the
    backend drops its compiled programs, Python collects them and glibc's malloc_trim gives the
    freed pages back (without it the resident set barely moves). The resident set before, when
    it released; None otherwise."""
    if limit is None:
        limit = int(os.environ.get("XENTCHECK_RELEASE_BYTES", RELEASE_BYTES))
    before = current_rss() or 0
    if before <= limit:
        return None
    import ctypes
    import gc
    try:
        backend.release()
    except Exception as exc:  # a plugin's release must not cost the run its worker
        print(f"xentcheck worker: {type(exc).__name__} in release(): {exc}", file=sys.stderr)
        return None
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: what was freed stays in the allocator
        pass
    return before
