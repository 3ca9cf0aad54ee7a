"""Work handed to a forked child process while the parent goes on with other work.

At the end of a run the parent draws the report's figures (matplotlib) and writes repro/
(references, zlib); both are mostly Python that holds the GIL, so threads would take turns on one
core. A forked child starts at once with everything already imported and loaded, and runs on the
other core. Fork from the main thread while no other thread of ours runs (a lock held by another
thread at fork time stays held in the child). Where fork is unavailable, or the child fails, the
work runs in this process when its result is asked for, so a bug still shows its traceback here.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from typing import Any


def start(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Run fn(*args) in a forked child; returns a function that waits for its (picklable) result."""
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform
        return lambda: fn(*args)
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
    try:
        proc.start()
    except OSError:  # no memory or process slots for a child: do it here
        recv.close()
        send.close()
        return lambda: fn(*args)
    send.close()  # the child's end: EOF here when the child dies without an answer

    def result() -> Any:
        try:
            ok, value = recv.recv()
        except (EOFError, OSError):
            ok, value = False, None
        finally:
            recv.close()
            proc.join()
        return value if ok else fn(*args)

    return result


def _child(send, fn: Callable[..., Any], args: tuple) -> None:
    try:
        value = fn(*args)
    except BaseException:  # the parent redoes the work and shows the error
        send.send((False, None))
        return
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    send.send((True, value))
