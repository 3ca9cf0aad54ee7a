"""Tolerances: per dtype and per output (loss, gradient), with their origin, and user overrides.

An element passes when |actual - reference| <= rtol * |reference| + atol * scale.

For the published tables ("torch", "jax") scale is 1, exactly as those libraries use them.
The default "xentcheck" preset measures atol against each output's natural scale instead:
max(1, sum q) / denominator for a gradient row (|g| never exceeds it), max(1, loss) per row for
losses (summed over rows for sum and mean). Any implementation in a dtype must round p and q at
that scale before p * sum(q) - q cancels, and lse and the target logit before their difference,
so errors of a few units of roundoff u of that scale are inherent; a fixed atol is either far too
loose for a mean over many rows or raises false alarms on sums. The preset allows 8 u.

The "model" preset derives each element's bound from the dtype's unit roundoff, the number of
classes, the logits' spread below the row maximum and the reduction's denominator
(xentcheck.problems.ce.error_model, docs/tolerance-model.md); its rtol/atol (0 unless overridden) are added
on top. "tensorflow" is tf.test.TestCase.assertAllCloseAccordingToType's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xentcheck.core.dtypes import DTYPE_NAMES, info

# The tables' two rows: one judges every kind's loss, the other its gradients (each declared
# output names its row: problems.OutputSpec.tolerance). A concept of the tables, not any kind's
# output names; the one place the rows are spelled out.
LOSS_ROW, GRAD_ROW = TOLERANCE_ROWS = ("loss", "grad")
ROW_TITLES = {LOSS_ROW: "loss", GRAD_ROW: "gradient"}  # as the reports name the rows


def _units(n: float) -> dict[str, tuple[float, float]]:
    return {d: (n * info(d).eps, n * info(d).eps) for d in DTYPE_NAMES}


_TORCH = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}
_JAX_LOSS = {"float16": 1e-3, "bfloat16": 1e-2, "float32": 1e-6, "float64": 1e-15}
_JAX_GRAD = {"float16": 1e-2, "bfloat16": 1e-1, "float32": 2e-3, "float64": 1e-5}
_TF = {"float16": 1e-3, "bfloat16": 1e-2, "float32": 1e-6, "float64": 1e-6}

PRESETS: dict[str, dict] = {
    "xentcheck": {
        "kind": "scaled",
        "scaled": True,
        "origin": "xentcheck default: 8 units of roundoff of the dtype, atol relative to the output's natural scale",
        LOSS_ROW: _units(8), GRAD_ROW: _units(8),
    },
    "torch": {
        "kind": "table",
        "scaled": False,
        "origin": "torch.testing.assert_close defaults",
        LOSS_ROW: dict(_TORCH), GRAD_ROW: dict(_TORCH),
    },
    "jax": {
        "kind": "table",
        "scaled": False,
        "origin": "jax public_test_util: default_tolerance (loss), default_gradient_tolerance (gradient); atol = rtol",
        LOSS_ROW: {d: (v, v) for d, v in _JAX_LOSS.items()}, GRAD_ROW: {d: (v, v) for d, v in _JAX_GRAD.items()},
    },
    "tensorflow": {
        "kind": "table",
        "scaled": False,
        "origin": "tf.test.TestCase.assertAllCloseAccordingToType defaults (rtol = atol)",
        LOSS_ROW: {d: (v, v) for d, v in _TF.items()}, GRAD_ROW: {d: (v, v) for d, v in _TF.items()},
    },
    "model": {
        "kind": "model",
        "scaled": False,
        "origin": "error model: bound from unit roundoff, K, logit spread and denominator (docs/tolerance-model.md)",
        LOSS_ROW: {d: (0.0, 0.0) for d in DTYPE_NAMES}, GRAD_ROW: {d: (0.0, 0.0) for d in DTYPE_NAMES},
    },
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
DEFAULT_PRESET = "xentcheck"


@dataclass
class Tolerances:
    preset: str = DEFAULT_PRESET
    table: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # output -> dtype -> [rtol, atol]
    origin: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown tolerance preset {self.preset!r} (known: {', '.join(PRESETS)})")
        p = PRESETS[self.preset]
        if not self.table:
            self.table = {o: {d: list(p[o][d]) for d in DTYPE_NAMES} for o in TOLERANCE_ROWS}
        if not self.origin:
            self.origin = {d: p["origin"] for d in DTYPE_NAMES}

    @property
    def scaled(self) -> bool:
        return PRESETS[self.preset]["scaled"]

    @property
    def kind(self) -> str:
        return PRESETS[self.preset]["kind"]

    def get(self, dtype: str, output: str) -> tuple[float, float]:
        rtol, atol = self.table[output][dtype]
        return rtol, atol

    def override(self, which: str, spec: str) -> None:
        """Apply '--rtol 1e-5' (every dtype) or '--rtol float16=1e-2,float32=1e-6' to loss and gradient."""
        col = 0 if which == "rtol" else 1
        for dtype, value in parse_spec(spec, which).items():
            for output in TOLERANCE_ROWS:
                self.table[output][dtype][col] = value
            self.origin[dtype] = f"{PRESETS[self.preset]['origin']}; overridden on the command line"

    def as_dict(self) -> dict:
        return {"preset": self.preset, "scaled": self.scaled, "kind": self.kind,
                "dtypes": {d: {**{r: {"rtol": self.table[r][d][0], "atol": self.table[r][d][1]} for r in TOLERANCE_ROWS},
                               "origin": self.origin[d]} for d in DTYPE_NAMES}}


@dataclass
class Tol:
    """The run's tolerance as the property checks read it (a worker's RunRequest carries it)."""
    rtol: float
    atol: float
    scaled: bool


def default_table(preset: str, dtype: str, output: str) -> tuple[float, float]:
    """(rtol, atol) of a preset as published, without command-line overrides."""
    rtol, atol = PRESETS[preset][output][dtype]
    return rtol, atol


def allowed(kind: str, rtol: float, atol: float, ref, natural_scale, model_bound, mag=None):
    """Per-element allowed |actual - reference| under a preset of `kind` (arrays broadcast);
    `mag`: |ref| when the caller has it."""
    import numpy as np

    mag = np.abs(ref) if mag is None else mag
    if kind == "scaled":
        return atol * np.asarray(natural_scale, dtype=mag.dtype) + rtol * mag
    if kind == "model":
        return np.asarray(model_bound, dtype=mag.dtype) + rtol * mag + atol
    return atol + rtol * mag


def allowances(tolerances: Tolerances, dtype: str, row: str, expected, natural_scale, model_bound):
    """(the run's allowed array, {preset: allowed array}) of one output: what array_metrics judges
    (`allowed`) and reports every preset's excess under (`others`). |expected| is formed once per
    precision, and presets that allow the same (kind, rtol, atol) share one array (array_metrics
    then computes their excess once). The "model" preset needs `model_bound`: left out without it."""
    import numpy as np

    e = np.asarray(expected)
    e64 = e if e.dtype == np.float64 else e.astype(np.float64)
    mags = {e64.dtype: np.abs(e64)}
    made: dict[tuple, object] = {}

    def one(kind: str, rtol: float, atol: float, ref):
        key = (kind, rtol, atol, ref.dtype)
        if key not in made:
            if ref.dtype not in mags:
                mags[ref.dtype] = np.abs(ref)
            made[key] = allowed(kind, rtol, atol, ref, natural_scale, model_bound, mags[ref.dtype])
        return made[key]

    others = {name: one(p["kind"], *default_table(name, dtype, row), e64)
              for name, p in PRESETS.items() if p["kind"] != "model" or model_bound is not None}
    if tolerances.kind == "model" and model_bound is None:
        raise ValueError("the model tolerance needs the reference's logits and labels")
    return one(tolerances.kind, *tolerances.get(dtype, row), e), others


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--{what} value {text!r} is not a number") from None
    if not (value >= 0 and value != float("inf")):
        raise ValueError(f"--{what} must be a finite number >= 0, got {text!r}")
    return value


def parse_spec(spec: str, what: str) -> dict[str, float]:
    spec = spec.strip()
    if not spec:
        raise ValueError(f"--{what} needs a value")
    if "=" not in spec:
        v = _number(spec, what)
        return {d: v for d in DTYPE_NAMES}
    out = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in DTYPE_NAMES:
            raise ValueError(f"--{what} entry {part!r} must be DTYPE=VALUE with DTYPE one of {', '.join(DTYPE_NAMES)}")
        out[name] = _number(value.strip(), what)
    return out
