"""The linear-CE case kind and its reference (loss, dh, dW, db) against mpmath and the
materialised composition."""

import mpmath
import numpy as np
import pytest

from xentcheck.core.cases import Case, Inputs, default_suite, full_suite, make_inputs
from xentcheck.problems.ce.reference import reference
from xentcheck.problems.linear.cases import LinearInputs
from xentcheck.problems.linear.reference import dot2, linear_reference


def _ld(e) -> np.longdouble:
    """An mpmath number as longdouble (64-bit significand): float64 would hide the reference's extra digits."""
    return np.longdouble(mpmath.nstr(e, 30))


def _ld_array(a) -> np.ndarray:
    return np.vectorize(_ld, otypes=[np.longdouble])(np.array(a, dtype=object))


def _mp_chain(g, h, w, den) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dh = G W, dW = G^T h, db = sum_n G in mpmath, G the logits' gradient rows over `den`."""
    n, v, dd = len(g), len(w), len(w[0]) if w else 0
    g = [[e / den for e in row] for row in g]
    dh = [[mpmath.fsum(g[i][k] * w[k][j] for k in range(v)) for j in range(dd)] for i in range(n)]
    dw = [[mpmath.fsum(g[i][k] * h[i][j] for i in range(n)) for j in range(dd)] for k in range(v)]
    db = [mpmath.fsum(g[i][k] for i in range(n)) for k in range(v)]
    return _ld_array(dh), _ld_array(dw), _ld_array(db)


def test_ids_are_canonical_and_distinguishable():
    c = Case("scale1e+0", "float32", 32, 1000, "index", "mean", "w+ign+b", d=64)
    assert c.id == "scale1e+0_float32_32x1000_lin64_index_mean_opt-w+ign+b"
    assert Case.from_id(c.id) == c and c.linear and c.kind == "linear"
    assert not Case.from_id("scale1e+0_float32_32x1000_index_mean").linear
    for bad in ("scale1e+0_float32_32x1000_lin064_index_mean", "scale1e+0_float32_32x1000_lin64_soft_mean",
                "offset1e+4_float32_8x100_lin4_index_mean", "scale1e+0_float32_8x100_index_mean_opt-b",
                "scale1e+0_float32_8x100_lin4_index_mean_opt-b+w", "scale1e+0_float32_8x100x3_lin4_index_mean",
                "scale1e+0_float32_8x100_lin4_index_mean_opt-w+z1e-4"):
        with pytest.raises(ValueError):
            Case.from_id(bad)


def test_suites_hold_linear_cases_after_the_plain_ones():
    d = default_suite()
    lin = [c for c in d if c.linear]
    assert 8 <= len(lin) <= 16 and all(c.n * c.k <= 64_000 for c in lin)
    at = [i for i, c in enumerate(d) if c.linear]  # one block after the plain and LLM cases, which keep their places
    assert at == list(range(at[0], at[0] + len(at))) and not any(c.llm for c in d[at[-1]:])
    full = [c for c in full_suite() if c.linear]
    assert {50257, 128256, 151936, 256000} <= {c.k for c in full}
    assert {16, 4096} <= {c.d for c in full}
    assert {"offset1e+4", "neartie", "dominant"} <= {c.family for c in full}


def test_inputs_are_a_pure_function_of_seed_and_id():
    c = Case.from_id("dominant_bfloat16_16x2000_lin64_index_mean_opt-ign+b")
    a, b = make_inputs(c, 3), make_inputs(c, 3)
    assert isinstance(a, LinearInputs) and a.hidden.shape == (16, 64) and a.weight.shape == (2000, 64)
    for name in ("hidden", "weight", "bias", "labels"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert (a.labels == -100).any() and a.labels[0] != -100
    assert make_inputs(c, 4).hidden.tobytes() != a.hidden.tobytes()


def test_dominant_family_is_confident():
    c = Case("dominant", "float32", 16, 2000, "index", "none", d=64)
    ref = linear_reference(c, make_inputs(c, 0))
    assert float(np.max(ref.row_loss)) < 1e-3  # p of the target > 0.999 on every row


def _mp_reference(c: Case, x: LinearInputs, dps: int = 50):
    """Loss, dh, dW, db in mpmath (reduction mean over N, no options but b)."""
    with mpmath.workdps(dps):
        h = [[mpmath.mpf(float(v)) for v in row] for row in x.hidden]
        w = [[mpmath.mpf(float(v)) for v in row] for row in x.weight]
        b = [mpmath.mpf(float(v)) for v in x.bias] if x.bias is not None else [0] * c.k
        n, v, dd = c.n, c.k, c.d
        loss, g = 0, []
        for i in range(n):
            o = [mpmath.fsum(h[i][j] * w[k][j] for j in range(dd)) + b[k] for k in range(v)]
            m = max(o)
            z = mpmath.fsum(mpmath.exp(t - m) for t in o)
            lse = m + mpmath.log(z)
            y = int(x.labels[i])
            loss += lse - o[y]
            g.append([mpmath.exp(t - lse) - (1 if k == y else 0) for k, t in enumerate(o)])
        den = n if c.reduction == "mean" else 1
        return (_ld(loss / den), *_mp_chain(g, h, w, den))


@pytest.mark.parametrize("case_id", ["scale1e+1_float64_5x7_lin6_index_mean_opt-b",
                                     "offset1e+4_float64_4x9_lin5_index_sum_opt-b",
                                     "scale1e+0_float32_5x7_lin6_index_mean_opt-b"])
def test_reference_against_mpmath(case_id):
    c = Case.from_id(case_id)
    x = make_inputs(c, 1)
    ref = linear_reference(c, x)
    loss, dh, dw, db = _mp_reference(c, x)
    # errors far below the tested dtype's roundoff, relative to each entry's natural scale
    for got, want, scale in ((ref.loss, loss, ref.scales["loss"]), (ref.dh, dh, ref.scales["dh"]),
                             (ref.dw, dw, ref.scales["dw"]), (ref.db, db, ref.scales["db"])):
        err = (np.abs(np.asarray(got, dtype=np.longdouble) - want) / np.asarray(scale)).astype(np.float64)
        assert float(np.max(err)) < (2e-18 if c.dtype == "float64" else 1e-14), (case_id, float(np.max(err)))


def test_dot2_is_twice_float64():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((3, 40)) * 1e3
    w = rng.standard_normal((5, 40))
    w[:, 1] = -w[:, 0] * h[0, 0] / h[0, 1]  # cancellation in row 0
    got = dot2(h, w)
    with mpmath.workdps(60):
        for i in range(3):
            for k in range(5):
                exact = mpmath.fsum(mpmath.mpf(float(a)) * mpmath.mpf(float(b)) for a, b in zip(h[i], w[k]))
                bound = 2 ** -62 * float(np.abs(h[i]) @ np.abs(w[k]))
                assert abs(float(got[i, k] - np.longdouble(mpmath.nstr(exact, 30)))) <= bound


def test_reference_matches_plain_reference_on_its_logits():
    """Chunked (1 row at a time, W in blocks of 100 vocabulary rows) or not, the loss equals the
    plain CE reference of h W^T + b, and dh, dW, db are that gradient's products with W, h and ones."""
    import xentcheck.problems.linear.reference as lr
    c = Case.from_id("scale1e+1_float32_24x777_lin16_index_mean_opt-w+ign+ls+b")
    x = make_inputs(c, 0)
    o = x.hidden.astype(np.float64) @ x.weight.astype(np.float64).T + x.bias.astype(np.float64)
    plain = Case("scale1e+1", "float32", 24, 777, "index", "mean", "w+ign+ls")
    want = reference(plain, Inputs(o, x.labels, x.target, x.weights, x.smoothing), "torch")
    old = lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS
    try:
        lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS = 1, 100 * c.d
        assert len(lr._blocks(c.k, c.d, c.n)) == 8
        ref = linear_reference(c, x, "torch")
    finally:
        lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS = old
    whole = linear_reference(c, x, "torch")
    # the natural scales barely move with the blocking: their float32 products are rounded up by
    # 2 (t + 2) u for t terms (777 unblocked, 100 per block), float64 sums otherwise
    for what in ("dh", "dw", "db"):
        assert np.allclose(ref.scales[what], whole.scales[what], rtol=2 * (c.k + 2) * 2.0 ** -24, atol=0), what
    assert abs(float(ref.loss) - float(want.loss)) <= 1e-14 * float(want.loss)
    g = want.grad
    # the same G; float64 sums in another order (a BLAS call per row): within 1e-13 of each scale
    for what, want_ in (("dh", g @ x.weight.astype(np.float64)), ("dw", g.T @ x.hidden.astype(np.float64)),
                        ("db", g.sum(axis=0))):
        assert (np.abs(getattr(ref, what) - want_) <= 1e-13 * ref.scales[what]).all(), what
    assert (ref.dh[x.labels == -100] == 0).all()  # ignored rows: no gradient


def _mp_llm_reference(c: Case, x: LinearInputs, dps: int = 50):
    """Loss, dh, dW, db in mpmath with a softcap c and a z-loss z (reduction mean over N or sum,
    every row counted): o' = c tanh(o / c), l = lse(o') - o'_y + z lse(o')^2,
    dl/do = (p' - e_y + 2 z lse p') sech^2(o / c)."""
    with mpmath.workdps(dps):
        cap, z = mpmath.mpf(c.softcap), mpmath.mpf(c.zloss or 0)
        h = [[mpmath.mpf(float(v)) for v in row] for row in x.hidden]
        w = [[mpmath.mpf(float(v)) for v in row] for row in x.weight]
        b = [mpmath.mpf(float(v)) for v in x.bias] if x.bias is not None else [0] * c.k
        n, v, dd = c.n, c.k, c.d
        rows, g = [], []
        for i in range(n):
            o = [mpmath.fsum(h[i][j] * w[k][j] for j in range(dd)) + b[k] for k in range(v)]
            oc = [cap * mpmath.tanh(t / cap) for t in o]
            lse = max(oc) + mpmath.log(mpmath.fsum(mpmath.exp(t - max(oc)) for t in oc))
            y = int(x.labels[i])
            rows.append(lse - oc[y] + z * lse ** 2)
            g.append([(mpmath.exp(t - lse) * (1 + 2 * z * lse) - (1 if k == y else 0)) * mpmath.sech(o[k] / cap) ** 2
                      for k, t in enumerate(oc)])
        den = n if c.reduction == "mean" else 1
        loss = _ld_array(rows) if c.reduction == "none" else _ld(mpmath.fsum(rows) / den)
        return (loss, *_mp_chain(g, h, w, den))


@pytest.mark.parametrize("case_id", ["scale1e+1_float64_5x7_lin6_index_mean_opt-cap5+z0.01+b",
                                     "scale1e+1_float64_4x9_lin5_index_none_opt-cap30+z1e-4+b",
                                     "scale1e+1_float64_4x9_lin5_index_sum_opt-cap3"])
def test_float64_softcap_and_zloss_reference_is_wider_than_float64(case_id):
    """With a softcap and a z-loss the float64 reference keeps G in longdouble (reference(wide=True)):
    loss, dh, dW, db within 1e-18 of their natural scales (measured: at most 3e-19), where with G
    rounded to float64 each of these cases errs by 3e-18 to 5e-17 in some output."""
    c = Case.from_id(case_id)
    x = make_inputs(c, 1)
    ref = linear_reference(c, x)
    mp = _mp_llm_reference(c, x)
    for what, got, want in zip(("loss", "dh", "dw", "db"), (ref.loss, ref.dh, ref.dw, ref.db), mp):
        if got is None:
            continue
        assert np.asarray(got).dtype == np.longdouble, what
        err = (np.abs(np.asarray(got, dtype=np.longdouble) - want) / np.asarray(ref.scales[what])).astype(np.float64)
        assert float(np.max(err)) < 1e-18, (case_id, what, float(np.max(err)))


def test_scale_product_bounds_the_exact_product_from_above():
    """float32 operands: never below the exact x @ y (float64 products of float32 values are exact;
    their float64 sum is within 1e-15), and above it by no more than the sum's own error and the
    2 (t + 2) u it adds; products below float32's normal range and a float32 overflow stay bounded; float64: plain."""
    from xentcheck.problems.linear.reference import scale_product
    rng = np.random.default_rng(3)
    u = 2.0 ** -24
    for t, lo_exp in ((7, 0), (300, 0), (4096, 0), (64, -140)):
        x64 = rng.random((9, t)) * 2.0 ** lo_exp
        y = (rng.random((t, 11)) * 3).astype(np.float32)
        exact = x64 @ y.astype(np.float64)  # x64 is what the float32 operand was rounded from
        got = scale_product(x64.astype(np.float32), y)
        assert got.dtype == np.float64
        assert (got >= exact * (1 + 1e-15)).all(), t
        assert (got <= exact * (1 + 2 * (t + 2) * u) ** 2 + t * 2.0 ** -148).all(), t
    big = np.full((2, 3), 3e38, dtype=np.float32)  # overflows float32: float64, rounded up
    assert np.isfinite(scale_product(big, big.T)).all()
    assert (scale_product(big, big.T) >= 3 * 9e76).all()
    x, y = rng.random((4, 5)), rng.random((5, 6))
    assert np.array_equal(scale_product(x, y), x @ y)


def _gamma(terms: int, u: float) -> float:
    """gamma_n = n u / (1 - n u): a sum of n products, in any order, is within gamma_n of the
    exact one, relative to the sum of the products' magnitudes (Higham, Accuracy and Stability, 3.1)."""
    return terms * u / (1 - terms * u)


def test_streamed_dw_blocks_are_the_held_dw():
    """Above STREAM_DW_ENTRIES the reference holds neither dW nor its scale; dw_blocks forms them
    a vocabulary block at a time from the spilled G and A, whatever the row chunks and vocabulary
    blocks (float64's longdouble path included); dh and the rest unchanged.

    The streamed products sum the same N terms as the held ones, on operands laid out otherwise
    (a block's G is contiguous in the spill, a strided slice of the chunk's G when held), which
    BLAS may sum in another order (OpenBLAS's SkylakeX kernels do): not the same bits. Each
    is within gamma_N (of the working precision) of the exact G^T h, relative to sum_n |G_nv| |h_nd|,
    which the natural scale bounds (A >= |G|, rounded up): so the two lie within 2 gamma_N of
    the scale of each other. The scales, both upper bounds of the exact one by at most
    (1 + 2 (t + 2) u)^2 (scale_product, t <= N terms), within that of each other. The loss, dh and
    db and their scales come from the same calls on the same values with or without the spill:
    the same bits."""
    import xentcheck.problems.linear.reference as lr
    for cid in ("scale1e+1_float32_24x777_lin16_index_mean_opt-w+ign+ls+b",
                "scale1e+0_bfloat16_40x300_lin96_index_none_opt-ct+b", "dominant_float64_16x200_lin64_index_none"):
        c = Case.from_id(cid)
        x = make_inputs(c, 0)
        u_wp = 2.0 ** -64 if c.dtype == "float64" else 2.0 ** -53  # dW's products: longdouble or float64
        u_s = 2.0 ** -53 if c.dtype == "float64" else 2.0 ** -24  # the scale's: float64 or float32 operands
        old = lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES
        try:
            for chunk, block in ((1 << 23, 1 << 21), (3 * c.k, 23 * c.d), (1, 7 * c.d)):
                lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES = chunk, block, 1 << 24
                held = linear_reference(c, x, "torch")
                lr.STREAM_DW_ENTRIES = 0
                st = linear_reference(c, x, "torch")
                assert st.dw is None and st.scales["dw"] is None and st.streamed
                parts = list(st.dw_blocks())
                assert [p[0].start for p in parts] == [b.start for b in lr._blocks(c.k, c.d, c.n)]
                dw, s = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
                assert dw.dtype == held.dw.dtype and dw.shape == held.dw.shape
                scale = np.asarray(held.scales["dw"], dtype=np.longdouble)
                assert np.all(np.abs(dw - held.dw) <= 2 * _gamma(c.n, u_wp) * scale), (cid, chunk)
                grow = (1 + 2 * (c.n + 2) * u_s) ** 2 - 1 + 1e-15
                assert np.all(np.abs(s - held.scales["dw"]) <= grow * np.fmax(s, held.scales["dw"])
                              + c.n * 2.0 ** -148), (cid, chunk)
                for what in ("loss", "dh", "db"):
                    if held.get(what) is not None:
                        assert np.array_equal(st.get(what), held.get(what), equal_nan=True), what
                    assert np.array_equal(st.scales[what], held.scales[what], equal_nan=True), what
                (vb, dw, s), = held.dw_blocks()
                assert vb == slice(0, c.k) and dw is held.dw and s is held.scales["dw"]
        finally:
            lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES = old


@pytest.mark.parametrize("case_id", ["scale1e+0_float32_40x300_lin24_index_mean_opt-ign+b",
                                     "scale1e+1_bfloat16_33x257_lin16_index_sum_opt-w+ls+b",
                                     "scale1e+0_float16_20x500_lin32_index_none_opt-cap30+z1e-4+ct",
                                     "scale1e+0_float32_16x300_lin64_index_mean_opt-cap5+z0.01+b",
                                     "dominant_float64_12x200_lin16_index_sum_opt-ign"])
def test_spilled_block_products_agree_with_the_one_chunk_reference(case_id):
    """Row chunks of a few rows (logits, G and A spilled to files) and several vocabulary blocks,
    dW held and streamed, against the reference in one chunk and one block (the previous
    algorithm's calls, unchanged for such cases) and a direct product of its G. The logits,
    each a D-term sum, may differ in the last bits between the two (BLAS may order a block's
    sums otherwise), which moves G by at most the A - |G| part of its natural scale times
    gamma_D; dh, dW and db sum T = V, N, N products each within gamma_T: so every output within
    2 gamma_(T + D) of its natural scale (working precision: float64, longdouble for float64)."""
    import xentcheck.problems.linear.reference as lr
    c = Case.from_id(case_id)
    x = make_inputs(c, 2)
    u = 2.0 ** -64 if c.dtype == "float64" else 2.0 ** -53
    whole = linear_reference(c, x, "torch")
    assert len(lr._chunks(c.n, c.k)) == 1 and len(lr._blocks(c.k, c.d, c.n)) == 1
    g = None
    old = lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES
    try:
        lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS = 3 * c.k, 61 * c.d
        assert len(lr._chunks(c.n, c.k)) > 3 and len(lr._blocks(c.k, c.d, c.n)) > 3
        for stream in (1 << 24, 0):
            lr.STREAM_DW_ENTRIES = stream
            got = linear_reference(c, x, "torch")
            assert got.streamed == (stream == 0)
            dw = np.concatenate([b for _, b, _ in got.dw_blocks()])
            s_dw = np.concatenate([s for _, _, s in got.dw_blocks()])
            for what, mine, terms in (("loss", got.loss, c.d), ("dh", got.dh, c.k), ("dw", dw, c.n),
                                      ("db", got.db, c.n)):
                if mine is None:
                    continue
                want = np.asarray(whole.get(what), dtype=np.longdouble)
                scale = np.asarray(whole.scales[what], dtype=np.longdouble)
                bound = 2 * _gamma(terms + c.d, u) * scale
                assert np.all(np.abs(np.asarray(mine, dtype=np.longdouble) - want) <= bound), (case_id, stream, what)
            # the scales: the same sums of A's products in other blocks, each rounded up (scale_product)
            u_s = 2.0 ** -53 if c.dtype == "float64" else 2.0 ** -24
            for what, mine in (("dh", got.scales["dh"]), ("dw", s_dw), ("db", got.scales["db"])):
                grow = (1 + 2 * (max(c.n, c.k) + 2) * u_s) ** 2 - 1 + 1e-12
                assert np.allclose(mine, whole.scales[what], rtol=grow, atol=max(c.n, c.k) * 2.0 ** -148), what
            if g is None:  # a direct product of the one-chunk reference's G (the CE reference of h W^T + b)
                o = x.hidden.astype(np.float64) @ x.weight.astype(np.float64).T
                if x.bias is not None:
                    o += x.bias.astype(np.float64)
                g = np.asarray(reference(lr._ce_case(c, c.n), Inputs(o, x.labels, x.target, x.weights, x.smoothing),
                                         "torch", wide=True).grad, dtype=np.float64)
                if c.reduction == "mean":
                    g /= whole.denom
                if x.cotangent is not None:
                    g *= x.cotangent.astype(np.float64)[:, None] if x.cotangent.ndim else float(x.cotangent)
                for what, want, terms in (("dh", g @ x.weight.astype(np.float64), c.k),
                                          ("dw", g.T @ x.hidden.astype(np.float64), c.n)):
                    # float64 logits and G (float64 cases: longdouble ones in the reference)
                    err = np.abs(np.asarray(getattr(got, what) if what == "dh" else dw, dtype=np.float64) - want)
                    assert np.all(err <= 2 * _gamma(terms + c.d, 2.0 ** -53) * whole.scales[what]), (case_id, what)
    finally:
        lr.CHUNK_ELEMENTS, lr.WEIGHT_BLOCK_ELEMENTS, lr.STREAM_DW_ENTRIES = old
    if "ign" in c.option_set:
        assert np.all(np.asarray(got.dh)[x.labels == -100] == 0)  # ignored rows: no gradient


@pytest.mark.parametrize("reduction, loss", [("sum", 0.0), ("mean", np.nan)])
def test_a_case_of_no_rows_has_zero_gradients(reduction, loss):
    """N = 0 (fuzz draws it): no chunk of rows, so dW, dh and db come from empty G; the mean is 0 / 0."""
    from xentcheck.problems import problem_of
    case = Case.from_id(f"scale1e+0_float32_0x100_lin16_index_{reduction}_opt-b")
    problem = problem_of(case)
    ref = problem.reference(case, problem.make_inputs(case, 0), "torch")
    assert ref.dh.shape == (0, 16) and ref.dw.shape == (100, 16) and ref.db.shape == (100,)
    assert not ref.dw.any() and not ref.db.any()
    np.testing.assert_equal(float(ref.loss), loss)
