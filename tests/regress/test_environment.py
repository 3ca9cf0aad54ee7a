"""environment.json: the machine, the interpreter, numerics settings and every backend's build."""

import json
import sys

from tests.conftest import run_here


def test_environment_json_records_what_numerics_depend_on(tmp_path):
    out = tmp_path / "o"
    res = run_here("run", "--backends", "numpy,torch", "--case", "scale1e+0_float32_16x10_index_mean", "--out", str(out),
                  "--no-progress", env={"TF_ENABLE_ONEDNN_OPTS": "0", "XLA_FLAGS": "--xla_cpu_enable_fast_math=false"})
    assert res.returncode == 0, res.stderr
    env = json.loads((out / "environment.json").read_text())
    assert env["python"] == sys.version.split()[0] and env["executable"] == sys.executable
    assert env["cpu"] and env["cpu_count"] >= 1 and env["platform"] and env["os_release"]
    if sys.platform == "linux":
        assert "sse2" in env["cpu_flags"] or "fp" in env["cpu_flags"]  # x86-64 or arm64
    assert env["packages"]["numpy"] and env["packages"]["torch"]
    # variables that change numerics: set by the user, or pinned by xentcheck for its workers
    assert env["numerics_env"]["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert env["numerics_env"]["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
    assert env["numerics_env"]["OMP_NUM_THREADS"] == "1"
    torch = env["backends"]["torch"]
    assert torch["status"] == "ok" and torch["version"].startswith(env["packages"]["torch"].split("+")[0])
    assert {"cuda", "cudnn", "allow_tf32", "num_threads", "cpu_capability"} <= set(torch["settings"])
    assert env["backends"]["numpy"]["executable"] == sys.executable
    # the same fingerprint is in summary.json, and the report shows it
    assert json.loads((out / "summary.json").read_text())["environment"]["cpu_flags"] == env["cpu_flags"]
