"""xentcheck.verify(inputs=...) and xentcheck.reference(INPUTS): a user's arrays through the API."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xentcheck
from xentcheck.core import dtypes

BF16 = dtypes.info("bfloat16").np_type


def test_verify_takes_files_and_dicts(tmp_path):
    path = tmp_path / "index.npz"
    np.savez(path, logits=np.array([[-np.inf, 0, 0]], np.float32), labels=np.array([1]))
    arrays = {"logits": np.array([[-np.inf, 0, 0], [1, 2, 3]], BF16), "labels": np.array([[0, 1, 0], [0, 0, 1]], BF16),
              "reduction": "sum"}
    out = tmp_path / "o"
    result = xentcheck.verify("numpy", inputs=[arrays, path], out=out)
    assert result.ok and [r.verdict for r in result.records] == ["pass", "pass"]
    ids = [r.case_id for r in result.records]
    assert ids[0].startswith("file-arrays1-") and ids[0].endswith("_bfloat16_2x3_onehot_sum")
    assert ids[1].startswith("file-index-") and ids[1].endswith("_float32_1x3_index_mean")
    assert (out / "inputs" / "arrays1.npz").is_file()  # the dict as its workers read it
    assert json.loads((out / "run.json").read_text())["inputs"][ids[0]] == str((out / "inputs" / "arrays1.npz").resolve())
    alone = xentcheck.verify("numpy", inputs=arrays)  # no out: a scratch folder
    assert [r.case_id for r in alone.records] == ids[:1]


def test_verify_refuses_bad_inputs_with_the_command_lines_message(tmp_path):
    with pytest.raises(ValueError, match=r"^inputs\[0\]: missing key 'labels'"):
        xentcheck.verify("numpy", inputs={"logits": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"nothing\.npz: no such file"):
        xentcheck.verify("numpy", inputs=str(tmp_path / "nothing.npz"))
    with pytest.raises(ValueError, match=r"inputs\[0\] must be a file path or a dict"):
        xentcheck.verify("numpy", inputs=[3])


def test_reference_of_inputs_equals_the_reference_of_the_arrays(tmp_path):
    x = np.array([[2.0, 0.0, 1.0], [0.0, 5.0, -1.0], [1.0, 1.0, 1.0]], np.float32)
    arrays = {"logits": x, "labels": np.array([1, -1, 2]), "ignore_index": -1, "label_smoothing": 0.1,
              "weight": np.array([1.0, 2.0, 0.5], np.float32), "reduction": "none"}
    direct = xentcheck.reference(x, np.array([1, -1, 2]), "none", ignore_index=-1, label_smoothing=0.1,
                                 weight=np.array([1.0, 2.0, 0.5]))
    of_dict = xentcheck.reference(arrays)
    np.savez(tmp_path / "b.npz", **arrays)
    of_file = xentcheck.reference(tmp_path / "b.npz")
    for got in (of_dict, of_file):
        assert got.loss.shape == (3,) and got.loss[1] == 0.0
        np.testing.assert_array_equal(got.loss, direct.loss)
        np.testing.assert_array_equal(got.grad, direct.grad)
    with pytest.raises(ValueError, match="come from the inputs"):
        xentcheck.reference(arrays, reduction="sum")
    with pytest.raises(ValueError, match="semantics 'plain' takes none"):
        xentcheck.reference(arrays, semantics="plain")
