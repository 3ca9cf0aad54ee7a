"""Third-party backends: a plugin file and an installed entry point in the xentcheck.backends group."""

import json

import pytest

from tests.conftest import ROOT, run_cli, run_here

PLUGIN = '''
import numpy as np
from xentcheck.backends.base import Backend, Output, one_hot

class Reference64(Backend):
    name = "ep-kernel"
    impl = "entry point example"
    dtypes = ("float64",)

    def compute(self, case, inputs, device):
        x = inputs.logits
        q = one_hot(inputs.labels, case.k) if case.labels == "index" else inputs.labels
        m = x.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
        rows = np.where(q != 0, q * (lse - x), 0).sum(axis=1)
        grad = np.exp(x - lse) * q.sum(axis=1, keepdims=True) - q
        d = case.n if case.reduction == "mean" else 1
        loss = rows if case.reduction == "none" else rows.sum() / d
        return Output(loss=np.asarray(loss), grad=grad / d)
'''


def _install_entry_point(site):
    (site / "my_ep_plugin.py").write_text(PLUGIN)
    dist = site / "my_ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[xentcheck.backends]\nep-kernel = my_ep_plugin:Reference64\n")


@pytest.mark.slow  # end to end, tens of seconds; its parts have faster tests
def test_entry_point_backend_is_listed_and_runs(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install_entry_point(site)
    env = {"PYTHONPATH": str(site)}
    listing = run_cli("backends", "--json", env=env)
    assert listing.returncode == 0
    assert any(i["name"] == "ep-kernel" and i["status"] == "ok" for i in json.loads(listing.stdout))
    out = tmp_path / "o"
    res = run_cli("run", "--backends", "ep-kernel", "--case", "scale1e+0_float64_16x10_index_mean",
                  "--case", "scale1e+1_float64_64x100_soft_sum", "--case", "scale1e+1_float32_64x100_soft_sum",
                  "--out", str(out), env=env)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and {r["backend"] for r in recs} == {"ep-kernel"}
    assert [r["verdict"] for r in recs] == ["pass", "pass", "skipped"]


def test_example_plugin_runs_and_is_checked_against_the_reference(tmp_path):
    out = tmp_path / "o"
    cases = ["scale1e+1_float32_8x32000_soft_mean", "offset1e+8_float32_16x10_index_sum",
             "scale1e+2_float64_64x100_onehot_none", "masked_float32_64x100_soft_mean", "scale1e+0_float16_4x10_index_sum"]
    res = run_here("run", "--backend-file", str(ROOT / "examples/my_backend.py"),
                  *[a for c in cases for a in ("--case", c)], "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in recs] == ["pass"] * 4 + ["skipped"]
    assert recs[0]["backend"] == "online-softmax" and recs[0]["impl"] == "chunked online softmax (NumPy)"


def test_a_file_spec_may_name_one_backend_of_several(tmp_path):
    """file:PATH::NAME (the Python API's way to a caller's class; --backend-file PATH::NAME)."""
    import pytest

    from xentcheck.backends.registry import BackendLoadError, create
    from xentcheck.run.plan import backend_specs

    path = tmp_path / "two.py"
    path.write_text(PLUGIN + "\nclass Other(Reference64):\n    name = 'other'\n\nINSTANCE = Other()\n")
    with pytest.raises(BackendLoadError, match="exactly one Backend subclass"):
        create(f"file:{path}")
    assert create(f"file:{path}::Other").name == "other"
    assert create(f"file:{path}::Reference64").name == "ep-kernel"
    assert create(f"file:{path}::INSTANCE").name == "other"
    with pytest.raises(BackendLoadError, match="defines no 'Missing' at module level"):
        create(f"file:{path}::Missing")
    with pytest.raises(BackendLoadError, match="two.py: np is not a Backend subclass or instance"):
        create(f"file:{path}::np")
    assert backend_specs(None, [f"{path}::Other"]) == [f"file:{path.resolve()}::Other"]
    with pytest.raises(ValueError, match="backend file not found: /no/such.py$"):
        backend_specs(None, ["/no/such.py::Other"])
