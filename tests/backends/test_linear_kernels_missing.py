"""The optional kernels (registry.OPTIONAL: cut-cross-entropy, Liger's fused linear CE, jax-cce;
Liger's distillation losses) run only when named, and without their package every case is skipped with the reason
(everywhere: the packages are hidden from the run, installed or not)."""

import json

from tests.conftest import run_here
from xentcheck.backends.registry import OPTIONAL, create, known_names
from xentcheck.run.plan import backend_specs

HIDDEN = {"cut_cross_entropy": ("cce", "cce-triton"), "liger_kernel": ("liger-linear",), "jax_cce": ("jax-cce",)}


def test_optional_kernels_are_named_never_default():
    kinds = {"cce": {"linear"}, "cce-triton": {"linear"}, "liger-linear": {"linear"}, "jax-cce": {"linear"},
             "liger-distill": {"distill", "lindistill"}, "liger-grpo": {"grpo"}}  # the kinds each computes
    assert set(OPTIONAL) == set(kinds)
    default = backend_specs(None, ())
    assert not set(OPTIONAL) & set(default) and not set(OPTIONAL) & set(known_names())
    assert backend_specs("numpy,cce,jax-cce", ()) == ["numpy", "cce", "jax-cce"]
    for name in OPTIONAL:  # importing an adapter imports no framework: load() does
        b = create(name)
        assert b.name == name and {v.kind for v in b.variants()} == kinds[name]


def test_without_their_packages_every_case_is_skipped_with_the_reason(tmp_path):
    hidden = tmp_path / "hide"
    for module in HIDDEN:  # a package of that name that fails to import, first on the path
        (hidden / module).mkdir(parents=True)
        (hidden / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n")
    out = tmp_path / "o"
    case = "dominant_float32_16x2000_lin64_index_mean"
    res = run_here("run", "--backends", ",".join(OPTIONAL), "--case", case, "--out", str(out), "--no-progress",
                  env={"PYTHONPATH": str(hidden)})
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["backend"] for r in recs} == set(OPTIONAL)
    for names in HIDDEN.values():
        for r in (r for r in recs if r["backend"] in names):
            assert r["verdict"] == "skipped", r
            reason = r["reasons"][0]
            # the kernel's module, or torch / jax where even that is absent (a CI without frameworks)
            assert reason.startswith(f"{r['backend']}: framework not installed (No module named "), reason
            assert "pip install 'xentcheck[" in reason, reason
    summary = json.loads((out / "summary.json").read_text())
    assert {b["name"]: b["status"] for b in summary["backends"]} == dict.fromkeys(OPTIONAL, "missing")
