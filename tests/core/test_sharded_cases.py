"""Sharded case ids, partitions and shards: the partitioning is in the id, every TP size and
split of a batch sees the same batch, a padded shard's lanes are -inf, and the gathered NumPy
simulation equals the unsharded reference."""

import numpy as np
import pytest

from xentcheck.core.cases import IGNORE_INDEX, Case, make_inputs
from xentcheck.problems import problem_of
from xentcheck.problems.sharded import cases as sc
from xentcheck.problems.sharded.shards import split_shard, vocab_shard


def test_the_partitioning_is_in_the_id_and_names_the_kind():
    v = Case.from_id("scale1e+0_float32_16x999_tp3_index_mean_opt-ign+ls")
    s = Case.from_id("scale1e+0_float32_16x100_dp2mb3_index_sum_opt-ign")
    assert (v.kind, v.part, sc.tp_size(v)) == ("vocab", "tp3", 3)
    assert (s.kind, s.part, sc.split_sizes(s)) == ("split", "dp2mb3", (2, 3))
    assert Case.from_id("scale1e+0_float32_16x100_mb4_index_mean").kind == "split"
    assert Case.from_id("scale1e+0_float32_16x100_index_mean").kind == "ce"
    assert problem_of(v).dims(v) == "16x999_tp3" and problem_of(s).dims(s) == "16x100_dp2mb3"
    assert Case.from_id(v.id) == v and v.as_dict()["part"] == "tp3"


@pytest.mark.parametrize("bad", ["scale1e+0_float32_16x100_tp0_index_mean", "scale1e+0_float32_16x100_tp9_index_mean",
                                 "scale1e+0_float32_16x100_tp2_soft_mean", "scale1e+0_float32_16x100_tp2_index_mean_opt-w",
                                 "scale1e+0_float32_4x100_dp3mb2_index_mean", "scale1e+0_float32_16x100_mb2_index_none",
                                 "scale1e+0_float32_16x100_dpx_index_mean", "scale1e+0_float32_16x100_lin8_tp2_index_mean"])
def test_bad_partitionings_are_refused(bad):
    with pytest.raises(ValueError):
        Case.from_id(bad)


def test_partitions_are_unequal_and_cover_the_batch_once():
    case = Case.from_id("scale1e+0_float32_16x100_dp2mb2_index_mean_opt-ign")
    parts = sc.partitions(case)
    assert parts == [(0, 2), (2, 5), (5, 10), (10, 16)]
    assert sc.partitions(Case.from_id("scale1e+0_float32_3x100_mb3_index_mean")) == [(0, 1), (1, 2), (2, 3)]
    inputs = make_inputs(case, 0)
    assert np.all(inputs.labels[0:2] == IGNORE_INDEX)  # the first partition is all ignored
    counts = [int((inputs.labels[a:b] != IGNORE_INDEX).sum()) for a, b in parts]
    assert counts[0] == 0 and len(set(counts[1:])) == 3


def test_every_tp_size_sees_the_same_batch_and_a_padded_shard_is_minus_inf():
    cases = [Case.from_id(f"scale1e+0_float32_8x10_tp{w}_index_mean_opt-ign") for w in (1, 2, 3, 4)]
    batches = [make_inputs(c, 0) for c in cases]
    assert all(np.array_equal(b.logits, batches[0].logits) and np.array_equal(b.labels, batches[0].labels)
               for b in batches)
    case, inputs = cases[2], batches[2]  # K = 10 over 3 ranks: 4 lanes each, the last 2 padded
    shards = [vocab_shard(case, inputs, r, 3) for r in range(3)]
    assert [s.logits.shape for s in shards] == [(8, 4)] * 3
    assert [s.vocab_start for s in shards] == [0, 4, 8]
    assert np.array_equal(shards[2].logits[:, :2], inputs.logits[:, 8:]) and np.all(shards[2].logits[:, 2:] == -np.inf)
    assert shards[2].lanes.tolist() == [True, True, False, False]
    whole = vocab_shard(case, inputs, None, 3)
    assert np.array_equal(np.concatenate([s.logits for s in shards], axis=1), whole.logits)


def test_a_ranks_rows_are_its_micro_batches():
    case = Case.from_id("scale1e+0_float32_16x100_dp2mb2_index_mean_opt-ign")
    inputs = make_inputs(case, 0)
    r1 = split_shard(case, inputs, 1, 2)
    assert r1.micro == ((0, 5), (5, 11)) and np.array_equal(r1.logits, inputs.logits[5:16])
    assert split_shard(case, inputs, None, 2).micro == ((0, 2), (2, 5), (5, 10), (10, 16))


@pytest.mark.parametrize("case_id", ["scale1e+1_float64_16x999_tp2_index_mean_opt-ign",
                                     "scale1e+0_float32_16x1000_tp3_index_mean_opt-ls",
                                     "scale1e+1_float32_12x1001_tp4_index_sum_opt-ign+z1e-4",
                                     "scale1e+0_float32_16x100_dp2mb2_index_mean_opt-ign"])
def test_the_numpy_simulation_gathers_to_the_unsharded_reference(case_id):
    from xentcheck.backends.numpy.ce import NumpyBackend
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.run.worker import compute
    case = Case.from_id(case_id)
    backend = NumpyBackend()
    v = next(v for v in backend.variants() if v.kind == case.kind)
    inputs = make_inputs(case, 0)
    out = compute(backend, v, case, inputs, "cpu")
    assert out.status == "ok" and out.grads["grad"].shape == (case.n, case.k)
    problem = problem_of(case)
    ref = problem.reference(case, inputs, v.semantics)
    fields = problem.compare(case, ref, out, Tolerances())
    assert fields["verdict"] == "pass", fields["reasons"]
    assert abs(float(out.loss) - float(ref.loss)) <= 1e-5 * abs(float(ref.loss))


def test_megatrons_smoothing_is_torchs_with_alpha_k_over_k_minus_1_and_keeps_ignored_targets_out():
    from dataclasses import replace
    case = Case.from_id("scale1e+0_float32_16x10_tp2_index_mean_opt-ign+ls")
    inputs = make_inputs(case, 0)
    problem = problem_of(case)
    ref = problem.reference(case, inputs, "megatron")
    torch_ref = problem.reference(case, replace(inputs, smoothing=0.1 * 10 / 9), "torch")
    assert np.array_equal(ref.grad, torch_ref.grad) and float(ref.loss) == float(torch_ref.loss)
    ignored = inputs.labels == IGNORE_INDEX
    assert ignored.any() and np.all(ref.grad[ignored] == 0)
    g = ref.grad[~ignored][0]  # the target gets 1 - alpha, each other class alpha / (K - 1)
    p = np.exp(inputs.logits[~ignored][0].astype(np.float64))
    p /= p.sum()
    q = np.full(10, 0.1 / 9)
    q[inputs.labels[~ignored][0]] = 0.9
    assert np.allclose(g * (~ignored).sum(), p - q, rtol=1e-6, atol=1e-9)
