"""One rank of a variant run on several ranks (xentcheck.run.ranks): `launch.py --rank TASK`.

TASK (JSON) names the backend (its module or file and class), the variant (impl, mode), the case,
the file holding its inputs and the kind's reader of it ("module:function"), the device, this rank
(None: the process holds every rank), the world size, and where to
write. The rank reads the case's inputs, takes its shard (the kind's `shard`), joins the
gloo group when it has a rank, runs the variant's adapter on the shard, and writes the loss and
its shards of the kind's gradients to `<out>.npz`, their dtypes and notes to `<out>.json`. A failure it can name
(an exception; the framework or a library missing: "skipped") is written to `<out>.json` and ends
it with status RANK_FAILED; a crash is whatever the kernel says.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import Any

import numpy as np


def _backend(task: dict):
    ref = task["backend"]
    if ref.get("file"):
        from xentcheck.backends.registry import create
        return create(f"file:{ref['file']}::{ref['cls']}")
    return getattr(importlib.import_module(ref["module"]), ref["cls"])()


def _inputs(task: dict):
    """The case's inputs as the worker wrote them, read back by the function the kind named
    (`load_inputs`, "module:function"): the run layer knows no kind's arrays."""
    module, name = task["load_inputs"].split(":")
    return getattr(importlib.import_module(module), name)(task["inputs_file"])


def _join(task: dict) -> None:
    """torch.distributed over gloo, the store on the socket the launcher bound (rank 0 holds it)."""
    import torch.distributed as dist
    rank, world, port = task["rank"], task["world"], task["port"]
    fd = task.get("listen_fd")
    store = dist.TCPStore("127.0.0.1", port, world, rank == 0, master_listen_fd=fd, use_libuv=False) \
        if rank == 0 else dist.TCPStore("127.0.0.1", port, world, False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)


def _report(out: str, status: str, reason: str) -> int:
    from xentcheck.run.ranks import RANK_FAILED
    with open(f"{out}.json", "w") as f:
        json.dump({"status": status, "reason": reason}, f)
    return RANK_FAILED


def run(task: dict) -> int:
    from xentcheck.core.cases import Case
    from xentcheck.core.dtypes import transport_dtype
    from xentcheck.problems import problem_of
    out = task["out"]
    try:
        backend = _backend(task)
        backend.load()
    except ImportError as exc:
        return _report(out, "skipped", f"framework not installed in the rank: {exc}")
    case = Case.from_id(task["case_id"], task.get("inputs"))
    problem = problem_of(case)
    variant = next(v for v in backend.variants() if (v.impl, v.mode) == tuple(task["variant"]))
    assert problem.shard is not None  # a kind run on ranks declares its shards
    shard = problem.shard(case, _inputs(task), task["rank"], task["world"])
    try:
        if task["rank"] is not None:
            _join(task)
        result = backend.run_variant(variant, case, shard, task["device"])
    except ImportError as exc:
        return _report(out, "skipped", f"{variant.impl}: not installed ({exc})")
    except Exception as exc:
        return _report(out, "error", f"rank {task['rank']}: {type(exc).__name__}: {exc}\n"
                                     f"{traceback.format_exc(limit=-3)}")
    arrays = {"loss": np.asarray(result.loss)} | {o.name: np.asarray(result.grads[o.name]) for o in problem.gradients}
    payload: dict[str, Any] = {k: a.astype(transport_dtype(a.dtype)) for k, a in arrays.items()}
    np.savez(f"{out}.npz", **payload)
    first = arrays[problem.gradients[0].name]
    with open(f"{out}.json", "w") as f:
        json.dump({"status": "ok", "loss_dtype": result.loss_dtype or arrays["loss"].dtype.name,
                   "grad_dtype": result.grad_dtype or first.dtype.name, "notes": list(result.notes)}, f)
    return 0


def main(argv: list[str]) -> int:
    os.dup2(2, 1)  # a framework's chatter goes to the rank's log
    code = run(json.loads(argv[0]))
    sys.stderr.flush()
    os._exit(code)  # no teardown of the process group: the launcher reaps the ranks together
