"""One bisection from start to end: the candidate versions, both endpoints checked, the search,
and the report rewritten after every version tested (a kill loses no result already computed).

Exit status: 0 the transition was found; 1 an endpoint has the wrong verdict (the good version is
bad, or the bad one good: nothing to bisect in this package); 2 an endpoint cannot be tested (it
does not install or import, or the backend does not run there); 130 interrupted.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from xentcheck.bisect import envs, pins, search, versions
from xentcheck.bisect.indexes import IndexConfig
from xentcheck.bisect.install import Installer, Interpreter
from xentcheck.bisect.subject import MetricRule, Outcome, judge, run_version
from xentcheck.problems import outputs_of

if TYPE_CHECKING:
    from xentcheck.run.plan import RunPlan

EXIT_FOUND, EXIT_ENDPOINT, EXIT_UNTESTABLE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class HuntConfig:
    package: str
    good: str | None
    bad: str | None
    with_pins: dict[str, str]
    template: RunPlan  # the cases and backends, as `run` would run them here
    bad_verdicts: tuple[str, ...]
    index: IndexConfig
    installer: Installer
    python: Interpreter
    cache: Path
    out: Path
    sweep: bool = False
    pre: bool = False
    yanked: bool = False
    rule: MetricRule | None = None
    rebuild: bool = False
    command: str = ""
    subject: dict = field(default_factory=dict)  # what is bisected, for the report


@dataclass
class Step:
    """One version tested."""
    version: str
    outcome: Outcome
    env: envs.Env
    order: int  # 1 for the first version tested
    run_seconds: float = 0.0


class Hunt:
    def __init__(self, config: HuntConfig, say: Callable[[str], None] = print):
        self.c, self.say = config, say
        # the outputs each version's errors are measured on: those the cases' kinds declare
        self.outputs = tuple(o.name for o in outputs_of(config.template.cases))
        self.versions: list[str] = []  # the range, oldest first
        self.left_out: dict[str, str] = {}  # versions in the range bisect does not try, and why
        self.releases: dict[str, versions.Release] = {}
        self.partner_versions: dict[str, set[str]] = {}
        self.verdicts: dict[int, str] = {}
        self.steps: dict[str, Step] = {}
        self.good_env: envs.Env | None = None
        self.status: str = "running"
        self.message = ""
        self.transitions: list[search.Transition] = []
        self.started = time.monotonic()

    # --- the range --------------------------------------------------------------------------------

    def plan_range(self) -> None:
        """The candidate versions from --good to --bad; ValueError (one line) when they cannot be."""
        c = self.c
        self.releases = versions.releases(c.package, c.index)
        if not self.releases:
            raise ValueError(f"no release of {c.package} on {c.index.describe()}")
        good, bad = _normal(c.good, "--good"), _normal(c.bad, "--bad")
        keep = tuple(v for v in (good, bad) if v)
        for v in keep:
            if v not in self.releases:
                raise ValueError(f"{c.package} {v} is not on {c.index.describe()}")
        found, left_out = versions.candidates(self.releases, c.python.version, c.pre, c.yanked, keep)
        tags = versions.supported_tags(c.python.version[:2])
        for partner in pins.LOCKSTEP.get(versions.canonical(c.package), ()):
            theirs = versions.releases(partner, c.index)
            self.partner_versions[partner] = set(theirs)
            for v in list(found):
                if v in theirs and not versions.installable(theirs[v], c.python.version, tags, True):
                    found.remove(v)
                    left_out[v] = f"{partner} {v} has no wheel for Python {c.python.short} on this platform"
        for v in keep:
            if v in left_out:
                raise ValueError(f"{c.package} {v} cannot be tried: {left_out[v]}")
        bad = bad or _installed(c.package, found) or (found[-1] if found else None)
        good = good or (found[0] if found else None)
        if good is None or bad is None:
            raise ValueError(f"no version of {c.package} installs here ({len(left_out)} left out: "
                             f"{'; '.join(sorted(set(left_out.values())))})")
        if versions.parse_version(good) >= versions.parse_version(bad):
            raise ValueError(f"--good {good} must be older than --bad {bad}")
        self.versions = versions.between(found, good, bad)
        lo, hi = versions.parse_version(good), versions.parse_version(bad)
        self.left_out = {v: why for v, why in sorted(left_out.items(), key=lambda kv: versions.parse_version(kv[0]))
                         if lo <= versions.parse_version(v) <= hi}

    @property
    def bound(self) -> int:
        """The builds a bisection without skips needs at most: both endpoints and log2 N halvings."""
        return math.ceil(math.log2(len(self.versions))) + 2 if self.versions else 0

    # --- one version --------------------------------------------------------------------------------

    def env_spec(self, version: str) -> envs.EnvSpec:
        c = self.c
        moved = pins.partners(c.package, version, self.partner_versions)
        if self.good_env is None:
            backends = [b for b in c.template.backends if not b.startswith("file:")]
            attempts = [("resolved", pins.good_requirements(c.package, version, moved, c.with_pins, backends))]
        else:
            good = self.good_env
            attempts = [("pinned", pins.pinned_requirements(c.package, version, moved, c.with_pins, good.freeze)),
                        ("relaxed", pins.relaxed_requirements(c.package, version, moved, c.with_pins, good.freeze,
                                                              good.requires))]
        return envs.EnvSpec(c.package, version, attempts, c.python, c.index.to_json(),
                            {"uv": c.index.uv_args(), "pip": c.index.pip_args()})

    def test(self, i: int) -> str:
        """Build (or reuse) version i's environment, run the cases there, judge; its verdict."""
        c, version = self.c, self.versions[i]
        self.say(f"{c.package} {version}: environment ...")
        env = envs.ensure(self.env_spec(version), c.installer, c.cache, c.rebuild)
        if self.good_env is None and env.ok:
            self.good_env = env
        folder = c.out / "versions" / version
        folder.mkdir(parents=True, exist_ok=True)
        if (Path(env.path) / "build.log").is_file():
            shutil.copyfile(Path(env.path) / "build.log", folder / "build.log")
        how = "cached" if env.reused else f"built in {env.build_seconds:.1f} s"
        started = time.monotonic()
        if not env.ok:
            outcome = Outcome("skip", reason=f"environment: {env.reason}", errors={w: None for w in self.outputs})
        else:
            records, finished = run_version(c.template, env.python, folder)
            if not finished:
                raise KeyboardInterrupt
            good = self.steps[self.versions[0]].outcome.errors if self.versions[0] in self.steps else None
            outcome = judge(records, c.bad_verdicts, self.outputs, c.rule, good)
        step = Step(version, outcome, env, len(self.steps) + 1, round(time.monotonic() - started, 2))
        self.steps[version] = step
        self.verdicts[i] = outcome.verdict
        self.say(f"{c.package} {version}: {outcome.verdict}" + (f" ({outcome.reason[:200]})" if outcome.reason else "")
                 + f" [environment {how}, run {step.run_seconds:.1f} s]")
        self.write()
        return outcome.verdict

    # --- the whole hunt ------------------------------------------------------------------------------

    def run(self) -> int:
        """Check both endpoints, then search; the exit status. plan_range() comes first."""
        c, n = self.c, len(self.versions)
        try:
            for i, expected in ((0, "good"), (n - 1, "bad")):
                verdict = self.test(i)
                if verdict != expected:
                    return self._endpoint(i, expected)
            if c.sweep:
                self.transitions = search.sweep(n, self.test, self.verdicts)
            else:
                self.transitions = [search.bisect(n, self.test, self.verdicts)]
        except KeyboardInterrupt:
            self.status, self.message = "interrupted", "interrupted: the report covers the versions tested so far"
            self.write(final=True)
            return EXIT_INTERRUPTED
        self.status = "found"
        t = self.headline()
        assert t is not None  # a good first and a bad last version make at least one regression
        before, after = self.versions[t.before], self.versions[t.after]
        self.message = f"{c.package} worked up to {before} and stopped working in {after}"
        if t.skipped:
            self.message += f" (or in one of {', '.join(self.versions[j] for j in t.skipped)}, which could not be tested)"
        self.write(final=True)
        return EXIT_FOUND

    def _endpoint(self, i: int, expected: str) -> int:
        c, version = self.c, self.versions[i]
        outcome = self.steps[version].outcome
        which = "--good" if expected == "good" else "--bad"
        if outcome.verdict == "skip":
            self.status = "untestable"
            self.message = f"{which} {c.package} {version} cannot be tested: {outcome.reason}"
            code = EXIT_UNTESTABLE
        elif expected == "good":
            self.status = "good-is-bad"
            self.message = (f"{which} {c.package} {version} is already bad ({outcome.reason}): "
                            "give an older --good")
            code = EXIT_ENDPOINT
        else:
            self.status = "bad-is-good"
            self.message = (f"{which} {c.package} {version} is good with the other packages of the good environment: "
                            f"the change is not in {c.package} (bisect another package, or check --with)")
            code = EXIT_ENDPOINT
        self.write(final=True)
        return code

    def disk_bytes(self) -> int:
        """What the environments of the versions tested occupy together."""
        return envs.disk_bytes(*[s.env.path for s in self.steps.values()])

    def headline(self) -> search.Transition | None:
        """The transition the report leads with: the last regression (the one the bad version has)."""
        regressions = [t for t in self.transitions if t.kind == "regression"]
        return regressions[-1] if regressions else None

    def write(self, final: bool = False) -> None:
        from xentcheck.bisect import report
        report.write(self, final)


def _normal(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        return str(versions.parse_version(value))
    except ValueError as exc:
        raise ValueError(f"{what} {value}: {exc}") from None


def _installed(package: str, found: list[str]) -> str | None:
    """The version installed in this interpreter, when bisect may try it."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        v = str(versions.parse_version(version(package)))
    except (PackageNotFoundError, ValueError):
        return None
    return v if v in found else None
