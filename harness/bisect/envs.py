"""The cached environment of one version: built once, reused by every later bisect that asks for it.

An environment lives in `<cache>/<package>-<version>-py<X.Y>-<key>/`: `venv/`, `build.log`, and
`env.json`, written last (atomically), which marks it complete. The key is a digest of what went
into it: the package and version, every requirement (the pins included), the interpreter and the
indexes; another pin or index is another environment. The cache is `$XDG_CACHE_HOME/xentcheck/envs`
(`~/.cache/xentcheck/envs`; `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows).

A version whose install fails, or whose package (or numpy, ml_dtypes, mpmath, which the worker
needs) does not import, is recorded as failed with the reason, its venv deleted: bisect skips it,
and a later bisect skips it again without trying (`--rebuild` tries again), unless the failure
looks like the network's (a download that failed or timed out): that one is tried again next time.
Builds of one environment by two processes at once are serialised by a lock file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xentcheck.bisect.install import Installer, Interpreter, create_venv, install, venv_python
from xentcheck.bisect.versions import canonical

FORMAT = 1
RECORD = "env.json"
INSPECT_TIMEOUT_S = 900.0
WORKER_NEEDS = ("numpy", "ml_dtypes", "mpmath")  # what the harness's worker imports besides the backend
# an install failure with one of these in its reason may not happen again: it is not cached
TRANSIENT = ("failed to fetch", "failed to download", "timed out", "connection", "temporary failure in name resolution",
             "network is unreachable", "error sending request", "read timed out", "http error 5", "status code: 5")

# Run in the environment after the install: what is installed, what each needs, the package's
# Project-URLs, and whether the package and the worker's needs import. Standard library only.
INSPECT = r"""
import importlib, json, re, sys
from importlib import metadata

def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()

name, needs = sys.argv[1], sys.argv[2:]
freeze, requires = {}, {}
for d in metadata.distributions():
    if not d.metadata["Name"]:
        continue
    freeze[canon(d.metadata["Name"])] = d.version
    requires[canon(d.metadata["Name"])] = sorted({canon(re.split(r"[\s;<>=!~\[(@]", r.strip(), maxsplit=1)[0])
                                                 for r in (d.requires or []) if r.strip()})
out = {"freeze": freeze, "requires": requires, "project_urls": {}, "errors": []}
try:
    dist = metadata.distribution(name)
except metadata.PackageNotFoundError:
    out["errors"].append(f"{name} is not installed")
    dist = None
top = []
if dist is not None:
    for line in dist.metadata.get_all("Project-URL") or []:
        label, _, url = line.partition(",")
        out["project_urls"][label.strip()] = url.strip()
    if dist.metadata.get("Home-page"):
        out["project_urls"].setdefault("Home-page", dist.metadata["Home-page"])
    top = (dist.read_text("top_level.txt") or "").split()
    if not top:
        parts = {f.parts[0] for f in dist.files or [] if len(f.parts) > 1 or f.suffix == ".py"}
        top = sorted(p[:-3] if p.endswith(".py") else p for p in parts if ".dist-info" not in p and ".data" not in p)
for module in needs + [t for t in top if t.isidentifier() and not t.startswith("_") and t != "tests"]:
    try:
        importlib.import_module(module)
    except BaseException as exc:
        out["errors"].append(f"import {module} failed: {type(exc).__name__}: {exc}")
print(json.dumps(out))
"""


@dataclass
class EnvSpec:
    """What one environment is asked for: `attempts`, (policy, requirements) pairs tried in order
    until one installs (pins.py: "resolved" for the good version; "pinned", then "relaxed", for
    the others)."""

    package: str
    version: str
    attempts: list[tuple[str, list[str]]]
    python: Interpreter
    index: dict  # IndexConfig.to_json()
    index_args: dict[str, list[str]]  # installer kind -> its index arguments

    def key(self) -> str:
        data = {"format": FORMAT, "package": self.package, "version": self.version,
                "attempts": [[p, r] for p, r in self.attempts],
                "python": [self.python.path, list(self.python.version)], "index": self.index}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def folder_name(self) -> str:
        return f"{canonical(self.package)}-{self.version}-py{self.python.short}-{self.key()}"


@dataclass
class Env:
    """A built (or failed) environment, as env.json stores it."""

    package: str
    version: str
    path: str  # the environment's folder (venv/, build.log, env.json)
    python: str  # the venv's interpreter
    status: str  # "ok" or "failed"
    reason: str = ""  # why it failed
    policy: str = ""  # which attempt installed: "resolved", "pinned" or "relaxed" (pins.py)
    requirements: list[str] = field(default_factory=list)  # what was installed
    freeze: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    requires: dict[str, list[str]] = field(default_factory=dict)  # name -> the names it requires
    project_urls: dict[str, str] = field(default_factory=dict)  # the package's Project-URLs
    installer: str = ""
    build_seconds: float = 0.0
    size_bytes: int = 0
    built_at: str = ""
    reused: bool = False  # found in the cache by this run (not stored)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("reused")
        return {"format": FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict) -> Env:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not an environment record of this version")
        names = set(cls.__dataclass_fields__) - {"reused"}
        return cls(**{k: v for k, v in data.items() if k in names})


def cache_root() -> Path:
    """$XDG_CACHE_HOME/xentcheck/envs, or the platform's cache folder."""
    if os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path.home() / ".cache"
    return base / "xentcheck" / "envs"


def disk_bytes(*folders: Path | str) -> int:
    """Bytes the files under `folders` occupy, each inode once (uv hard-links from its cache)."""
    seen, total = set(), 0
    for root, _, files in (w for folder in folders for w in os.walk(folder)):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return total


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (no lock where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load(folder: Path) -> Env | None:
    """The complete environment in `folder`, or None (absent, half built, or unreadable)."""
    try:
        env = Env.from_json(json.loads((folder / RECORD).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    if env.ok and not Path(env.python).exists():
        return None
    return env


def _inspect(python: Path, package: str, log: Path) -> dict:
    # -I: the environment alone; neither the working folder (a checkout's xentcheck.egg-info would
    # join the freeze as a pin no index has) nor PYTHONPATH nor the user's site-packages
    out = subprocess.run([str(python), "-I", "-c", INSPECT, package, *WORKER_NEEDS], capture_output=True, text=True,
                         timeout=INSPECT_TIMEOUT_S)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ inspect {package}\n{out.stderr[-4000:]}[exit status {out.returncode}]\n")
    if out.returncode != 0:
        return {"errors": [f"inspecting the environment failed: {out.stderr.strip()[-300:]}"]}
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"errors": ["inspecting the environment printed no result"]}


def _build(spec: EnvSpec, folder: Path, installer: Installer) -> Env:
    from xentcheck.reports.files import write_atomic

    started = time.monotonic()
    venv, log = folder / "venv", folder / "build.log"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = Env(spec.package, spec.version, str(folder), str(venv_python(venv)), "failed", installer=installer.kind,
              built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    ok, reason = create_venv(installer, spec.python, venv, log)
    if not ok:
        env.reason = f"cannot create a venv: {reason}"
    else:
        args = spec.index_args.get(installer.kind, [])
        reasons = []
        for policy, requirements in spec.attempts:
            ok, reason = install(installer, venv, requirements, args, log)
            if ok:
                env.policy, env.requirements = policy, requirements
                break
            reasons.append(f"{policy}: {reason}")
        if not ok:
            same = len({r.partition(": ")[2] for r in reasons}) == 1
            env.reason = "install failed: " + (reasons[-1].partition(": ")[2] if same else " | ".join(reasons))
        else:
            info = _inspect(venv_python(venv), spec.package, log)
            env.freeze, env.requires = info.get("freeze", {}), info.get("requires", {})
            env.project_urls = info.get("project_urls", {})
            if info.get("errors"):
                env.reason = "; ".join(info["errors"])[:600]
            else:
                env.status = "ok"
    if not env.ok:
        shutil.rmtree(venv, ignore_errors=True)  # a failed jax install can leave hundreds of MB
    env.build_seconds = round(time.monotonic() - started, 2)
    env.size_bytes = disk_bytes(folder)
    if env.ok or not any(t in env.reason.lower() for t in TRANSIENT):
        write_atomic(folder / RECORD, json.dumps(env.to_json(), indent=1) + "\n")
    return env


def ensure(spec: EnvSpec, installer: Installer, cache: Path, rebuild: bool = False) -> Env:
    """The environment for `spec`, from the cache or built now (env.reused tells which)."""
    cache.mkdir(parents=True, exist_ok=True)
    folder = cache / spec.folder_name()
    with _locked(cache / f".{folder.name}.lock"):
        env = None if rebuild else load(folder)
        if env is not None:
            env.reused = True
            return env
        return _build(spec, folder, installer)
