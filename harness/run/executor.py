"""Where a run's backend workers run: on this machine (`local`) or as Ray actors on the cluster Ray
is connected to (`ray`, xentcheck.run.ray_workers). Only the workers move: scheduling, ordering,
resume and evaluation stay in this process, so both executors write the same results.

Not part of the plan (run.json): a run started on one executor may be resumed on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xentcheck.run.processes import Worker

EXECUTORS = ("local", "ray")

# makes backend worker `index` (spec, events queue, log folder, interpreters), as processes.Worker does
WorkerFactory = Callable[..., Worker]


@dataclass(frozen=True)
class Executor:
    kind: str = "local"
    address: str | None = None  # ray: HOST:PORT of a running cluster (None: $RAY_ADDRESS, else a local instance)

    def check(self) -> None:
        """ValueError (one line) for an unknown executor or an address without Ray."""
        if self.kind not in EXECUTORS:
            raise ValueError(f"unknown executor {self.kind!r} (choose from {', '.join(EXECUTORS)})")
        if self.address is not None and self.kind != "ray":
            raise ValueError("--ray-address needs --executor ray")

    def connect(self, device: str = "cpu") -> None:
        """Connect to the cluster (once per process); ValueError (one line) when Ray is not
        installed, the cluster cannot be reached or has no node for a worker on `device`."""
        self.check()
        if self.kind == "ray":
            from xentcheck.run import ray_workers
            ray_workers.connect(self.address)
            ray_workers.check_resources(device)

    def workers(self, device: str) -> WorkerFactory:
        """What the Runner makes its workers with (connecting first)."""
        self.connect(device)
        if self.kind == "local":
            return Worker
        from xentcheck.run import ray_workers
        return ray_workers.factory(device)

    def describe(self) -> dict:
        """The fingerprint's entry for it: nothing for local (a local run's files stay as they were)."""
        if self.kind == "local":
            return {}
        from xentcheck.run import ray_workers
        return {"executor": ray_workers.describe(self.address)}


LOCAL = Executor()
