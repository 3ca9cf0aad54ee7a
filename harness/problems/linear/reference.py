"""The high-precision reference of linear-CE: loss and gradients w.r.t. h, W and b.

With logits o = h W^T + b (N x V), per-row CE as xentcheck.problems.ce.reference computes it (options
included) and G the gradient of v . loss w.r.t. the logits (G = (p sum(r) - r) x cotangent /
denominator, r the effective label weights):
    dh = G W   (N x D),   dW = G^T h   (V x D),   db = sum_n G_n   (V,)
Computed in three passes, every product one BLAS call over all N rows (linear_reference):
1. the logits a vocabulary block at a time, o_b = h W_b^T + b_b (and each row's w_n, below);
2. a chunk of rows at a time, reference.reference of the chunk's logits (p, lse, G of the plain
   CE reference, options included, reduction "sum" or "none"), the loss and db;
3. a vocabulary block at a time, dh += G_b W_b and dW_b = G_b^T h, with their scales.
With more than one row chunk, N x V is never held: the logits go to a file (BlockFile, laid out
a vocabulary block at a time), G takes their place there in pass 2, A (below) a second file:
N V 12 bytes on disk for a 16- or 32-bit case (6.3 GB at 4096 x 128,256), none of it in the
process. One chunk (the suites' cases): the logits, G and A are held, and the calls are those
of the chunked algorithm before it (one chunk's), so the values are the same bits.

Precision. 16- and 32-bit inputs: every product h_nd W_vd is exact in float64 and the D-term
sums err by at most about D 2^-53 of sum |h| |W|, far below the tested dtype's roundoff; the
gradients' products likewise in float64. float64 inputs: the logits by a compensated dot product
(Ogita, Rump and Oishi's Dot2: TwoProduct by Veltkamp splitting, TwoSum accumulation; as if
computed in twice float64's precision, then rounded to np.longdouble), the CE in longdouble,
and dh, dW, db in longdouble (64-bit significand: within (terms) 2^-64 of the natural scale);
tests/core/test_linear_reference.py checks it against mpmath.

Natural scales (the comparison's, see metrics.py): an implementation in a dtype of unit
roundoff u rounds each logit at about m_nv = |o_nv| + sum_d |h_nd| |W_vd| (the product's
magnitude before it cancels), which moves p_nv by about u w_n p_nv with w_n = max_v m_nv. So each
entry of G is computed at A_nv = |G_nv| + c_n p_nv w_n + t (c_n = |v_n| sum(r_n) / D the row's
gradient scale, t the dtype's smallest normal: G below it is subnormal or flushed), and
    dh_nd at sum_v A_nv |W_vd|,   dW_vd at sum_n A_nv |h_nd|,   db_v at sum_n A_nv,
    a row loss at max(1, |l_n|, sum(r_n) w_n) (summed, then divided by D for the mean).
A scale sets a tolerance, so it needs a few correct digits, not the values' precision: for 16- and
32-bit inputs its three products (sum_d |h| |W| for w_n, and the two above) run in float32 (sgemm,
half a float64 product's time) and are rounded up by their worst-case error (scale_product), so a
scale is never below the exact one (at most 2 (t + 2) 2^-24 above it for t terms a product, plus
that product's own rounding); float64 inputs keep float64 products.

dW a vocabulary block at a time: above STREAM_DW_ENTRIES entries of W, dW and its scale (16 bytes
an entry of W, more than the inputs and a backend's outputs take together in float32) are not
held: G and A stay in their files and dw_blocks forms dW and its scale a block at a time (one
product over all rows each); the comparison (metrics.py) takes each block and drops it. The
same products of the same values as held, on operands laid out otherwise, which BLAS may sum
in another order: not the same bits, each within the precision above of the exact G^T h (both
within 2 N 2^-53, or 2^-64, of the natural scale of each other).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import Case, Inputs
from xentcheck.problems.ce.reference import reference, softmax_lse, working_precision
from xentcheck.problems.linear.cases import LinearInputs

CHUNK_ELEMENTS = 1 << 22  # rows x V per chunk: a few 32 MiB float64 temporaries (32 rows of V = 128,256)
WEIGHT_BLOCK_ELEMENTS = 1 << 23  # V x D per block of W converted at a time: 64 MiB in float64
LOGIT_BLOCK_ELEMENTS = 1 << 23  # N x V per block of logits, G (float64: 64 MiB) and A: pass 1 holds ~5 such
# V x D above which dW and its scale (16 bytes an entry of W) are not held: the comparison takes
# them a vocabulary block at a time (LinearReference.dw_blocks); 2^24 entries: 256 MiB
STREAM_DW_ENTRIES = 1 << 24
OUTPUTS = ("loss", "dh", "dw", "db")
U32 = 2.0 ** -24  # float32's unit roundoff


@dataclass
class LinearReference:
    loss: np.ndarray  # () for mean/sum, (N,) for none
    dh: np.ndarray  # (N, D)
    dw: np.ndarray | None  # (V, D); None when streamed (V x D > STREAM_DW_ENTRIES): see dw_blocks
    db: np.ndarray | None  # (V,) with a bias, else None
    precision: str
    scales: dict[str, np.ndarray | None]  # each entry's natural scale: "loss", "dh", "dw" (None when streamed), "db"
    row_loss: np.ndarray  # (N,) float64
    denom: float  # the mean's denominator (1 for sum and none)
    derived: dict = field(default_factory=dict, repr=False, compare=False)
    stream: DwStream | None = field(default=None, repr=False, compare=False)  # when dW is not held

    def get(self, what: str) -> np.ndarray | None:
        return getattr(self, what)

    @property
    def streamed(self) -> bool:
        return self.stream is not None

    def dw_blocks(self) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """(rows of W, dW there, its natural scale) a vocabulary block at a time, in order: the
        whole of dW when it is held, else each block formed from the spilled G and A (the same
        products as the held dW, each as accurate; BLAS may order their sums otherwise)."""
        if self.stream is None:
            assert self.dw is not None and self.scales["dw"] is not None
            yield slice(0, self.dw.shape[0]), self.dw, self.scales["dw"]
        else:
            yield from self.stream.blocks()


# --- the natural scales' products ---------------------------------------------------------

def scale_dtype(dtype: str) -> type:
    """The dtype of the scale products' operands: float32 for 16- and 32-bit cases (a scale sets
    a tolerance: a few correct digits, rounded up, suffice), float64 for float64 cases (whose
    smallest normal, 2^-1022, is below float32's range)."""
    return np.float64 if dtype == "float64" else np.float32


def abs_operand(x: np.ndarray, dtype: str) -> np.ndarray:
    """|x| in scale_dtype(dtype): exact for 16- and 32-bit inputs."""
    out: np.ndarray = x.astype(scale_dtype(dtype))
    return np.abs(out, out=out)


def scale_product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x @ y of nonnegative operands, as float64, never below the exact product of x and y.

    float64 operands: the float64 product (as the scales always were). float32 operands (one
    sgemm, half a dgemm's time): with t = x.shape[1] terms and u = 2^-24, the computed sum of t
    products, each operand off by at most u (x was rounded to float32; y is exact), is at least
    (1 - gamma_(t+1)) times the exact one, less t 2^-150 (products below float32's normal range);
    so s (1 + 2 (t + 2) u) + t 2^-149 bounds it from above when (t + 2) u <= 1/4 (gamma_k =
    k u / (1 - k u)). Else, or when the float32 product overflows, float64 (rounded up by 2^-22)."""
    if x.dtype == np.float64 and y.dtype == np.float64:
        return x @ y
    t = x.shape[1]
    if (t + 2) * U32 <= 0.25:
        with np.errstate(over="ignore", invalid="ignore"):
            s = (x @ y).astype(np.float64)
        if np.isfinite(s).all():
            s *= 1 + 2 * (t + 2) * U32
            s += t * 2.0 ** -149
            return s
    return (x.astype(np.float64) @ y.astype(np.float64)) * (1 + 2.0 ** -22)


# --- the spill: N x V arrays a vocabulary block at a time, on disk ------------------------

def _pwrite(fd: int, a: np.ndarray, offset: int) -> None:
    view = np.ascontiguousarray(a).data.cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _pread(fd: int, a: np.ndarray, offset: int) -> None:
    view = a.data.cast("B")
    while view:
        done = os.preadv(fd, [view], offset)
        if done <= 0:
            raise EOFError("the linear reference's spill file is shorter than written")
        view, offset = view[done:], offset + done


class BlockFile:
    """An N x V array of one dtype in an anonymous temporary file (gone when closed), laid out a
    vocabulary block at a time: block b's N rows x width entries, row-major, one after the other.
    `write` puts rows lo.. of a block, `read` returns a block's N rows whole (one read), `rows`
    rows lo:hi of every block as one (rows, V) array. Plain reads and writes, no mapping: the
    process's memory holds none of it."""

    def __init__(self, n: int, blocks: list[slice], dtype: type):
        self.n, self.blocks, self.dtype = n, blocks, np.dtype(dtype)
        self.file = tempfile.TemporaryFile(prefix="xentcheck-linear-")
        self.offsets = {}
        off = 0
        for vb in blocks:
            self.offsets[vb.start] = off
            off += n * (vb.stop - vb.start) * self.dtype.itemsize

    def write(self, vb: slice, lo: int, a: np.ndarray) -> None:
        width = vb.stop - vb.start
        if a.size:
            _pwrite(self.file.fileno(), a.astype(self.dtype, copy=False),
                    self.offsets[vb.start] + lo * width * self.dtype.itemsize)

    def read(self, vb: slice) -> np.ndarray:
        out = np.empty((self.n, vb.stop - vb.start), self.dtype)
        if out.size:
            _pread(self.file.fileno(), out, self.offsets[vb.start])
        return out

    def rows(self, lo: int, hi: int, v: int) -> np.ndarray:
        out = np.empty((hi - lo, v), self.dtype)
        for vb in self.blocks:
            width = vb.stop - vb.start
            part = np.empty((hi - lo, width), self.dtype)
            if part.size:
                _pread(self.file.fileno(), part, self.offsets[vb.start] + lo * width * self.dtype.itemsize)
            out[:, vb] = part
        return out

    def close(self) -> None:
        self.file.close()


@dataclass
class DwStream:
    """dW = G^T h and its scale sum_n A_nv |h_nd|, a vocabulary block at a time from the spilled G
    and A: per block one product over all N rows, as linear_reference forms a held dW (the same
    operands but for their layout: a block's G is contiguous here and may be a strided slice of
    the held G there, which BLAS may sum in another order; not the same bits, each within
    gamma_N of the working precision of the exact sum, relative to the natural scale)."""
    g: BlockFile
    a: BlockFile
    hidden: np.ndarray
    dtype: str
    wp: type

    def blocks(self) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        h_wp: np.ndarray = self.hidden.astype(self.wp)
        h_abs = abs_operand(self.hidden, self.dtype)
        for vb in self.g.blocks:
            g, a = self.g.read(vb), self.a.read(vb)
            yield vb, g.T @ h_wp, scale_product(a.T, h_abs)


# --- compensated dot products (float64 inputs) -------------------------------------------

_SPLIT = 134217729.0  # 2^27 + 1


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a x b = p + e exactly (Dekker; no FMA needed). |a|, |b| < 2^996: no overflow in the split."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def dot2(h: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """h W^T (+ b) of float64 arrays (R, D) and (V, D), as if computed in twice float64's
    precision (Dot2), returned as np.longdouble (R, V)."""
    h, w = h.astype(np.float64), w.astype(np.float64)
    shape = (h.shape[0], w.shape[0])
    s = np.zeros(shape) if b is None else np.broadcast_to(b.astype(np.float64), shape).copy()
    c = np.zeros_like(s)
    wsplit = _split(w.T)  # (D, V) halves, once
    for j in range(h.shape[1]):
        a = h[:, j:j + 1]
        p = a * w[None, :, j]
        ah, al = _split(a)
        e = al * wsplit[1][j] - (((p - ah * wsplit[0][j]) - al * wsplit[0][j]) - ah * wsplit[1][j])
        s, e2 = _two_sum(s, p)
        c += e + e2
    return s.astype(np.longdouble) + c.astype(np.longdouble)


# --- the reference ------------------------------------------------------------------------

def logits_pass(case: Case, inputs: LinearInputs, blocks: list[slice], held: np.ndarray | None,
                spill: BlockFile | None) -> np.ndarray:
    """o = h W^T + b in the working precision (float64, or longdouble by dot2) a vocabulary block
    at a time, each block one product over all N rows, into `held` (N, V) or `spill`; returns
    w_n = max_v (|o_nv| + sum_d |h_nd| |W_vd| (+ |b_v|)), the magnitude each row's logits are
    rounded at. W is converted a block at a time (each logit is its own D-term sum: blocking over
    the vocabulary changes no value)."""
    h, b = inputs.hidden, inputs.bias
    n = h.shape[0]
    h64 = h.astype(np.float64)
    h_abs = abs_operand(h, case.dtype)
    b_abs = None if b is None else np.abs(b.astype(np.float64))
    wn = np.zeros(n)
    for vb in blocks:
        o = held[:, vb] if held is not None else None
        if case.dtype == "float64":
            z = dot2(h, inputs.weight[vb], None if b is None else b[vb])
            if o is not None:
                o[...] = z
                z = o
        else:
            z = o if o is not None else np.empty((n, vb.stop - vb.start))
            np.matmul(h64, inputs.weight[vb].astype(np.float64).T, out=z)
            if b is not None:
                z += b[vb].astype(np.float64)
        mag = scale_product(h_abs, abs_operand(inputs.weight[vb], case.dtype).T)
        mag += np.abs(np.asarray(z, dtype=np.float64))
        if b_abs is not None:
            mag += b_abs[vb]
        if mag.size:
            np.maximum(wn, mag.max(axis=1), out=wn)
        if spill is not None:
            spill.write(vb, 0, z)
    return wn


def _ce_case(case: Case, rows: int) -> Case:
    """The plain CE case whose reference gives a chunk's rows: its options but b and ct,
    reduction sum (none stays none; the mean's division comes after)."""
    opts = "+".join(t for t in case.options.split("+") if t and t != "b" and not t.startswith("ct"))
    return Case(case.family if not case.family.startswith("offset") else "scale1e+0", case.dtype, rows, case.k,
                "index", "none" if case.reduction == "none" else "sum", opts)


def denominator(case: Case, inputs: LinearInputs, semantics: str) -> float:
    """The mean's denominator as `semantics` documents it (torch: the kept targets' weights)."""
    if case.reduction != "mean":
        return 1.0
    kept = (inputs.labels >= 0) & (inputs.labels < case.k)
    if semantics == "torch" and inputs.weights is not None:
        return float(inputs.weights.astype(np.float64)[inputs.labels[kept]].sum())
    if semantics in ("torch", "keras"):
        return float(kept.sum())
    return float(case.n)


def _blocks(v: int, dim: int, n: int = 0) -> list[slice]:
    """Vocabulary blocks of at most WEIGHT_BLOCK_ELEMENTS entries of W and LOGIT_BLOCK_ELEMENTS
    logits of n rows (at least one vocabulary row each): wide blocks make large products."""
    step = max(1, min(WEIGHT_BLOCK_ELEMENTS // max(1, dim), LOGIT_BLOCK_ELEMENTS // max(1, n)))
    return [slice(lo, min(v, lo + step)) for lo in range(0, v, step)] or [slice(0, 0)]


def _chunks(n: int, v: int) -> list[tuple[int, int]]:
    """Row chunks of about CHUNK_ELEMENTS logits each (at least one row)."""
    step = max(1, CHUNK_ELEMENTS // max(1, v))
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def linear_reference(case: Case, inputs: LinearInputs, semantics: str = "plain") -> LinearReference:
    """Loss, dh, dW, db of `case` on `inputs` and their natural scales (the module docstring).

    Three passes. 1: the logits and each row's w_n, a vocabulary block at a time (logits_pass).
    2: a chunk of rows at a time (about CHUNK_ELEMENTS logits), the plain CE reference of the
    chunk's logits (options and all), G and A, db and the loss. 3: a vocabulary block at a time,
    dh += G_b W_b, dW_b = G_b^T h and their scales, each one product over all N rows.
    Memory: besides the inputs and the outputs (dh, dW, db in float64 or longdouble, their scales
    in float64) it holds one chunk of rows' logits (a few such temporaries) and one vocabulary
    block of W, of the logits, G and A: never N x V once there is more than one chunk (the
    logits, then G in their place, and A go to BlockFiles on disk), nor a converted copy of W.
    Above STREAM_DW_ENTRIES entries of W, dW and its scale are not held: `dw_blocks` forms them
    a vocabulary block at a time from the spilled G and A."""
    prec = working_precision(case.dtype)
    wp = np.longdouble if case.dtype == "float64" else np.float64
    sdt = scale_dtype(case.dtype)
    n, v, dim = case.n, case.k, case.d
    blocks, chunks = _blocks(v, dim, n), _chunks(n, v)
    streamed = v * dim > STREAM_DW_ENTRIES
    spilled = len(chunks) > 1  # else the one chunk's logits, G and A are held (N x V, a few MiB at most)
    denom = denominator(case, inputs, semantics)
    inv = 1.0 / denom if denom else 0.0
    ct = None if inputs.cotangent is None else inputs.cotangent.astype(wp)
    dh = np.zeros((n, dim), dtype=wp)
    dw = None if streamed else np.zeros((v, dim), dtype=wp)
    db = np.zeros(v, dtype=wp)
    s_dh, s_dw, s_db = np.zeros((n, dim)), None if streamed else np.zeros((v, dim)), np.zeros(v)
    row_loss, loss_scale = np.zeros(n), np.zeros(n)
    row_wide = np.zeros(n, dtype=wp)  # reduction none: the rows in wp (row_loss is float64)
    loss_total = wp(0)
    tiny = 2.0 ** dtypes.info(case.dtype).min_exp
    # pass 1: the logits (held, or spilled: G takes their place in pass 2)
    held_o = None if spilled else np.empty((n, v), dtype=wp)
    g_file = BlockFile(n, blocks, wp) if spilled or streamed else None
    a_file = BlockFile(n, blocks, sdt) if g_file is not None else None
    wn = logits_pass(case, inputs, blocks, held_o, g_file if spilled else None)
    g_all = a_all = None  # the one chunk's G and A when not spilled
    # pass 2: the CE reference a chunk of rows at a time
    for lo, hi in chunks:
        o = held_o[lo:hi] if held_o is not None else g_file.rows(lo, hi, v)  # type: ignore[union-attr]
        part = Inputs(o, inputs.labels[lo:hi], inputs.target[lo:hi], inputs.weights, inputs.smoothing)
        ref = reference(_ce_case(case, hi - lo), part, semantics, wide=True)  # G in wp, options or not
        g = np.asarray(ref.grad, dtype=wp)  # (rows, V): the unreduced (sum) gradient, scaled in place
        if case.reduction == "mean":
            g /= wp(denom) if denom else wp(np.inf)  # 1 / denom in float64 would round
        if ct is not None:
            g *= ct[lo:hi, None] if ct.ndim else ct
        rows = np.asarray(ref.row_loss, dtype=np.float64)
        row_loss[lo:hi] = rows
        if case.reduction == "none":
            row_wide[lo:hi] = np.asarray(ref.loss, dtype=wp)
        loss_total += np.asarray(ref.loss, dtype=wp).sum() if case.reduction != "none" else 0
        big_q = np.asarray(ref.label_sum, dtype=np.float64)
        del ref
        p, _ = softmax_lse(np.asarray(o, dtype=np.float64))
        del o
        c = big_q * (inv if case.reduction == "mean" else 1.0)
        if ct is not None:
            c = c * (np.abs(np.asarray(ct, dtype=np.float64))[lo:hi] if ct.ndim else abs(float(ct)))
        # + the dtype's smallest normal: an entry of G below it is subnormal (or flushed to zero) there
        a = np.abs(np.asarray(g, dtype=np.float64))
        p *= (c * wn[lo:hi])[:, None]
        a += p
        a += tiny
        del p
        db += g.sum(axis=0)
        s_db += a.sum(axis=0)
        a = a.astype(sdt, copy=False)  # the scale products' operand (see scale_product)
        if g_file is not None and a_file is not None:
            for vb in blocks:
                g_file.write(vb, lo, g[:, vb])
                a_file.write(vb, lo, a[:, vb])
        if not spilled:
            g_all, a_all = g, a
        loss_scale[lo:hi] = np.fmax(np.fmax(1.0, np.abs(rows)), big_q * wn[lo:hi])
        del g, a
    del held_o
    if g_all is None and g_file is None:  # no rows, so no chunk: G and A are empty
        g_all, a_all = np.zeros((n, v), dtype=wp), np.zeros((n, v), dtype=sdt)
    # pass 3: dh, dW and their scales, a vocabulary block at a time over all rows
    h_wp = inputs.hidden.astype(wp)
    h_abs = abs_operand(inputs.hidden, case.dtype)
    for vb in blocks:
        if g_all is not None and a_all is not None:
            gb, ab = g_all[:, vb], a_all[:, vb]
        else:
            assert g_file is not None and a_file is not None
            gb, ab = g_file.read(vb), a_file.read(vb)
        w_b = inputs.weight[vb]
        if vb.start == 0:
            dh[...] = gb @ w_b.astype(wp)
            s_dh[...] = scale_product(ab, abs_operand(w_b, case.dtype))
        else:
            dh += gb @ w_b.astype(wp)
            s_dh += scale_product(ab, abs_operand(w_b, case.dtype))
        if dw is not None and s_dw is not None:
            dw[vb] += gb.T @ h_wp
            s_dw[vb] += scale_product(ab.T, h_abs)
    del g_all, a_all
    if case.reduction == "none":
        loss = row_wide
        l_scale = loss_scale
    else:
        loss = np.asarray(loss_total / wp(denom) if case.reduction == "mean" and denom else loss_total)
        if case.reduction == "mean" and denom == 0:
            loss = np.asarray(np.nan)
        l_scale = np.asarray(np.fmax(1.0, loss_scale.sum() * (inv if case.reduction == "mean" else 1.0)))
    scales = {"loss": l_scale, "dh": s_dh, "dw": s_dw, "db": s_db}
    out = LinearReference(loss, dh, dw, db if inputs.bias is not None else None, prec, scales, row_loss, denom)
    if streamed and g_file is not None and a_file is not None:
        out.stream = DwStream(g_file, a_file, inputs.hidden, case.dtype, wp)
    elif g_file is not None and a_file is not None:
        g_file.close()
        a_file.close()
    return out
