"""Tolerances: per dtype and per output (loss, gradient), with their origin, and user overrides.

An element passes when |actual - reference| <= rtol * |reference| + atol * scale.

For the published tables ("torch", "jax") scale is 1, exactly as those libraries use them.
The default "xentcheck" preset measures atol against each output's natural scale instead:
max(1, sum q) / denominator for a gradient row (|g| never exceeds it), max(1, loss) per row for
losses (summed over rows for sum and mean). Any implementation in a dtype must round p and q at
that scale before p * sum(q) - q cancels, and lse and the target logit before their difference,
so errors of a few units of roundoff u of that scale are inherent; a fixed atol is either far too
loose for a mean over many rows or raises false alarms on sums. The preset allows 8 u.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.dtypes import DTYPE_NAMES, info

OUTPUTS = ("loss", "grad")


def _units(n: float) -> dict[str, tuple[float, float]]:
    return {d: (n * info(d).eps, n * info(d).eps) for d in DTYPE_NAMES}


_TORCH = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}
_JAX_LOSS = {"float16": 1e-3, "bfloat16": 1e-2, "float32": 1e-6, "float64": 1e-15}
_JAX_GRAD = {"float16": 1e-2, "bfloat16": 1e-1, "float32": 2e-3, "float64": 1e-5}

PRESETS: dict[str, dict] = {
    "xentcheck": {
        "scaled": True,
        "origin": "xentcheck default: 8 units of roundoff of the dtype, atol relative to the output's natural scale",
        "loss": _units(8), "grad": _units(8),
    },
    "torch": {
        "scaled": False,
        "origin": "torch.testing.assert_close defaults",
        "loss": dict(_TORCH), "grad": dict(_TORCH),
    },
    "jax": {
        "scaled": False,
        "origin": "jax public_test_util: default_tolerance (loss), default_gradient_tolerance (gradient); atol = rtol",
        "loss": {d: (v, v) for d, v in _JAX_LOSS.items()}, "grad": {d: (v, v) for d, v in _JAX_GRAD.items()},
    },
}
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
            self.table = {o: {d: list(p[o][d]) for d in DTYPE_NAMES} for o in OUTPUTS}
        if not self.origin:
            self.origin = {d: p["origin"] for d in DTYPE_NAMES}

    @property
    def scaled(self) -> bool:
        return PRESETS[self.preset]["scaled"]

    def get(self, dtype: str, output: str) -> tuple[float, float]:
        rtol, atol = self.table[output][dtype]
        return rtol, atol

    def override(self, which: str, spec: str) -> None:
        """Apply '--rtol 1e-5' (every dtype) or '--rtol float16=1e-2,float32=1e-6' to loss and gradient."""
        col = 0 if which == "rtol" else 1
        for dtype, value in parse_spec(spec, which).items():
            for output in OUTPUTS:
                self.table[output][dtype][col] = value
            self.origin[dtype] = f"{PRESETS[self.preset]['origin']}; overridden on the command line"

    def as_dict(self) -> dict:
        return {"preset": self.preset, "scaled": self.scaled,
                "dtypes": {d: {"loss": {"rtol": self.table["loss"][d][0], "atol": self.table["loss"][d][1]},
                               "grad": {"rtol": self.table["grad"][d][0], "atol": self.table["grad"][d][1]},
                               "origin": self.origin[d]} for d in DTYPE_NAMES}}


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
