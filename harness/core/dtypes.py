"""The floating-point dtypes under test: names, NumPy types, precision facts and ULPs."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class DtypeInfo:
    name: str
    numpy_type: type | None  # None: ml_dtypes' type of this name (see np_type)
    digits: int  # significand bits, implicit bit included
    min_exp: int  # exponent of the smallest normal number: 2**min_exp
    max: float

    @property
    def np_type(self) -> type:
        """The NumPy scalar type. bfloat16's comes from ml_dtypes, imported only here: its C
        extension takes most of a second to load, in the parent and in every worker, and most
        runs of a float32 kernel never need it."""
        if self.numpy_type is not None:
            return self.numpy_type
        import ml_dtypes

        t: type = getattr(ml_dtypes, self.name)
        return t

    @property
    def eps(self) -> float:
        """Unit roundoff u = 2**-digits (half the gap between 1 and the next number)."""
        return 2.0 ** -self.digits


DTYPES: dict[str, DtypeInfo] = {
    "float16": DtypeInfo("float16", np.float16, 11, -14, 65504.0),
    # bfloat16's largest: (2 - 2**-7) * 2**127, ml_dtypes.finfo(bfloat16).max (tests/core check it)
    "bfloat16": DtypeInfo("bfloat16", None, 8, -126, (2 - 2.0 ** -7) * 2.0 ** 127),
    "float32": DtypeInfo("float32", np.float32, 24, -126, float(np.finfo(np.float32).max)),
    "float64": DtypeInfo("float64", np.float64, 53, -1022, float(np.finfo(np.float64).max)),
}
DTYPE_NAMES: tuple[str, ...] = tuple(DTYPES)


def info(name: str) -> DtypeInfo:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r} (known: {', '.join(DTYPE_NAMES)})") from None


def wider(actual: str, requested: str) -> bool:
    """Whether `actual` holds every value of `requested` and more (float32 for float16 or
    bfloat16, float64 for any other): a result computed there is widened, not narrowed.
    float16 and bfloat16 are not wider than each other; a name that is not a float dtype here
    is never wider."""
    if actual == requested or actual not in DTYPES or requested not in DTYPES:
        return False
    a, r = DTYPES[actual], DTYPES[requested]
    return a.digits >= r.digits and a.min_exp <= r.min_exp and a.max >= r.max


def dtype_name(dtype: npt.DTypeLike) -> str:
    """Canonical name of a NumPy dtype (ml_dtypes' bfloat16 included), e.g. 'float32'."""
    return np.dtype(dtype).name


def transport_dtype(dtype: npt.DTypeLike) -> type:
    """A standard NumPy dtype that holds every value of `dtype` exactly (bfloat16 has no .npy form)."""
    return np.float64 if np.dtype(dtype).itemsize > 4 else np.float32


def ulp(x: np.ndarray, name: str) -> np.ndarray:
    """The gap between representable numbers of dtype `name` at magnitude |x| (x in higher precision).

    Below the smallest normal the gap is the subnormal spacing; infinities and NaN give NaN.
    """
    x = np.asarray(x)
    if x.dtype == np.float64:
        # the gap depends on x's exponent field alone: one table lookup per element
        return np.asarray(_ulp_table(name)[(x.view(np.uint64) >> np.uint64(52)) & np.uint64(0x7FF)])
    return _ulp_general(x, name)


@functools.cache
def _ulp_table(name: str) -> np.ndarray:
    """ulp() of a float64 by its biased exponent field E (0 to 2047): the general formula applied
    to 2**(E - 1023) (to 0 for E = 0: zero and subnormals share a gap), NaN for inf and NaN."""
    fields = np.arange(2048)
    x = np.where(fields == 0, 0.0, np.ldexp(1.0, np.minimum(fields, 2046) - 1023))
    table = _ulp_general(x, name)
    table[2047] = np.nan
    return table


def _ulp_general(x: np.ndarray, name: str) -> np.ndarray:
    d = info(name)
    x = np.abs(np.asarray(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        _, e = np.frexp(x)  # x = f * 2**e with f in [0.5, 1)
    exp = np.where(x == 0, d.min_exp, np.maximum(e.astype(np.int64) - 1, d.min_exp))
    out = np.ldexp(np.ones_like(x, dtype=x.dtype if x.dtype == np.longdouble else np.float64),
                   exp - (d.digits - 1))
    return np.where(np.isfinite(x), out, np.nan)


def round_to(x: np.ndarray, name: str) -> np.ndarray:
    """Round high-precision values to dtype `name` (overflow becomes inf, as the dtype would)."""
    x = np.asarray(x)
    if x.dtype == np.longdouble:
        x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(info(name).np_type)


# The precision a reference works in: float64 for the narrower dtypes; for float64, long double
# where it is wider (x86's 80-bit), else mpmath. Every kind's reference and environment.json read it.
LONGDOUBLE_IS_WIDER = bool(np.finfo(np.longdouble).eps < 1e-18)


def working_precision(dtype: str) -> str:
    if dtype != "float64":
        return "float64"
    return "longdouble" if LONGDOUBLE_IS_WIDER else "mpmath"


def numpy_working_type(dtype: str) -> tuple[type[np.floating], str]:
    """The NumPy type a reference computed with NumPy alone works in, and its precision's name:
    float64 for the narrower dtypes; for float64, long double, named "longdouble" where it is wider
    and "float64" where it is float64 itself (no mpmath fallback)."""
    if dtype != "float64":
        return np.float64, "float64"
    return np.longdouble, "longdouble" if LONGDOUBLE_IS_WIDER else "float64"
