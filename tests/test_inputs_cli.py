"""`xentcheck run --inputs FILE` end to end: a user's own batch through every backend, its reports
and repro, resume (the command in this process, its workers in theirs), and bad files refused
before any worker starts (in a `python -m xentcheck` process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import ROOT, require, run_cli, run_here


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _files(tmp_path):
    """The issue's batch: logits [[-inf, 0, 0]] with one-hot labels [[0, 1, 0]], and with index label [1]."""
    x = np.array([[-np.inf, 0.0, 0.0]], np.float32)
    onehot, index = tmp_path / "onehot.npz", tmp_path / "index.npz"
    np.savez(onehot, logits=x, labels=np.array([[0, 1, 0]], np.float32))
    np.savez(index, logits=x, labels=np.array([1]))
    return onehot, index


def test_a_masked_logit_is_nan_on_the_dense_apis_and_passes_on_the_index_apis(tmp_path):
    for module in ("torch", "tensorflow", "jax", "optax"):
        require(module)
    onehot, index = _files(tmp_path)
    out = tmp_path / "o"
    res = run_here("run", "--inputs", str(onehot), "--inputs", str(index), "--backends", "torch,tensorflow,jax",
                  "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr  # discrepancies found
    recs = _records(out)
    by = {(r["case_id"].split("_")[0].split("-")[1], r["backend"], r["impl"]): r for r in recs}
    assert {r["case_id"] for r in recs} == {c for c in json.loads((out / "run.json").read_text())["cases"]}
    # only the two files ran, under ids naming them
    assert {r["case_id"].rsplit("-", 1)[0] for r in recs} == {"file-onehot", "file-index"}
    for key in (("onehot", "torch", "cross_entropy_probs"), ("onehot", "tensorflow", "softmax_ce"),
                ("onehot", "jax", "optax_sce")):
        r = by[key]
        assert r["verdict"] == "nonfinite" and r["labels"] == "onehot", r
        assert r["reasons"][0].startswith("loss: 1 / 1 NaN/inf") and "nan vs 0.693147" in r["reasons"][0]
        assert r["inputs_file"] == str(onehot.resolve())
    for key in (("index", "torch", "cross_entropy_index"), ("index", "tensorflow", "sparse_softmax_ce")):
        assert by[key]["verdict"] == "pass" and by[key]["labels"] == "index", by[key]
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "reports" / "schemas" / "results.schema.json").read_text())
    for r in recs:
        jsonschema.Draft202012Validator(schema).validate(r)
    # reports and repro name the file's case
    report = (out / "report.md").read_text()
    assert "file-onehot-" in report
    repro = sorted(p.name for p in (out / "repro").glob("*.py"))
    assert len(repro) == 3 and all("__file-onehot-" in name for name in repro)


def test_a_numpy_run_resumes_and_shrinks_from_the_file(tmp_path):
    x = np.zeros((4, 5), np.float64)
    x[2, 3] = -np.inf
    labels = np.array([0, 1, 2, 4])
    path = tmp_path / "step41200.npz"
    np.savez(path, logits=x, labels=labels, reduction="none")
    out = tmp_path / "o"
    res = run_here("run", "--inputs", str(path), "--backends", "numpy", "--out", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    first = (out / "results.jsonl").read_text()
    (case_id,) = json.loads((out / "run.json").read_text())["cases"]
    assert case_id.startswith("file-step41200-") and case_id.endswith("_float64_4x5_index_none")
    (out / "results.jsonl").write_text("")  # as if killed before any result: resume runs it again
    res = run_here("run", "--resume", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert [{k: v for k, v in r.items() if k != "timing"} for r in _records(out)] == \
        [{k: v for k, v in json.loads(line).items() if k != "timing"} for line in first.splitlines()]
    # the file changed since: the resume is refused before any worker starts
    np.savez(path, logits=x, labels=labels[::-1].copy(), reduction="none")
    res = run_here("run", "--resume", str(out), "--no-progress")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("xentcheck: error: ")
    assert "the file changed since case file-step41200-" in res.stderr


def test_bad_files_end_in_one_line_and_exit_2_before_any_worker(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, logits=np.ones((2, 3), np.float32), labels=np.array([0, 3]))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 5)
    for path, message in ((bad, "label 3 at [1] is out of range for K = 3 classes"),
                          (junk, "cannot read it as a .safetensors file"),
                          (tmp_path / "batch.h5", "unknown extension '.h5'"),
                          (tmp_path / "gone.npz", "no such file")):
        out = tmp_path / f"out-{path.stem}"
        res = run_cli("run", "--inputs", str(path), "--backends", "numpy", "--out", str(out))
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"xentcheck: error: {path}: ") and message in lines[0], res.stderr
        assert not out.exists()  # refused before the run began


def test_a_pickled_callable_is_refused_in_one_line_without_torchs_warning(tmp_path):
    """torch.load(weights_only=True) refuses the callable, after a UserWarning about the pickle
    protocol (protocol 4 is not torch.save's): the warning is held back, so stderr is the error alone.
    An .npz holding a pickled object array likewise."""
    require("torch")
    import pickle

    pt, npz = tmp_path / "evil.pt", tmp_path / "evil.npz"
    with open(pt, "wb") as f:
        pickle.dump({"logits": np.ones((2, 3), np.float32), "labels": print}, f, protocol=4)
    np.savez(npz, logits=np.array([print, 1.0], dtype=object), labels=np.array([0]))
    for path, message in ((pt, "Weights only load failed"), (npz, "Object arrays cannot be loaded")):
        res = run_cli("run", "--inputs", str(path), "--backends", "numpy", "--out", str(tmp_path / f"out-{path.suffix}"))
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.splitlines()) == 1 and res.stderr.endswith("\n"), res.stderr
        assert res.stderr.startswith(f"xentcheck: error: {path}: cannot read it as a") and message in res.stderr
