"""What a run does, validated: backends, dtypes, seed, cases, device, tolerances, timeout, and the
workers' memory ceiling.

The command line builds a RunPlan from its options; the plan is stored as run.json in the
output folder before any work starts, and `xentcheck run --resume DIR` rebuilds the very same
plan from it. The Runner takes the plan itself (with run-time settings such as the log folder
beside it, runner.RunOptions). Every problem is a ValueError with a one-line message (the CLI turns it into
`xentcheck: error: ...` and exit status 2).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xentcheck.core.cases import Case, default_suite, full_suite
from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.core.tolerances import PRESETS, Tolerances
from xentcheck.run import memory

RUN_FILE = "run.json"
FORMAT = 1
DEVICES: tuple[str, ...] = ("cpu", "cuda")


@dataclass
class RunPlan:
    backends: list[str]  # worker specs: built-in or entry-point names, "file:/absolute/path.py"
    dtypes: list[str]
    seed: int
    cases: list[Case]
    device: str = "cpu"
    preset: str = "xentcheck"
    rtol: list[str] = field(default_factory=list)  # override specs, applied in order
    atol: list[str] = field(default_factory=list)
    case_timeout: float = 300.0
    suite: str = "default"  # "default" or "full": which implementations x modes run
    impls: list[str] | None = None
    modes: list[str] | None = None
    properties: bool = False
    case_order: list[str] = field(default_factory=list)  # the unsharded suite's ids (for merge)
    shard: list[int] | None = None  # [index, count], 1-based
    interpreters: dict[str, str] = field(default_factory=dict)  # --python LABEL -> executable
    known_file: str | None = None
    # bytes of resident memory a backend worker may hold (run/memory.py); None: no ceiling
    worker_memory: int | None = field(default_factory=memory.default)

    @property
    def tolerances(self) -> Tolerances:
        """The preset with the --rtol/--atol overrides applied (a fresh object each time)."""
        tol = Tolerances(self.preset)
        for spec in self.rtol:
            tol.override("rtol", spec)
        for spec in self.atol:
            tol.override("atol", spec)
        return tol

    def to_json(self) -> dict:
        data = asdict(self)
        data["cases"] = [c.id for c in self.cases]
        sources = {c.id: c.source for c in self.cases if c.source is not None}
        if sources:  # a user's file cases (--inputs): the file each reads (only then: run.json as before)
            data["inputs"] = sources
        return {"format": FORMAT, **data}

    @classmethod
    def from_json(cls, data: object) -> RunPlan:
        """The plan stored in run.json; ValueError naming the first field that is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported format {data.get('format')!r} (expected {FORMAT})")
        fields = ("backends", "dtypes", "seed", "cases", "device", "preset", "rtol", "atol", "case_timeout")
        missing = [f for f in fields if f not in data]
        if missing:
            raise ValueError(f"missing field {missing[0]!r}")
        for name in ("backends", "dtypes", "cases", "rtol", "atol"):
            if not (isinstance(data[name], list) and all(isinstance(v, str) for v in data[name])):
                raise ValueError(f"field {name!r} must be a list of strings")
        for name in ("device", "preset"):
            if not isinstance(data[name], str):
                raise ValueError(f"field {name!r} must be a string")
        if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
            raise ValueError("field 'seed' must be an integer")
        timeout = data["case_timeout"]
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise ValueError("field 'case_timeout' must be a number")
        try:
            timeout = float(timeout)
        except OverflowError:
            raise ValueError("field 'case_timeout' is out of range") from None
        labels = set(dict(data.get("interpreters") or {}))
        own = [s.rpartition("@")[0] if s.rpartition("@")[2] in labels else s for s in data["backends"]]  # BACKEND@LABEL
        for spec in own:
            if spec.startswith("file:"):
                check_backend_file(spec[len("file:"):])
        known = set(known_backends()) | set(optional_backends())
        unknown = [s for s in own if not s.startswith("file:") and s not in known]
        if unknown:
            raise ValueError(f"unknown backend {unknown[0]!r}")
        if not data["backends"]:
            raise ValueError("field 'backends' is empty")
        suite = data.get("suite", "default")
        if suite not in SUITES:
            raise ValueError(f"field 'suite' must be one of {', '.join(SUITES)}")
        for name in ("impls", "modes"):
            value = data.get(name)
            if value is not None and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                raise ValueError(f"field {name!r} must be null or a non-empty list of strings")
        if not isinstance(data.get("properties", False), bool):
            raise ValueError("field 'properties' must be true or false")
        impls, modes = variant_filters(_join(data.get("impls")), _join(data.get("modes")), data["backends"])
        extra: dict[str, Any] = {}  # the optional fields that are set, by name
        if data.get("case_order") is not None:
            extra["case_order"] = [str(i) for i in data["case_order"]]
        if data.get("shard") is not None:
            extra["shard"] = [int(v) for v in data["shard"]]
        if data.get("interpreters"):
            extra["interpreters"] = {str(k): str(v) for k, v in dict(data["interpreters"]).items()}
        if data.get("known_file") is not None:
            extra["known_file"] = str(data["known_file"])
        if "worker_memory" in data:  # else (a run.json from before the ceiling) this machine's default
            extra["worker_memory"] = memory.check(data["worker_memory"])
        sources = data.get("inputs") or {}
        if not (isinstance(sources, dict) and all(isinstance(v, str) for v in sources.values())):
            raise ValueError("field 'inputs' must map case ids to file paths")
        plan = cls(backends=list(data["backends"]), dtypes=parse_dtypes(",".join(data["dtypes"])),
                   seed=check_seed(data["seed"]), cases=[_case(i, sources.get(i)) for i in data["cases"]],
                   device=data["device"], preset=data["preset"], rtol=list(data["rtol"]),
                   atol=list(data["atol"]), case_timeout=check_timeout(timeout), suite=suite,
                   impls=impls, modes=modes, properties=data.get("properties", False), **extra)
        plan.validate()
        return plan

    def validate(self) -> None:
        if not self.cases:
            raise ValueError("no case matches the given --case and --dtypes")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r} (known: {', '.join(DEVICES)})")
        _ = self.tolerances  # raises on an unknown preset, a malformed --rtol/--atol


# --- the pieces, each usable on its own --------------------------------------------------

def _case(case_id: str, source: str | None) -> Case:
    """A stored case; a user file's is checked against its file now (changed or gone: refused
    before any worker starts)."""
    case = Case.from_id(case_id, source)
    if case.from_file:
        from xentcheck.core.user_inputs import inputs_of
        inputs_of(case)
    return case


def input_cases(paths: tuple[str, ...] | list[str]) -> list[Case]:
    """The cases of the user's files (--inputs), each read and checked now: a bad file is a
    ValueError (one line naming it) before any worker starts."""
    from xentcheck.core.user_inputs import load

    return list(dict.fromkeys(load(p)[0] for p in paths))


SUITES: tuple[str, ...] = ("default", "full")


def _join(value: list[str] | None) -> str | None:
    return None if value is None else ",".join(value)


def select_variants(variants: list[dict], suite: str, impls: list[str] | None, modes: list[str] | None) -> list[dict]:
    """The implementations x modes to run: named ones, else the suite's (opt-in modes only when named)."""
    chosen = []
    for v in variants:
        if v.get("opt_in") and not (modes and v["mode"] in modes):
            continue
        if (impls and v["impl"] not in impls) or (modes and v["mode"] not in modes):
            continue
        if not impls and not modes and suite == "default" and not v.get("default", True):
            continue
        chosen.append(v)
    return chosen


def variant_filters(impls: str | None, modes: str | None, specs: list[str]) -> tuple[list[str] | None, list[str] | None]:
    """--impls / --modes as lists, checked against the built-in backends' implementations and modes
    (class-level data: no framework is imported). With a plugin in the run, other names may be its own."""
    from xentcheck.backends.registry import BUILTIN, create

    known = [v for name in BUILTIN for v in create(name).variants()]
    plugins = any(s not in BUILTIN for s in specs)
    out: list[list[str] | None] = []
    for value, what, names in ((impls, "impls", {v.impl for v in known}), (modes, "modes", {v.mode for v in known})):
        if value is None:
            out.append(None)
            continue
        items = list(dict.fromkeys(split_list(value, what)))
        unknown = [i for i in items if i not in names]
        if unknown and not plugins:
            raise ValueError(f"unknown {what[:-1]} {unknown[0]!r} (known: {', '.join(sorted(names))})")
        out.append(items)
    return out[0], out[1]


def split_list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValueError(f"--{what} needs at least one name")
    return items


def known_backends() -> list[str]:
    from xentcheck.backends.registry import known_names

    return known_names()


def optional_backends() -> list[str]:
    """Backends run only when named (registry.OPTIONAL: the optional linear-CE kernels)."""
    from xentcheck.backends.registry import OPTIONAL

    return list(OPTIONAL)


def check_backend_file(path: str) -> str:
    """The absolute path of a readable plugin file, with its "::NAME" (a Backend in it) if given."""
    from xentcheck.backends.registry import NAME_SEP, split_file

    path, name = split_file(path)
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"backend file {path} is a directory")
    if not p.is_file():
        raise ValueError(f"backend file not found: {path}")
    if not os.access(p, os.R_OK):
        raise ValueError(f"backend file {path} is not readable")
    return str(p.resolve()) + (NAME_SEP + name if name else "")


def backend_specs(backends: str | None, files: tuple[str, ...] | list[str], allow_empty: bool = False,
                  suite: str = "full") -> list[str]:
    """Worker specs: named backends (default: all known unless only files are given; for the
    default suite, not registry.FULL_SUITE_ONLY), then files."""
    from xentcheck.backends.registry import FULL_SUITE_ONLY

    known = known_backends()
    specs: list[str] = []
    if allow_empty and backends == "":
        pass
    elif backends is not None:
        for name in split_list(backends, "backends"):
            if name not in known and name not in optional_backends():
                raise ValueError(f"unknown backend {name!r} (known: {', '.join(known + optional_backends())})")
            if name not in specs:
                specs.append(name)
    elif not files:
        specs = [n for n in known if suite == "full" or n not in FULL_SUITE_ONLY]
    for f in files:
        spec = "file:" + check_backend_file(f)
        if spec not in specs:
            specs.append(spec)
    return specs


def parse_dtypes(value: str | None) -> list[str]:
    if value is None:
        return list(DTYPE_NAMES)
    names = split_list(value, "dtypes")
    for n in names:
        if n not in DTYPE_NAMES:
            raise ValueError(f"unknown dtype {n!r} (known: {', '.join(DTYPE_NAMES)})")
    return list(dict.fromkeys(names))


def check_seed(seed: int) -> int:
    if seed < 0 or seed >= 1 << 64:
        raise ValueError(f"seed {seed} out of range (0 <= seed < 2**64)")
    return seed


def check_timeout(seconds: float) -> float:
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(f"--case-timeout must be a number of seconds > 0, got {seconds}")
    return seconds


def select_cases(dtype_names: list[str], n_cases: int | None, ids: tuple[str, ...] | list[str],
                 suite: str = "default") -> list[Case]:
    if ids:
        cases = list(dict.fromkeys(Case.from_id(i) for i in ids))
        own = next((c for c in cases if c.from_file), None)
        if own is not None:
            raise ValueError(f"case {own.id} holds a user's arrays: give its file with --inputs")
        return [c for c in cases if c.dtype in dtype_names]
    cases = full_suite(dtype_names) if suite == "full" else default_suite(dtype_names)
    return cases[:n_cases] if n_cases else cases


def plan_from_options(backends: str | None, backend_files: tuple[str, ...], dtypes: str | None, seed: int,
                      n_cases: int | None, case_ids: tuple[str, ...], device: str, preset: str,
                      rtol: tuple[str, ...], atol: tuple[str, ...], case_timeout: float, suite: str = "default",
                      impls: str | None = None, modes: str | None = None, properties: bool | None = None,
                      input_files: tuple[str, ...] = (), worker_memory: str = "auto") -> RunPlan:
    if preset not in PRESETS:
        raise ValueError(f"unknown tolerance preset {preset!r} (known: {', '.join(PRESETS)})")
    dtype_names = parse_dtypes(dtypes)
    ceiling = memory.parse(worker_memory)
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r} (known: {', '.join(SUITES)})")
    specs = backend_specs(backends, backend_files, suite=suite)
    impl_names, mode_names = variant_filters(impls, modes, specs)
    own = input_cases(input_files)  # --inputs alone: only the user's files; with --cases/--case, both
    generated = select_cases(dtype_names, n_cases, case_ids, suite) if not own or n_cases or case_ids else []
    plan = RunPlan(backends=specs, dtypes=dtype_names, seed=check_seed(seed),
                   cases=generated + [c for c in own if c not in generated], device=device, preset=preset,
                   rtol=list(rtol), atol=list(atol), case_timeout=check_timeout(case_timeout), suite=suite,
                   impls=impl_names, modes=mode_names,
                   properties=(suite == "full") if properties is None else properties, worker_memory=ceiling)
    plan.validate()
    return plan


# --- run.json --------------------------------------------------------------------------

def save(plan: RunPlan, folder: Path) -> None:
    from xentcheck.reports.files import write_atomic

    write_atomic(Path(folder) / RUN_FILE, json.dumps(plan.to_json(), indent=2) + "\n")


def load(folder: Path) -> RunPlan:
    """The plan of the run in `folder`, for --resume."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"cannot resume {folder}: no such folder")
    path = folder / RUN_FILE
    if not path.is_file():
        raise ValueError(f"cannot resume {folder}: no {RUN_FILE} (not a folder written by xentcheck run)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    try:
        return RunPlan.from_json(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
