"""--executor ray: the backend workers as Ray actors on a local Ray instance this module starts
(one for the module: ray.init takes seconds), on 127.0.0.1 alone. The results must be those of the
local executor, crashes and timeouts included; a run killed part way resumes on Ray;
environment.json names each backend's node. Only NumPy and the toy plugins run here. The runs are
this process's (run_here: it is connected to the instance already) but for the one killed."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import run_cli, run_here
from tests.helpers.procs import descendants, is_loopback, listening, wait_gone
from tests.run.test_reliability import (
    FAULTS,
    IDS,
    NO_PAUSE,
    PLUGINS,
    SLOW_ARGS,
    records,
    start_cli,
    wait_for_lines,
    without_timing,
)
from xentcheck.run.ray_workers import LOCAL_ONLY_ENV

FAULT_ARGS = ("--backends", "numpy", "--backend-file", str(PLUGINS / "faulty.py"), "--dtypes", "float32",
              "--cases", "7", "--case-timeout", "3", "--no-progress", "--no-repro")
# the backends' settings; Ray's local-only mode, read when ray is imported, in this process and in
# every driver: the node is 127.0.0.1 and its servers listen there only (ray_workers.local_only)
ENV = {"XENTCHECK_TEST_FAULTS": json.dumps(FAULTS), "XENTCHECK_TEST_DELAY": "0.3", LOCAL_ONLY_ENV: "0",
       "XENTCHECK_TEST_HOG": json.dumps({IDS[1]: "self"})}  # memory_hog.py touches 1 GiB on this case
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'xentcheck[ray]')")


@pytest.fixture(scope="module")
def cluster():
    """The address of a local Ray instance on 127.0.0.1; its workers (and so the backends') see ENV.
    Its processes are gone when the module ends."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'xentcheck[ray]')")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ENV.items():
            mp.setenv(key, value)  # before `import ray` and ray.init: its processes inherit this environment
        import ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), f"{address}: ray was imported before {LOCAL_ONLY_ENV} was set"
        yield address
    finally:
        started = descendants(os.getpid())
        ray.shutdown()
        assert not wait_gone(started), "Ray left processes behind"


@pytest.fixture(scope="module")
def local_faulty(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    proc = run_here("run", *FAULT_ARGS, "--out", str(out), env=ENV)
    assert proc.returncode == 1, proc.stderr
    return out


@needs_ray
def test_the_instance_listens_on_loopback_only(cluster):
    """Every server of the instance (GCS, raylet, agents, the workers' and this driver's own)."""
    addresses = listening(descendants(os.getpid()) | {os.getpid()})
    assert addresses and all(map(is_loopback, addresses)), addresses


def test_a_local_instance_of_ours_is_put_on_loopback():
    """`--executor ray` without an address: the instance xentcheck starts takes 127.0.0.1 (Ray's
    local-only mode, set before ray is imported) unless the caller chose otherwise."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'xentcheck[ray]')")
    code = ("import os; from xentcheck.run import ray_workers; ray_workers.local_only(); "
            "from ray._private.services import get_node_ip_address; "
            f"print(os.environ[{LOCAL_ONLY_ENV!r}], get_node_ip_address())")
    env = {k: v for k, v in os.environ.items() if k != LOCAL_ONLY_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert out.stdout.split() == ["0", "127.0.0.1"], out.stderr
    env[LOCAL_ONLY_ENV] = "1"  # the caller's own setting stays (the address is then the machine's, if it has one)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert out.stdout.split()[0] == "1", out.stdout


@needs_ray
def test_ray_results_equal_local_ones_crashes_and_timeout_included(cluster, local_faulty, tmp_path):
    out = tmp_path / "ray"
    proc = run_here("run", *FAULT_ARGS, "--out", str(out), "--executor", "ray", "--ray-address", cluster, env=ENV)
    assert proc.returncode == 1, proc.stderr
    assert without_timing(out) == without_timing(local_faulty)
    verdicts = {r["case_id"]: (r["verdict"], r["reasons"], r.get("exit")) for r in records(out) if r["backend"] == "faulty"}
    by_fault = {fault: verdicts[case_id] for case_id, fault in FAULTS.items()}
    assert by_fault["segfault"] == ("crashed", ["worker killed by signal SIGSEGV"], {"signal": "SIGSEGV"})
    assert by_fault["exit"] == ("crashed", ["worker exited with status 3"], {"code": 3})
    assert by_fault["hang"][:2] == ("timeout", ["no answer within 3 s; worker killed"])
    assert sum(v[0] == "pass" for v in verdicts.values()) == 7 - len(FAULTS)

    env = json.loads((out / "environment.json").read_text())
    assert env["executor"]["kind"] == "ray" and env["executor"]["address"] == cluster
    from importlib.metadata import version
    for name in ("numpy", "faulty"):
        node = env["backends"][name]["node"]
        assert node["host"] == socket.gethostname() and len(node["node_id"]) > 20
        assert node["environment"]["packages"]["numpy"] == version("numpy")
        assert node["environment"]["python"] == sys.version.split()[0]
    assert "node" not in json.loads((local_faulty / "environment.json").read_text())["backends"]["numpy"]
    assert "executor" not in json.loads((local_faulty / "environment.json").read_text())


@needs_ray
def test_a_ray_run_killed_part_way_resumes_to_the_local_results(cluster, tmp_path):
    local = tmp_path / "local"
    assert run_here("run", *SLOW_ARGS, "--out", str(local), env={**ENV, **NO_PAUSE}).returncode == 1
    out = tmp_path / "killed"
    proc = start_cli("run", *SLOW_ARGS, "--out", str(out), "--executor", "ray", "--ray-address", cluster, env=ENV)
    wait_for_lines(proc, out / "results.jsonl", 4, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert 4 <= len(records(out)) < 20

    resumed = run_here("run", "--resume", str(out), "--no-progress", "--executor", "ray", "--ray-address", cluster,
                       env=ENV)
    assert resumed.returncode == 1, resumed.stderr
    assert "20 results" in resumed.stdout
    assert without_timing(out) == without_timing(local)
    assert (out / "logs" / "worker-1.log").exists()  # the nodes' worker logs come back here


@needs_ray
def test_a_node_kills_its_worker_past_the_memory_ceiling(cluster, tmp_path):
    """The node watches its worker's memory as a local run does: the kill comes back as a crash."""
    out = tmp_path / "hog"
    proc = run_cli("run", "--backends", "numpy", "--backend-file", str(PLUGINS / "memory_hog.py"), "--dtypes",
                   "float32", "--cases", "3", "--worker-memory", "300M", "--no-progress", "--no-repro",
                   "--out", str(out), "--executor", "ray", "--ray-address", cluster, env=ENV, timeout=180)
    assert proc.returncode == 1, proc.stderr
    got = {(r["case_id"], r["backend"]): r for r in records(out)}
    hog = got[(IDS[1], "memory-hog")]
    assert hog["verdict"] == "crashed" and hog["exit"]["memory_ceiling"] == 300 << 20 and hog["exit"]["rss"] > 300 << 20
    assert hog["reasons"][0].startswith("worker exceeded the memory ceiling of 300 MiB set by --worker-memory")
    assert [r["verdict"] for key, r in got.items() if key != (IDS[1], "memory-hog")] == ["pass"] * 5


def test_executor_ray_without_ray_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from xentcheck.cli import main
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    status = main(["run", "--backends", "numpy", "--cases", "1", "--out", str(tmp_path / "out"), "--executor", "ray"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == "xentcheck: error: --executor ray needs Ray: pip install 'xentcheck[ray]'\n"
    assert not (tmp_path / "out").exists()  # stopped before the folder was made


def test_ray_address_without_executor_ray_is_a_usage_error(tmp_path, capsys):
    from xentcheck.cli import main
    status = main(["run", "--backends", "numpy", "--cases", "1", "--out", str(tmp_path / "out"),
                   "--ray-address", "10.0.0.1:6379"])
    assert status == 2
    assert capsys.readouterr().err == "xentcheck: error: --ray-address needs --executor ray\n"


@pytest.mark.slow  # end to end, tens of seconds; its parts have faster tests
@needs_ray
def test_a_local_run_cut_short_is_finished_on_ray(cluster, local_faulty, tmp_path):
    """A local run's folder, cut short, is finished on Ray: the executor is not part of the plan."""
    out = tmp_path / "cut"
    shutil.copytree(local_faulty, out)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:5]))
    resumed = run_cli("run", "--resume", str(out), "--no-progress", "--executor", "ray", "--ray-address", cluster,
                      env=ENV, timeout=180)
    assert resumed.returncode == 1, resumed.stderr
    assert without_timing(out) == without_timing(local_faulty)


def test_unknown_executor_is_refused():
    from xentcheck.run.executor import Executor
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        Executor("dask").check()


@needs_ray
def test_a_worker_whose_actor_is_lost_ends_as_a_crash(cluster, tmp_path):
    """An actor that dies (its node gone: here killed from outside) ends its worker: the Runner
    sees the end it sees when a local process dies, and the log and exit say what happened."""
    import queue

    import ray

    from xentcheck.run.ray_workers import factory
    events: queue.Queue = queue.Queue()
    worker = factory("cpu")(0, "numpy", events, tmp_path)
    worker.start()
    index, gen, hello = events.get(timeout=120)
    assert (index, gen, hello["op"], hello["status"]) == (0, 1, "hello", "ok")
    assert hello["node"]["host"] == socket.gethostname() and worker.running()
    ray.kill(worker.actor)
    assert events.get(timeout=60) == (0, 1, None)
    assert not worker.running()
    assert worker.exit_status() == {"lost": "ActorDiedError"}
    assert worker.exit_description() == "was lost with its Ray actor (ActorDiedError)"
    worker.start()  # a new generation on a new actor, as a crashed local worker is started again
    assert events.get(timeout=120)[:2] == (0, 2)
    worker.quit()
    assert worker.exit_status() == {"code": 0}


@needs_ray
def test_a_worker_waiting_for_a_free_core_is_not_overdue(cluster, tmp_path):
    """Two cores, three workers: the third actor waits for a core without its start-up timeout
    running out, and starts once the first worker quits."""
    import queue
    import time

    from xentcheck.run.ray_workers import factory
    events: queue.Queue = queue.Queue()
    workers = [factory("cpu")(i, "numpy", events, tmp_path) for i in range(3)]
    for w in workers:
        w.start()
        w.expect_hello(2.0)
    hellos = {events.get(timeout=120)[0], events.get(timeout=120)[0]}
    waiting = ({0, 1, 2} - hellos).pop()
    time.sleep(3)
    assert events.empty() and not workers[waiting].overdue(time.monotonic())
    workers[min(hellos)].quit()
    assert events.get(timeout=60) == (min(hellos), 1, None)  # its end, then the third one's hello
    index, _, hello = events.get(timeout=120)
    assert index == waiting and hello["op"] == "hello" and workers[waiting].deadline > time.monotonic()
    for w in workers:
        w.quit()


@needs_ray
def test_cuda_on_a_cluster_without_gpu_is_one_line_and_exit_2(cluster, tmp_path):
    proc = run_here("run", "--backends", "numpy", "--cases", "1", "--device", "cuda", "--out", str(tmp_path / "out"),
                    "--executor", "ray", "--ray-address", cluster, env=ENV)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == \
        "xentcheck: error: no node of the Ray cluster has a CPU and a GPU for a backend worker (--device cuda)"
    assert not (tmp_path / "out").exists()


@needs_ray
def test_a_variants_ranks_run_on_its_workers_node_and_a_killed_rank_is_crashed(cluster, tmp_path):
    """A sharded case on Ray: the worker (an actor) starts its variant's gloo ranks as its own
    children, on its node; a rank killed mid-collective is that variant's `crashed`, and the run goes
    on to the careful toy, which passes."""
    pytest.importorskip("torch")
    from tests.backends.test_sharded_toys import SPLIT, TOYS, VOCAB_LS
    out = tmp_path / "ray"
    proc = run_here("run", "--backend-file", f"{TOYS}::RankDies", "--backend-file", f"{TOYS}::ShardedCareful",
                    "--case", VOCAB_LS, "--case", SPLIT, "--out", str(out), "--no-progress", "--no-repro",
                    "--executor", "ray", "--ray-address", cluster, env=ENV)
    assert proc.returncode == 1, proc.stderr
    by = {(r["backend"], r["case_id"]): r for r in records(out)}
    died = by[("sharded-rank-dies", VOCAB_LS)]
    assert died["verdict"] == "crashed" and "rank 1 killed by SIGKILL" in died["reasons"][0], died
    for case_id in (VOCAB_LS, SPLIT):
        assert by[("sharded-careful", case_id)]["verdict"] == "pass"
    env = json.loads((out / "environment.json").read_text())
    assert env["backends"]["sharded-careful"]["node"]["host"] == socket.gethostname()
