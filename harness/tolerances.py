"""Per-dtype (rtol, atol) tolerances: defaults with their origin, and user overrides.

An element passes when |actual - reference| <= atol + rtol * |reference| (torch.testing's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.dtypes import DTYPE_NAMES

DEFAULT_ORIGIN = "torch.testing.assert_close defaults"
DEFAULTS: dict[str, tuple[float, float]] = {
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
}


@dataclass
class Tolerances:
    rtol: dict[str, float] = field(default_factory=lambda: {d: v[0] for d, v in DEFAULTS.items()})
    atol: dict[str, float] = field(default_factory=lambda: {d: v[1] for d, v in DEFAULTS.items()})
    origin: dict[str, str] = field(default_factory=lambda: {d: DEFAULT_ORIGIN for d in DEFAULTS})

    def get(self, dtype: str) -> tuple[float, float]:
        return self.rtol[dtype], self.atol[dtype]

    def override(self, which: str, spec: str) -> None:
        """Apply '--rtol 1e-5' (every dtype) or '--rtol float16=1e-2,float32=1e-6'."""
        table = self.rtol if which == "rtol" else self.atol
        for dtype, value in parse_spec(spec, which).items():
            table[dtype] = value
            self.origin[dtype] = "overridden on the command line"

    def as_dict(self) -> dict:
        return {d: {"rtol": self.rtol[d], "atol": self.atol[d], "origin": self.origin[d]} for d in DTYPE_NAMES}


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
