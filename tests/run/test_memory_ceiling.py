"""The worker memory ceiling (--worker-memory, xentcheck.run.memory): sizes as given, and a plugin
that touches more memory than its ceiling, itself or in a child process, ends as `crashed` with
the reason while the run, the other backends and every other process go on. Only NumPy and a toy
plugin (tests/helpers/toy_backends/memory_hog.py) run here, under a 300 MiB ceiling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from xentcheck.core.cases import default_suite
from xentcheck.run import memory
from xentcheck.run import plan as runplan

PLUGIN = ROOT / "tests" / "helpers" / "toy_backends" / "memory_hog.py"
IDS = [c.id for c in default_suite(["float32"])[:4]]
CEILING = 300 << 20
HOG = {IDS[1]: "self", IDS[2]: "child"}  # each touches 1 GiB


# --- sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [
    ("2G", 2 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), ("2gb", 2 << 30), (" 300 MiB ", 300 << 20),
    ("0.5T", 1 << 39), ("1048576K", 1 << 30), ("3000000000", 3_000_000_000), ("64M", memory.MIN_CEILING),
    ("none", None), ("NONE", None),
])
def test_size_is_parsed_in_binary_units(text, size):
    assert memory.parse(text) == size


@pytest.mark.parametrize("text, message", [
    ("2X", "--worker-memory takes a size such as 2G"), ("", "takes a size"), ("G", "takes a size"),
    ("-1G", "takes a size"), ("1e9", "takes a size"), ("2 GiBs", "takes a size"), ("2G2", "takes a size"),
    ("10", "--worker-memory must be at least 64 MiB, got '10'"), ("63M", "at least 64 MiB"),
    ("1" + "0" * 400 + "G", "at least 64 MiB"),
])
def test_bad_size_is_one_line_value_error(text, message):
    with pytest.raises(ValueError) as info:
        memory.parse(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_auto_is_half_the_memory_this_process_may_use():
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    usable = memory.machine_memory()
    assert usable is not None and 0 < usable <= total
    assert memory.parse("auto") == memory.default() == usable // 2
    assert runplan.RunPlan(backends=["numpy"], dtypes=["float32"], seed=0, cases=default_suite()[:1]).worker_memory \
        == usable // 2


def test_sizes_read_as_people_write_them():
    assert [memory.describe(s) for s in (300 << 20, 2 << 30, 2254857830)] == ["300 MiB", "2.0 GiB", "2.1 GiB"]


@pytest.mark.parametrize("stored", ["2G", 2.5e9, True, 1000, -1, [1]])
def test_run_json_ceiling_must_be_bytes_or_null(stored):
    plan = runplan.RunPlan(backends=["numpy"], dtypes=["float32"], seed=0, cases=default_suite()[:1])
    with pytest.raises(ValueError, match="field 'worker_memory' must be null or a number of bytes"):
        runplan.RunPlan.from_json({**plan.to_json(), "worker_memory": stored})


def test_run_json_without_a_ceiling_gets_this_machines_default():
    plan = runplan.RunPlan(backends=["numpy"], dtypes=["float32"], seed=0, cases=default_suite()[:1],
                           worker_memory=None)
    assert runplan.RunPlan.from_json(plan.to_json()).worker_memory is None
    data = plan.to_json()
    del data["worker_memory"]  # written before the ceiling existed
    assert runplan.RunPlan.from_json(data).worker_memory == memory.default()


# --- a worker past its ceiling ------------------------------------------------------------

def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def by_key(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["case_id"], r["backend"]): r for r in records(out)}


ARGS = ("--backends", "numpy", "--backend-file", str(PLUGIN), "--dtypes", "float32", "--cases", "4",
        "--no-progress", "--no-repro")


@pytest.fixture(scope="module")
def hog_run(tmp_path_factory):
    """The run, with a bystander process of ours that must outlive it."""
    out = tmp_path_factory.mktemp("hog")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        proc = run_cli("run", *ARGS, "--worker-memory", "300M", "--out", str(out),
                       env={"XENTCHECK_TEST_HOG": json.dumps(HOG)}, timeout=120)
        alive = bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    return proc, out, alive


def test_worker_past_its_ceiling_is_crashed_with_the_reason(hog_run):
    _, out, _ = hog_run
    got = by_key(out)
    for case_id in HOG:
        r = got[(case_id, "memory-hog")]
        assert r["verdict"] == "crashed", r
        assert r["exit"]["signal"] == "SIGKILL" and r["exit"]["memory_ceiling"] == CEILING
        assert CEILING < r["exit"]["rss"] < (1 << 30)  # caught on the way up, not after the whole GiB
        assert r["reasons"][0].startswith("worker exceeded the memory ceiling of 300 MiB set by --worker-memory "
                                          "and was killed (RSS ")


def test_the_run_and_the_other_backends_go_on(hog_run):
    proc, out, bystander_alive = hog_run
    assert proc.returncode == 1, proc.stderr
    got = by_key(out)
    assert [(r["case_id"], r["backend"]) for r in records(out)] == [(c, b) for c in IDS for b in ("numpy", "memory-hog")]
    assert all(got[(c, "numpy")]["verdict"] == "pass" for c in IDS)
    assert [got[(c, "memory-hog")]["verdict"] for c in IDS] == ["pass", "crashed", "crashed", "pass"]  # replaced
    assert bystander_alive
    assert "exceeded the memory ceiling of 300 MiB" in (out / "report.md").read_text()


def test_the_ceiling_is_on_record(hog_run):
    _, out, _ = hog_run
    assert json.loads((out / "run.json").read_text())["worker_memory"] == CEILING
    assert json.loads((out / "summary.json").read_text())["config"]["worker_memory"] == CEILING


def _interrupted_copy(out: Path, folder: Path) -> Path:
    """The run's folder as if it had been killed after its first case."""
    folder.mkdir()
    (folder / "run.json").write_bytes((out / "run.json").read_bytes())
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (folder / "results.jsonl").write_text("".join(lines[:2]))
    return folder


def test_resume_keeps_the_ceiling(hog_run, tmp_path):
    _, out, _ = hog_run
    folder = _interrupted_copy(out, tmp_path / "resumed")
    proc = run_cli("run", "--resume", str(folder), "--no-progress", "--no-repro",
                   env={"XENTCHECK_TEST_HOG": json.dumps({IDS[1]: "self"})}, timeout=120)
    assert proc.returncode == 1, proc.stderr
    got = by_key(folder)
    assert got[(IDS[1], "memory-hog")]["exit"]["memory_ceiling"] == CEILING
    assert [got[(c, "memory-hog")]["verdict"] for c in IDS] == ["pass", "crashed", "pass", "pass"]
    assert json.loads((folder / "summary.json").read_text())["config"]["worker_memory"] == CEILING


def test_resume_may_lift_the_ceiling(hog_run, tmp_path):
    _, out, _ = hog_run
    folder = _interrupted_copy(out, tmp_path / "lifted")
    proc = run_cli("run", "--resume", str(folder), "--no-progress", "--no-repro", "--worker-memory", "none",
                   env={"XENTCHECK_TEST_HOG": json.dumps({IDS[1]: "self"}), "XENTCHECK_TEST_HOG_BYTES": str(400 << 20)},
                   timeout=120)
    assert proc.returncode == 0, proc.stderr  # 400 MiB: over the stored 300 MiB ceiling
    assert {r["verdict"] for r in records(folder)} == {"pass"}
    assert json.loads((folder / "summary.json").read_text())["config"]["worker_memory"] is None
