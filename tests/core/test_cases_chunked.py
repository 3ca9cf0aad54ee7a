"""make_ce_inputs in row chunks gives the bytes of one whole-array pass (the pinned digests in
test_cases.py hold the whole-array bytes): every family, label form, option and shape, with
chunks from one row up, ragged last chunks included."""

from __future__ import annotations

import numpy as np
import pytest

from xentcheck.core.cases import Case, full_suite, make_inputs
from xentcheck.problems.ce.cases import make_ce_inputs


def _arrays(case: Case, seed: int, chunk: int | None) -> list[bytes]:
    inp = make_ce_inputs(case, seed, chunk)
    out = [inp.logits.tobytes(), inp.labels.tobytes(), inp.target.tobytes(), repr(inp.smoothing).encode()]
    return out + [b"" if inp.weights is None else inp.weights.tobytes()]


CASES = sorted({c.id for c in full_suite() if c.rows * c.k <= 50_000 and not c.linear} | {
    "neartie_float32_37x9_soft_none", "dominant_bfloat16_33x7_onehot_sum", "masked_float16_41x6_soft_mean_opt-w+ls",
    "posinf_float64_9x5_soft_none", "nan_float32_5x4x3_index_none", "rowmasked_float16_7x3_onehot_sum"})


@pytest.mark.parametrize("case_id", CASES)
def test_chunks_give_the_whole_array_bytes(case_id):
    case = Case.from_id(case_id)
    whole = _arrays(case, 11, 1 << 40)
    for chunk in (1, 5, 3 * case.k + 1):  # a row at a time; several rows with a ragged last chunk
        assert _arrays(case, 11, chunk) == whole, chunk


def test_large_cases_are_generated_in_chunks(monkeypatch):
    import xentcheck.problems.ce.cases as cases_mod  # make_ce_inputs reads both names there
    drawn = []
    original = cases_mod._uniform

    def spy(bitgen, shape):
        drawn.append(shape)
        return original(bitgen, shape)

    monkeypatch.setattr(cases_mod, "_uniform", spy)
    monkeypatch.setattr(cases_mod, "GEN_CHUNK_ELEMENTS", 1000)
    inp = make_inputs(Case("masked", "float32", 64, 100, "soft", "mean"), 0)
    assert inp.logits.shape == (64, 100)
    assert max(np.prod(s) for s in drawn) <= 1000  # no whole-array temporaries
