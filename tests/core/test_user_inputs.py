"""A user's arrays as a case (xentcheck.core.user_inputs): reading .npz / .safetensors / .pt files,
the case id and options they make, the inputs the workers read back, and every refusal."""

from __future__ import annotations

import numpy as np
import pytest

from xentcheck.core import dtypes
from xentcheck.core.cases import IGNORE_INDEX, Case, make_inputs
from xentcheck.core.user_inputs import InputsError, from_arrays, load, save_npz, stem_of

BF16 = dtypes.info("bfloat16").np_type


def npz(tmp_path, name="batch.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_index_labels_make_an_index_case_whose_inputs_are_the_files(tmp_path):
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], np.float32)
    case, inputs = load(npz(tmp_path, logits=x, labels=np.array([2, 0], np.int32)))
    assert case.id.startswith("file-batch-") and case.id.endswith("_float32_2x3_index_mean")
    assert (case.dtype, case.n, case.k, case.labels, case.reduction, case.options) == \
        ("float32", 2, 3, "index", "mean", "")
    assert case.source == str((tmp_path / "batch.npz").resolve())
    assert inputs.logits.dtype == np.float32 and np.array_equal(inputs.logits, x)
    assert inputs.labels.dtype == np.int64 and inputs.labels.tolist() == [2, 0]
    again = make_inputs(case, seed=123)  # the seed does not matter: the file does
    assert np.array_equal(again.logits, x) and again.labels.tolist() == [2, 0]


def test_label_forms_onehot_soft_and_extra_dimensions(tmp_path):
    x = np.zeros((2, 3), np.float64)
    onehot, _ = load(npz(tmp_path, "a.npz", logits=x, labels=np.array([[0, 1, 0], [1, 0, 0]], np.float32)))
    soft, inputs = load(npz(tmp_path, "b.npz", logits=x, labels=np.array([[0.5, 0.5, 0], [1, 0, 0]], np.float32)))
    assert (onehot.labels, soft.labels) == ("onehot", "soft")
    assert inputs.labels.dtype == np.float64  # label weights in the logits' dtype
    # (N, d1, K) = (2, 4, 5): torch's order in the id, N x K x d1; rows M = 8
    cube, rows = load(npz(tmp_path, "c.npz", logits=np.ones((2, 4, 5), np.float16), labels=np.zeros((2, 4), np.int64)))
    assert cube.id.endswith("_float16_2x5x4_index_mean") and cube.extra == (4,) and rows.logits.shape == (8, 5)


def test_options_come_from_the_file_and_ignore_index_becomes_the_harness_one(tmp_path):
    x = np.ones((3, 4), np.float32)
    case, inputs = load(npz(tmp_path, logits=x, labels=np.array([0, 7, 3]), ignore_index=7, label_smoothing=0.2,
                            reduction="sum", weight=np.array([1, 2, 3, 4], np.float64)))
    assert case.id.endswith("_index_sum_opt-w+ign+ls") and case.options == "w+ign+ls"
    assert inputs.labels.tolist() == [0, IGNORE_INDEX, 3]
    assert inputs.smoothing == 0.2 and inputs.weights.dtype == np.float32 and inputs.weights.tolist() == [1, 2, 3, 4]
    every, _ = load(npz(tmp_path, "all.npz", logits=x, labels=np.array([5, 5, 5]), ignore_index=5))
    assert every.options == "allign"
    # an ignore_index inside [0, K): those labels are ignored, the rest are classes
    inner, rows = load(npz(tmp_path, "zero.npz", logits=x, labels=np.array([0, 1, 2]), ignore_index=0))
    assert inner.options == "ign" and rows.labels.tolist() == [IGNORE_INDEX, 1, 2]


def test_the_id_names_the_content_so_the_same_arrays_match_across_formats(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    x = np.array([[-np.inf, 0, 0]], np.float32)
    y = np.array([[0, 1, 0]], np.float32)
    a, _ = load(npz(tmp_path, "same.npz", logits=x, labels=y))
    st.save_file({"logits": x, "labels": y}, str(tmp_path / "same.safetensors"))
    b, _ = load(tmp_path / "same.safetensors")
    assert a == b and a.id == b.id  # same arrays, same stem: the same case
    c, _ = load(npz(tmp_path, "same2.npz", logits=x, labels=y))
    assert c.id.split("_")[0].rsplit("-", 1)[1] == a.id.split("_")[0].rsplit("-", 1)[1]  # same content hash
    d, _ = load(npz(tmp_path, "same.npz", logits=x + 1, labels=y))
    assert d.id != a.id  # changed values, changed hash
    assert Case.from_id(a.id) == a  # the id parses back to the same case (resume, known differences)


def test_bfloat16_in_npz_safetensors_and_torch(tmp_path):
    x = np.array([[1.5, -2.0, 0.25]], BF16)
    case, inputs = load(npz(tmp_path, "b.npz", logits=x, labels=np.array([1])))  # NumPy writes it as |V2
    assert case.dtype == "bfloat16" and inputs.logits.dtype == BF16 and inputs.logits.tolist() == x.tolist()
    st = pytest.importorskip("safetensors.numpy")
    st.save_file({"logits": x, "labels": np.array([1])}, str(tmp_path / "b.safetensors"))
    assert load(tmp_path / "b.safetensors")[0].id == case.id  # same stem, same arrays
    torch = pytest.importorskip("torch")
    torch.save({"logits": torch.tensor([[1.5, -2.0, 0.25]], dtype=torch.bfloat16), "labels": torch.tensor([1]),
                "reduction": "sum", "label_smoothing": 0.1}, tmp_path / "b.pt")
    tcase, tin = load(tmp_path / "b.pt")
    assert tcase.id.endswith("_bfloat16_1x3_index_sum_opt-ls") and tin.logits.tolist() == x.tolist()
    assert tin.smoothing == 0.1


def test_safetensors_scalars_may_be_metadata(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    st.save_file({"logits": np.ones((2, 3), np.float32), "labels": np.array([1, -1])}, str(tmp_path / "m.safetensors"),
                 metadata={"reduction": "none", "ignore_index": "-1", "format": "pt"})
    case, inputs = load(tmp_path / "m.safetensors")
    assert case.id.endswith("_index_none_opt-ign") and inputs.labels.tolist() == [1, IGNORE_INDEX]


def test_a_changed_file_is_refused_by_its_case(tmp_path):
    path = npz(tmp_path, logits=np.ones((1, 3), np.float32), labels=np.array([1]))
    case, _ = load(path)
    npz(tmp_path, logits=np.ones((1, 3), np.float32), labels=np.array([2]))
    with pytest.raises(InputsError, match="the file changed since case file-batch-"):
        make_inputs(case, 0)
    with pytest.raises(ValueError, match="its file is not known"):
        make_inputs(Case.from_id(case.id), 0)


GOOD = {"logits": np.ones((2, 3), np.float32), "labels": np.array([0, 1])}
BAD = [
    ({"logits": GOOD["logits"]}, "missing key 'labels'"),
    ({"labels": GOOD["labels"]}, "missing key 'logits'"),
    ({**GOOD, "weights": np.ones(3)}, "unknown key 'weights'"),
    ({**GOOD, "logits": np.ones((2, 3), np.int64)}, "logits must be float16, bfloat16, float32 or float64, got int64"),
    ({**GOOD, "logits": np.ones(3, np.float32)}, "logits must have shape (N, K)"),
    ({**GOOD, "labels": np.array([0, 1, 2])}, "labels of shape [3] fit neither class indices [2] nor label weights"),
    ({**GOOD, "labels": np.array([0.0, 1.0])}, "class-index labels must be integers, got float64"),
    ({**GOOD, "labels": np.array([0, 3])}, "label 3 at [1] is out of range for K = 3 classes"),
    ({**GOOD, "labels": np.array([0, -100])}, "label -100 at [1] is out of range"),
    ({**GOOD, "labels": np.array([[0, 1, 0], [0, -1, 2]], np.float32)}, "label weights must be finite and >= 0"),
    ({**GOOD, "labels": np.eye(3, dtype=np.float32)[:2], "ignore_index": 0}, "ignore_index needs class-index labels"),
    ({**GOOD, "reduction": "avg"}, "unknown reduction 'avg'"),
    ({**GOOD, "label_smoothing": 1.5}, "label_smoothing must be in [0, 1], got 1.5"),
    ({**GOOD, "ignore_index": 0.5}, "ignore_index must be an integer, got 0.5"),
    ({**GOOD, "weight": np.ones(4)}, "weight must be 3 numbers (one per class), got shape [4]"),
    ({**GOOD, "logits": np.ones((2, 1), np.float32), "labels": np.array([0, 0])}, "out of range (0 <= N"),
]


@pytest.mark.parametrize(("arrays", "message"), BAD, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_arrays_are_refused_with_one_line_naming_them(arrays, message):
    with pytest.raises(InputsError) as err:
        from_arrays(arrays, "x", "my.npz")
    text = str(err.value)
    assert text.startswith("my.npz: ") and message in text and "\n" not in text


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    (tmp_path / "batch.csv").write_text("1,2,3")
    cases = [("junk.npz", "not an .npz archive"), ("junk.safetensors", "cannot read it as a .safetensors file"),
             ("batch.csv", "unknown extension '.csv'"), ("none.npz", "no such file")]
    for name, message in cases:
        with pytest.raises(InputsError, match=message):
            load(tmp_path / name)


def test_a_dict_saved_for_the_workers_reads_back_the_same_case(tmp_path):
    arrays = {"logits": np.array([[1, 2, 3]], BF16), "labels": np.array([2]), "ignore_index": None,
              "weight": None, "label_smoothing": None, "reduction": "sum"}  # None: left out
    first, _ = from_arrays(arrays, "arrays1", "inputs[0]")
    save_npz(tmp_path / "arrays1.npz", arrays)
    again, inputs = load(tmp_path / "arrays1.npz")
    assert again.id == first.id and inputs.logits.dtype == BF16
    assert first.id.endswith("_bfloat16_1x3_index_sum") and first.options == ""


def test_stems_fit_in_an_id():
    assert stem_of("My Batch_41200.npz") == "my-batch-41200"
    assert stem_of("___.pt") == "inputs"
    assert len(stem_of("x" * 100 + ".npz")) == 40
