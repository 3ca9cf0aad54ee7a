"""The messages between the parent and a backend's worker, typed on both sides of the pipe.

Each crosses the pipe as one JSON line (to_dict); the receiver rebuilds it with from_dict. Two
are typed here: the worker's first message, `Hello` (who the backend is, or why it is missing
or broken), and the parent's `RunRequest` (run one case through the selected variants). The
worker's "result" replies and bench's "time" requests stay plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# what an "ok" hello describes (worker.describe); a missing or broken backend gives name and reason
DESCRIPTION = ("name", "impl", "mode", "variants", "version", "dtypes", "label_forms", "devices", "settings",
               "numerics_env", "python", "executable")


@dataclass
class Hello:
    """The worker's first message: {"op": "hello", "status": "ok", name, version, ...} or
    {"op": "hello", "status": "missing" | "broken", "name"?, "reason"}."""
    status: str
    name: str | None = None  # a plugin broken before naming itself has none
    reason: str | None = None
    impl: str | None = None
    mode: str | None = None
    variants: list[dict] | None = None  # worker.variant_info of each implementation x mode
    version: str | None = None
    dtypes: list[str] | None = None
    label_forms: list[str] | None = None
    devices: list[str] | None = None
    settings: dict | None = None
    numerics_env: dict | None = None  # environment.NUMERICS_ENV variables of the worker's process
    python: str | None = None
    executable: str | None = None
    node: dict | None = None  # where the worker ran, when elsewhere (--executor ray adds it: ray_workers)

    def to_dict(self) -> dict:
        """The wire form. An "ok" hello carries every description field (a plugin's None included),
        any other its name (when known) and reason; either its node when it has one."""
        keys = DESCRIPTION if self.status == "ok" else \
            tuple(k for k in ("name", "reason") if getattr(self, k) is not None)
        return {"op": "hello", "status": self.status, **{k: getattr(self, k) for k in keys},
                **({"node": self.node} if self.node is not None else {})}

    @classmethod
    def from_dict(cls, data: dict) -> Hello:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class RunRequest:
    """Run case `case_id` (inputs regenerated from `seed`) through `variants` (impl, mode); the
    worker writes variant j's loss and gradient to `{out}-{j}.npz`. rtol/atol/scaled are the
    gradient tolerance the property checks use (when `properties`)."""
    case_id: str
    seed: int
    device: str
    out: str
    variants: list[tuple[str, str]] = field(default_factory=list)  # empty: the backend's default ones
    properties: bool = False
    rtol: float = 0.0
    atol: float = 0.0
    scaled: bool = False
    inputs: str | None = None  # a user file's case (--inputs): the file the worker reads its arrays from

    def to_dict(self) -> dict:
        out = {"op": "run", "case_id": self.case_id, "seed": self.seed, "device": self.device, "out": self.out,
               "variants": [list(v) for v in self.variants], "properties": self.properties,
               "tolerance": {"rtol": self.rtol, "atol": self.atol, "scaled": self.scaled}}
        if self.inputs is not None:
            out["inputs"] = self.inputs
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RunRequest:
        tol = data.get("tolerance") or {}
        return cls(case_id=data["case_id"], seed=data["seed"], device=data["device"], out=data["out"],
                   variants=[(str(i), str(m)) for i, m in data.get("variants") or []],
                   properties=bool(data.get("properties", False)), rtol=tol.get("rtol", 0.0),
                   atol=tol.get("atol", 0.0), scaled=tol.get("scaled", False), inputs=data.get("inputs"))
