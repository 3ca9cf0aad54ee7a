"""A user's own arrays as a case: `xentcheck run --inputs FILE`, `xentcheck.verify(inputs=...)`.

A file (.npz, .safetensors, or a torch .pt dict) or an in-memory dict holds:

    logits           (N, d1, ..., K), class axis last, float16 / bfloat16 / float32 / float64: the
                     case's dtype. bfloat16 in an .npz is the 2-byte raw type ("|V2") NumPy writes
                     for an ml_dtypes.bfloat16 array; safetensors and torch hold it natively.
    labels           class indices, integers (N, d1, ...); or label weights of the logits' shape
                     (one-hot or soft, >= 0), cast to the logits' dtype
    weight           optional (K,) class weights, cast to the logits' dtype        -> option "w"
    ignore_index     optional integer: labels equal to it are ignored rows          -> "ign"/"allign"
    label_smoothing  optional number in [0, 1]                                     -> option "ls"
    reduction        optional "mean" (default), "sum" or "none"

(in a .safetensors file the scalars may also be metadata strings; reduction can only be one).
The case is `file-<stem>-<hash>_<dtype>_<N>x<K>..._<labels>_<reduction>[_opt-...]`: the stem is the
file name's, the hash the first 10 hex digits of SHA-256 over the normalised arrays and options,
so a resumed run and a known-differences entry match the same arrays under the same name, and a
file changed since is refused (`inputs_of`). The label form is "index" for class indices,
"onehot" when every row is exactly one 1 among 0s, else "soft".

Rules beyond the generated cases:
- An ignored label is handed to every API as IGNORE_INDEX (-100), whatever the file's
  ignore_index: an ignored label's value never enters the loss, so the result is the same.
- A label out of [0, K) (other than ignore_index) is refused: it is an input error the API
  should raise, which the generated option "oor" tests; a user's batch is verified on valid labels.
Every problem is an InputsError (a ValueError) with one line naming the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import FILE_FAMILY, IGNORE_INDEX, MAX_EXTRA_DIMS, REDUCTIONS, Case, Inputs
from xentcheck.core.held_warnings import held_warnings

KEYS: tuple[str, ...] = ("logits", "labels", "weight", "ignore_index", "label_smoothing", "reduction")
EXTENSIONS: dict[str, str] = {".npz": "npz", ".safetensors": "safetensors", ".pt": "torch", ".pth": "torch"}
HASH_DIGITS = 10


class InputsError(ValueError):
    """A user's inputs cannot be read or are not a valid case (one line)."""


# --- reading a file ------------------------------------------------------------------------

def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's entries by key, arrays as NumPy (bfloat16 as ml_dtypes'); InputsError if it
    cannot be read."""
    p = Path(path)
    kind = EXTENSIONS.get(p.suffix.lower())
    if kind is None:
        raise InputsError(f"{path}: unknown extension {p.suffix or '(none)'!r} (expected {', '.join(EXTENSIONS)})")
    if not p.is_file():
        raise InputsError(f"{path}: no such file")
    try:
        if kind == "npz":
            return _read_npz(p)
        if kind == "safetensors":
            return _read_safetensors(p)
        return _read_torch(p)
    except InputsError:
        raise
    except ImportError as exc:
        extra = "safetensors" if kind == "safetensors" else "torch"
        raise InputsError(f"{path}: reading a {p.suffix} file needs {extra} (pip install 'xentcheck[{extra}]'): "
                          f"{_line(exc)}") from None
    except Exception as exc:  # a corrupt or foreign file: whatever its reader raises
        raise InputsError(f"{path}: cannot read it as a {p.suffix} file: {type(exc).__name__}: {_line(exc)}") from None


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _read_npz(p: Path) -> dict[str, Any]:
    with open(p, "rb") as f:
        if f.read(2) != b"PK":  # np.load would take it for a pickle and say so
            raise InputsError(f"{p}: not an .npz archive (no zip header)")
    with np.load(p, allow_pickle=False) as data:
        if not hasattr(data, "files"):
            raise InputsError(f"{p}: not an .npz archive (a single .npy array?)")
        return {key: data[key] for key in data.files}


def _read_safetensors(p: Path) -> dict[str, Any]:
    from safetensors import safe_open

    out: dict[str, Any] = {}
    with safe_open(str(p), framework="np") as f:
        for key, value in (f.metadata() or {}).items():
            if key in KEYS:  # scalars as metadata strings ("format" and the like are not ours)
                out[key] = value
        for key in f.keys():
            out[key] = f.get_tensor(key)
    return out


def _read_torch(p: Path) -> dict[str, Any]:
    import torch

    data = torch.load(str(p), map_location="cpu", weights_only=True)
    if not isinstance(data, dict):
        raise InputsError(f"{p}: a .pt file must hold a dict of {', '.join(KEYS)}, got a {type(data).__name__}")
    return {str(k): _from_torch(v) for k, v in data.items()}


def _from_torch(value: Any) -> Any:
    """A torch tensor as a NumPy array (bfloat16 through its bits); anything else as it is."""
    if not hasattr(value, "detach"):
        return value
    t = value.detach().cpu()
    if str(t.dtype) == "torch.bfloat16":
        import torch

        return t.view(torch.int16).numpy().view(dtypes.info("bfloat16").np_type)
    return t.numpy()


# --- arrays -> (case, inputs) ----------------------------------------------------------------

def stem_of(name: str) -> str:
    """The file name's stem as it fits in a case id: lower case, [a-z0-9.-], at most 40 characters."""
    stem = re.sub(r"[^a-z0-9.]+", "-", Path(name).stem.lower())[:40].strip("-.")
    return stem or "inputs"


def from_arrays(raw: Mapping[str, Any], stem: str, where: str, source: str | None = None) -> tuple[Case, Inputs]:
    """The case and its inputs (rows, as make_inputs gives them) of a user's arrays; `where` names
    them in messages, `source` is the file the case's workers read them from."""
    def fail(message: str) -> InputsError:
        return InputsError(f"{where}: {message}")

    raw = {key: value for key, value in raw.items() if value is not None}  # None: an option left out
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    for key in ("logits", "labels"):
        if key not in raw:
            raise fail(f"missing key {key!r} (the inputs hold logits and labels; optionally weight, ignore_index, "
                       "label_smoothing, reduction)")
    x = _float_array(_numpy(raw["logits"]))
    if x is None:
        raise fail(f"logits must be float16, bfloat16, float32 or float64, got {_numpy(raw['logits']).dtype}")
    dtype = x.dtype.name
    if not 2 <= x.ndim <= 2 + MAX_EXTRA_DIMS:
        raise fail(f"logits must have shape (N, K) or (N, d1, ..., K) with at most {MAX_EXTRA_DIMS} extra "
                   f"dimensions, got {list(x.shape)}")
    k, lead = x.shape[-1], x.shape[:-1]
    reduction = _text(raw.get("reduction", "mean"), "reduction", fail)
    if reduction not in REDUCTIONS:
        raise fail(f"unknown reduction {reduction!r} (known: {', '.join(REDUCTIONS)})")
    smoothing = _number(raw.get("label_smoothing", 0.0), "label_smoothing", fail)
    if not 0.0 <= smoothing <= 1.0:
        raise fail(f"label_smoothing must be in [0, 1], got {smoothing}")
    ignore = _integer(raw["ignore_index"], fail) if "ignore_index" in raw else None

    y = _numpy(raw["labels"])
    options = []
    if "weight" in raw:
        options.append("w")
    if y.shape == lead:
        form = "index"
        if y.dtype.kind not in "iu":
            raise fail(f"class-index labels must be integers, got {y.dtype} (label weights have the logits' shape "
                       f"{list(x.shape)})")
        y = y.astype(np.int64)
        ignored = np.zeros(y.shape, dtype=bool) if ignore is None else y == ignore
        bad = ~ignored & ((y < 0) | (y >= k))
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            raise fail(f"label {int(y[at])} at {list(at)} is out of range for K = {k} classes"
                       + ("" if ignore is None else f" and is not ignore_index {ignore}")
                       + " (xentcheck verifies valid labels; option 'oor' of the generated cases tests a bad one)")
        if ignored.any():
            options.append("allign" if ignored.all() else "ign")
        target = np.where(ignored, 0, y).reshape(-1)
        y = np.where(ignored, IGNORE_INDEX, y)
    elif y.shape == x.shape:
        if ignore is not None:
            raise fail("ignore_index needs class-index labels (these are label weights of the logits' shape)")
        q = _float_array(y) if y.dtype.kind not in "iub" else y
        if q is None:
            raise fail(f"label weights must be numbers, got {y.dtype}")
        q64 = q.astype(np.float64)
        if not (np.isfinite(q64).all() and (q64 >= 0).all()):
            raise fail("label weights must be finite and >= 0")
        with np.errstate(over="ignore"):
            y = q64.astype(x.dtype)
        if not np.isfinite(y.astype(np.float64)).all():
            raise fail(f"label weights overflow the logits' dtype {dtype}")
        rows = q64.reshape(-1, k)
        onehot = bool(((rows == 0) | (rows == 1)).all() and (rows.sum(axis=1) == 1).all())
        form = "onehot" if onehot else "soft"
        target = rows.argmax(axis=1) if rows.size else np.zeros(0, dtype=np.int64)
    else:
        raise fail(f"labels of shape {list(y.shape)} fit neither class indices {list(lead)} nor label weights "
                   f"{list(x.shape)} (logits {list(x.shape)})")
    if smoothing:
        options.append("ls")
    w = None
    if "weight" in raw:
        w0 = _numpy(raw["weight"])
        wf = _float_array(w0) if w0.dtype.kind not in "iu" else w0
        if wf is None or w0.shape != (k,):
            raise fail(f"weight must be {k} numbers (one per class), got shape {list(w0.shape)} dtype {w0.dtype}")
        with np.errstate(over="ignore"):
            w = wf.astype(np.float64).astype(x.dtype)
        if not np.isfinite(w.astype(np.float64)).all():
            raise fail(f"weight must be finite in the logits' dtype {dtype}")
    opts = [o for o in ("w", "ign", "allign", "ls") if o in options]  # the canonical order (OPTIONS)
    rows_x = np.ascontiguousarray(x.reshape(-1, k))
    rows_y = np.ascontiguousarray(y.reshape(-1) if form == "index" else y.reshape(-1, k))
    digest = _digest(dtype, x.shape, form, reduction, opts, smoothing, rows_x, rows_y, w)
    case = Case(f"{FILE_FAMILY}{stem}-{digest}", dtype, lead[0], k, form, reduction, "+".join(opts),
                tuple(lead[1:]), source=source)
    try:
        case.validate()
    except ValueError as exc:
        raise fail(str(exc)) from None
    return case, Inputs(rows_x, rows_y, target.astype(np.int64), w, smoothing)


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.name}{list(part.shape)}".encode())
            h.update(part.tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:HASH_DIGITS]


def _numpy(value: Any) -> np.ndarray:
    arr = np.asarray(_from_torch(value))
    if arr.dtype == np.dtype("V2"):  # NumPy's .npy form of an ml_dtypes.bfloat16 array: its raw bits
        arr = arr.view(dtypes.info("bfloat16").np_type)
    return arr


def _float_array(arr: np.ndarray) -> np.ndarray | None:
    return arr if arr.dtype.name in dtypes.DTYPE_NAMES else None


def _scalar(value: Any, what: str, fail) -> Any:
    arr = _numpy(value) if not isinstance(value, str) else np.asarray(value)
    if arr.ndim != 0:
        raise fail(f"{what} must be a scalar, got shape {list(arr.shape)}")
    return arr.item()


def _text(value: Any, what: str, fail) -> str:
    v = _scalar(value, what, fail)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        raise fail(f"{what} must be a string, got {v!r}")
    return v


def _number(value: Any, what: str, fail) -> float:
    v = _scalar(value, what, fail)
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise fail(f"{what} must be a number, got {v!r}") from None
    if isinstance(v, bool) or out != out:
        raise fail(f"{what} must be a number, got {v!r}")
    return out


def _integer(value: Any, fail) -> int:
    v = _scalar(value, "ignore_index", fail)
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise fail(f"ignore_index must be an integer, got {v!r}")
    return v


# --- the entry points ----------------------------------------------------------------------------

def load(path: str | os.PathLike[str]) -> tuple[Case, Inputs]:
    """The case (its source: the file's absolute path) and inputs of a user's file."""
    p = Path(path)
    with held_warnings():
        return from_arrays(read(p), stem_of(p.name), str(path), str(p.resolve()))


def inputs_of(case: Case) -> Inputs:
    """The inputs of a file case (make_inputs' way to them): its file read again, refused if its
    arrays are no longer the case's (the file changed since the run began)."""
    if case.source is None:
        raise ValueError(f"case {case.id} holds a user's arrays, and its file is not known: "
                         "give the file with --inputs (xentcheck.verify(inputs=...))")
    again, inputs = load(case.source)
    if again.id != case.id:
        raise InputsError(f"{case.source}: the file changed since case {case.id} was made from it (now {again.id})")
    return inputs


def save_npz(path: str | Path, arrays: Mapping[str, Any]) -> None:
    """An in-memory dict of inputs as an .npz file a worker reads (bfloat16 as its raw bits)."""
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        if value is None:  # an option left at its default
            continue
        out[str(key)] = _numpy(value) if not isinstance(value, str) else np.asarray(value)
    np.savez(str(path), **out)
