"""Backend workers as Ray actors (`--executor ray`): the same worker processes, on cluster nodes.

Each generation of a backend's worker is one Ray actor, `NodeHost`, on whichever node Ray places
it: there it starts the very worker process a local run starts (processes.Worker, run/launch.py,
the node's own interpreter and frameworks) and relays its JSON lines. On this side `RayWorker`
has processes.Worker's interface, so the Runner's event loop, scheduling, ordering, resume and
evaluation are the same code for both executors:

- a message the worker writes reaches the Runner's queue through `NodeHost.next`, polled by one
  thread per generation; a "result" brings the variants' .npz files along (the node's scratch
  folder is not this machine's), written where the Runner reads them before it sees the result;
- requests go out through `NodeHost.send`, numbered: a threaded actor may run calls out of order,
  so the node writes them to the worker in the order they were made;
- the worker process's exit (signal or code, or the memory ceiling it passed: the node watches
  its worker's memory as a local run does) and its stderr come back when it ends, so a crash is
  recorded `crashed` with the same reason as locally, and the stderr lands in logs/ here;
  an actor that is lost (its node gone) ends its worker as a crash too;
- the hello gains `node`: host, address, node id and the node's fingerprint (environment.json).

Requires every node to have xentcheck and the backends' frameworks installed, as a local run does.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from xentcheck.run.processes import Worker, scratch_dir
from xentcheck.run.protocol import Quit

MAX_CALLS = 16  # an actor's concurrent calls: one blocked in next(), a few sends, quit or kill
END_TIMEOUT = 30.0  # seconds to wait for a node to stop its worker process


def _ray() -> Any:
    """The ray module; ValueError (one line) when it is not installed."""
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install 'xentcheck[ray]'") from None
    return ray


# Ray's local-only mode (its default on macOS and Windows), read when ray is imported: the node's
# address is 127.0.0.1 and every server of an instance started here listens on it alone. On Linux
# Ray otherwise takes the machine's routable address and listens on every interface.
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def local_only() -> None:
    """Put a Ray instance this process starts on 127.0.0.1 (LOCAL_ONLY_ENV, unless the caller set
    it). Too late once ray is imported: the instance then takes Ray's default."""
    if "ray" not in sys.modules:
        os.environ.setdefault(LOCAL_ONLY_ENV, "0")


def connect(address: str | None) -> None:
    """Connect to the cluster at `address` (None: $RAY_ADDRESS, else start a fresh local instance,
    on 127.0.0.1: local_only), unless this process is connected already."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        local_only()
    ray = _ray()
    if ray.is_initialized():
        return
    try:
        # "local": a new instance, never a `ray start` cluster that happens to run on this machine
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
    except Exception as exc:  # ConnectionError, a timeout, a version mismatch...
        where = f"at {address}" if address else "(local instance)"
        raise ValueError(f"cannot connect to the Ray cluster {where}: {type(exc).__name__}: {exc}") from None


def check_resources(device: str) -> None:
    """ValueError (one line) when no node of the cluster could ever host a worker: an actor
    waits for a free core without a deadline (RayWorker.expect_hello)."""
    ray = _ray()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": 1.0, **({"GPU": 0.01} if device == "cuda" else {})}
    if not any(all(res.get(k, 0) >= v for k, v in need.items()) for res in nodes):
        what = "a CPU and a GPU" if device == "cuda" else "a CPU"
        raise ValueError(f"no node of the Ray cluster has {what} for a backend worker (--device {device})")


def describe(address: str | None) -> dict:
    ray = _ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"kind": "ray", "address": address, "ray_version": ray.__version__,
            "nodes": sorted(n.get("NodeManagerHostname", "?") for n in nodes)}


class NodeHost:
    """On a node (a Ray actor): one generation of a backend's worker process."""

    def __init__(self, index: int, spec: str, interpreters: dict[str, str], env: dict[str, str],
                 memory_ceiling: int | None = None):
        self.events: queue.Queue = queue.Queue()
        self.logs = Path(tempfile.mkdtemp(prefix="xentcheck-node-logs-"))
        self.scratch = scratch_dir()
        # the node watches its worker's memory as a local run does: a kill past the ceiling comes back in its exit status
        self.worker = Worker(index, spec, self.events, self.logs, interpreters, env, memory_ceiling)
        self.outs: collections.deque[tuple[str, str]] = collections.deque()  # (caller's out, node's out) per run request
        self.turn = threading.Condition()
        self.next_seq = 0

    def start(self) -> dict:
        """Start the worker process; returns where it runs."""
        import ray

        from xentcheck.run.environment import fingerprint
        self.worker.start()
        return {"host": socket.gethostname(), "ip": ray.util.get_node_ip_address(),
                "node_id": ray.get_runtime_context().get_node_id(), "environment": fingerprint()}

    def send(self, seq: int, msg: dict) -> bool:
        """Write request number `seq` to the worker once every earlier one is written."""
        with self.turn:
            self.turn.wait_for(lambda: self.next_seq == seq)
            if msg.get("op") == "run":  # the worker writes its arrays here, next() sends them back
                local = str(self.scratch / Path(msg["out"]).name)
                self.outs.append((msg["out"], local))
                msg = {**msg, "out": local}
            ok = self.worker.send(msg)
            self.next_seq += 1
            self.turn.notify_all()
        return ok

    def next(self) -> dict:
        """The worker's next message with the files of a result ({caller's path: bytes}), or
        its end: {"exit": exit status, "log": its stderr}."""
        _, _, msg = self.events.get()
        if msg is None:
            return self._end()
        files = {}
        if msg.get("op") == "result" and self.outs:  # every file the worker wrote under the request's prefix
            theirs, local = self.outs.popleft()
            prefix = Path(local).name
            for path in self.scratch.glob(f"{prefix}-*"):
                files[theirs + path.name[len(prefix):]] = path.read_bytes()
                path.unlink()
        return {"msg": msg, "files": files}

    def kill(self) -> dict:
        self.worker.kill()
        return self._end()

    def quit(self) -> dict:
        self.worker.quit()
        return self._end()

    def _end(self) -> dict:
        status = self.worker.exit_status()
        log = self.worker.log_path.read_bytes() if self.worker.log_path and self.worker.log_path.exists() else b""
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        return {"exit": status, "log": log}


_HOST: dict[str, Any] = {}  # the actor class, made once per resource request


def _host_class(device: str) -> Any:
    if device not in _HOST:
        ray = _ray()
        # one core, as a local worker; on cuda a sliver of a GPU: a node that has one, all backends sharing it
        _HOST[device] = ray.remote(num_cpus=1, num_gpus=0.01 if device == "cuda" else 0,
                                   max_concurrency=MAX_CALLS, scheduling_strategy="SPREAD")(NodeHost)
    return _HOST[device]


def factory(device: str):
    """RayWorker's maker for the Runner (processes.Worker's arguments)."""
    host = _host_class(device)

    def make(index: int, spec: str, events, log_dir: Path | None, interpreters: dict[str, str] | None = None,
             env: dict | None = None, memory_ceiling: int | None = None) -> RayWorker:
        return RayWorker(host, index, spec, events, log_dir, interpreters, env, memory_ceiling)
    return make


class RayWorker(Worker):
    """processes.Worker's interface, its process on a NodeHost actor."""

    def __init__(self, host: Any, index: int, spec: str, events, log_dir: Path | None,
                 interpreters: dict[str, str] | None = None, env: dict | None = None,
                 memory_ceiling: int | None = None):
        super().__init__(index, spec, events, log_dir, interpreters, env, memory_ceiling)
        self.host = host
        self.actor: Any = None
        self.actor_gen = 0  # the generation self.actor hosts (the Runner bumps `generation` past a killed one)
        self.seq = 0
        self.started: set[int] = set()  # generations whose actor got a node and started the process
        self.ended: dict[int, dict] = {}  # generation -> its exit status
        self.lock = threading.Lock()
        self.hello_timeout = 0.0

    def start(self) -> None:
        self._stop(self.actor, self.actor_gen, "kill")  # nothing when that generation has ended already
        self.generation += 1
        self.seq = 0
        self.actor_gen = self.generation
        self.actor = self.host.remote(self.index, self.spec, self.interpreters, self.env, self.memory_ceiling)
        threading.Thread(target=self._relay, args=(self.actor, self.generation), daemon=True).start()

    def _relay(self, actor: Any, gen: int) -> None:
        """Post the generation's messages on the Runner's queue, then its end (None)."""
        import ray
        try:
            node = ray.get(actor.start.remote())
            self.started.add(gen)
            if gen == self.actor_gen and self.hello_timeout:  # the start-up time runs from here
                self.deadline = time.monotonic() + self.hello_timeout
            while True:
                reply = ray.get(actor.next.remote())
                if "exit" in reply:
                    self._ended(gen, reply)
                    break
                msg = reply["msg"]
                for path, data in reply["files"].items():
                    Path(path).write_bytes(data)
                if msg.get("op") == "hello":
                    msg["node"] = node
                self.events.put((self.index, gen, msg))
        except Exception as exc:  # the actor died (its node lost, or killed by us)
            self._ended(gen, {"exit": {"lost": f"{type(exc).__name__}"}, "log": b""})
        try:
            ray.kill(actor)
        except Exception:
            pass
        self.events.put((self.index, gen, None))

    def _ended(self, gen: int, reply: dict) -> None:
        """Record how generation `gen` ended and append its stderr to the log here (once)."""
        with self.lock:
            if gen in self.ended:
                return
            self.ended[gen] = reply["exit"]
            if self.log_dir is not None:
                self.log_path = self.log_dir / f"worker-{self.index}.log"
                with open(self.log_path, "ab") as log:
                    offset = log.tell()
                    log.write(reply["log"])
                if gen == self.actor_gen:
                    self.log_offset = offset

    def _stop(self, actor: Any, gen: int, how: str) -> None:
        """End generation `gen`'s worker process ("kill" or "quit") and its actor."""
        if actor is None or gen in self.ended:
            return
        import ray
        try:
            if gen not in self.started:  # still waiting for a node (the cluster is full): nothing to stop there
                raise TimeoutError("never started")
            self._ended(gen, ray.get(getattr(actor, how).remote(), timeout=END_TIMEOUT))
        except Exception as exc:
            self._ended(gen, {"exit": {"lost": type(exc).__name__}, "log": b""})
        try:
            ray.kill(actor)
        except Exception:
            pass

    def expect_hello(self, timeout: float) -> None:
        """The start-up timeout runs once the actor has a node: while the cluster's cores are all
        busy (with the run's other backends) it waits for one (check_resources: one can exist)."""
        self.hello_timeout = timeout
        self.deadline = 0.0

    def running(self) -> bool:
        return self.actor is not None and self.actor_gen not in self.ended

    def send(self, msg: dict) -> bool:
        if not self.running():
            return False
        self.actor.send.remote(self.seq, msg)
        self.seq += 1
        return True

    def exit_status(self) -> dict:
        deadline = time.monotonic() + END_TIMEOUT  # the relay records the end just before posting it
        while self.actor_gen not in self.ended and time.monotonic() < deadline:
            time.sleep(0.01)
        return dict(self.ended.get(self.actor_gen, {}))

    def exit_description(self) -> str:
        how = self.exit_status()
        if "lost" in how:
            return f"was lost with its Ray actor ({how['lost']})"
        return super().exit_description()

    def kill(self) -> None:
        self._stop(self.actor, self.actor_gen, "kill")

    def quit(self) -> None:
        if self.running():
            self.send(Quit().to_dict())
            self._stop(self.actor, self.actor_gen, "quit")
