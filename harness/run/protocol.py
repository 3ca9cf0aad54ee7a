"""The messages between the parent and a backend's worker, typed on both sides of the pipe.

Each crosses the pipe as one JSON line (to_dict, its "op" naming it); the receiver rebuilds it
with from_dict, or `message` for whichever came. The worker's first message is `Hello` (who the
backend is, or why it is missing or broken); the parent then sends `RunRequest`s (run one case
through the selected variants), answered by `RunReply`, or bench's `TimeRequest`s, answered by
`TimingReply`; `Quit` ends the worker. The transports (processes, ray_workers) move the dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from xentcheck.core.records import VARIANT_KEYS, VariantOutput

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


@dataclass
class RunReply:
    """The worker's answer to a RunRequest: one VariantOutput per variant that applies (their
    arrays in the request's .npz files), or one "error" entry when the worker itself failed."""
    case_id: str | None
    results: list[VariantOutput] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"op": "result", "case_id": self.case_id, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict) -> RunReply:
        return cls(data.get("case_id"), [VariantOutput.from_dict(e) for e in data.get("results") or []])


@dataclass
class TimeRequest:
    """bench: time forward, backward and forward+backward of `variants` (impl, mode; empty: the
    backend's default ones) on case `case_id`; min_block, blocks and warmup as timing.measure
    takes them (None: its defaults)."""
    case_id: str
    seed: int
    device: str
    variants: list[tuple[str, str]] = field(default_factory=list)
    min_block: float | None = None
    blocks: int | None = None
    warmup: float | None = None
    inputs: str | None = None  # a user file's case: the file the worker reads its arrays from

    MEASURE = ("min_block", "blocks", "warmup")

    def measure_options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.MEASURE if getattr(self, k) is not None}

    def to_dict(self) -> dict:
        out = {"op": "time", "case_id": self.case_id, "seed": self.seed, "device": self.device,
               "variants": [list(v) for v in self.variants], **self.measure_options()}
        if self.inputs is not None:
            out["inputs"] = self.inputs
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TimeRequest:
        return cls(case_id=data["case_id"], seed=data["seed"], device=data["device"],
                   variants=[(str(i), str(m)) for i, m in data.get("variants") or []],
                   **{k: data[k] for k in cls.MEASURE if k in data}, inputs=data.get("inputs"))


@dataclass
class TimedVariant:
    """One variant's timings in a TimingReply: its phases' statistics (timing.measure's dicts) and
    the worker's peak resident memory while it ran (`peak_reset` True: the high-water mark was
    reset to the resident set just before the variant, so the peak is the variant's own, its inputs
    included; False: the kernel refused the reset and the peak is the worker's since it started),
    and its resident set at that reset (`rss_start_bytes`: the worker with the variant's inputs,
    before its first call); or why it was skipped or failed."""
    status: str  # "ok", "error" or "skipped"
    variant: dict = field(default_factory=dict)  # records.variant_info (a skip of no variant: empty)
    phases: dict[str, dict] | None = None
    peak_rss_bytes: int | None = None
    peak_reset: bool | None = None
    rss_start_bytes: int | None = None
    notes: list[str] = field(default_factory=list)
    reason: str = ""  # skipped: why
    error: str = ""  # error: "Type: message"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {**self.variant}
        if self.notes:
            out["notes"] = self.notes
        if self.phases is not None:
            out["phases"] = self.phases
        out["status"] = self.status
        if self.reason:
            out["reason"] = self.reason
        if self.error:
            out["error"] = self.error
        if self.variant:
            out["peak_rss_bytes"] = self.peak_rss_bytes
            if self.peak_reset is not None:
                out["peak_reset"] = self.peak_reset
            if self.rss_start_bytes is not None:
                out["rss_start_bytes"] = self.rss_start_bytes
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TimedVariant:
        return cls(status=data.get("status", "error"), variant={k: data[k] for k in VARIANT_KEYS if k in data},
                   phases=data.get("phases"), peak_rss_bytes=data.get("peak_rss_bytes"), peak_reset=data.get("peak_reset"),
                   rss_start_bytes=data.get("rss_start_bytes"),
                   notes=list(data.get("notes") or []), reason=data.get("reason", ""), error=data.get("error", ""))


@dataclass
class TimingReply:
    """The worker's answer to a TimeRequest: one TimedVariant per chosen variant (or one skip)."""
    case_id: str
    results: list[TimedVariant] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"op": "timing", "case_id": self.case_id, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict) -> TimingReply:
        return cls(data["case_id"], [TimedVariant.from_dict(e) for e in data.get("results") or []])


@dataclass
class Quit:
    """The parent's last message: the worker exits."""

    def to_dict(self) -> dict:
        return {"op": "quit"}

    @classmethod
    def from_dict(cls, data: dict) -> Quit:
        return cls()


Message = Hello | RunRequest | RunReply | TimeRequest | TimingReply | Quit
_BY_OP: dict[str, Any] = {"hello": Hello, "run": RunRequest, "result": RunReply, "time": TimeRequest,
                          "timing": TimingReply, "quit": Quit}


def message(data: dict) -> Message:
    """The record of a message that came over the pipe, by its "op" (ValueError for an unknown one)."""
    kind = _BY_OP.get(data.get("op", ""))
    if kind is None:
        raise ValueError(f"unknown message op {data.get('op')!r}")
    return kind.from_dict(data)
