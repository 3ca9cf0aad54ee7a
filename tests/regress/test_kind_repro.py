"""The distillation and RL repro scripts (regress.repro.write_script): a run writes them, and each,
run on its own, prints the framework's worst entry beside the reference's (its leading digits: the
last ones depend on the CPU's exp and log): torch's NaN JSD beside masked classes, and an entropy
of 0 instead of log 64 in bfloat16 near -1e4."""

import subprocess
import sys

from tests.conftest import require, run_here

JSD = "scale1e+0_float32_8x64_kd-jsd0.25+tg+mask_soft_sum"
ENTROPY = "offset-1e+4_bfloat16_8x64_rl-lp_index_none"


def test_distillation_and_rl_scripts_reproduce_their_findings(tmp_path):
    require("torch")
    out = tmp_path / "o"
    res = run_here("run", "--backends", "torch", "--impls", "kl_div_log_target,log_softmax_gather", "--modes", "eager",
                   "--case", JSD,
                   "--case", ENTROPY, "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    scripts = {p.name: p for p in (out / "repro").glob("*.py")}
    jsd = scripts[f"torch.kl_div_log_target.eager__{JSD}.py"]
    ent = scripts[f"torch.log_softmax_gather.eager__{ENTROPY}.py"]
    printed = {}
    for name, script in (("jsd", jsd), ("entropy", ent)):
        run = subprocess.run([sys.executable, script.name], cwd=script.parent, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        printed[name] = run.stdout
    assert "loss[] framework nan reference 0.420044124" in printed["jsd"]
    assert "recorded verdict nonfinite" in printed["jsd"]
    assert "entropy[0] framework -0.0 reference 4.15888308" in printed["entropy"]
