"""pytest plugin: `pytest --xentcheck` collects the xentcheck suite as ordinary test items.

One item per case x backend (x implementation x mode x dtype: the case id carries the dtype),
named `test_BACKEND[IMPL-MODE-CASE_ID]` under the `xentcheck` collector, so `-k`, `-x`,
`--junitxml` and pytest-xdist (`-n`) work as usual. Items run in-process: each backend is loaded
once per process (per xdist worker), computes the case, and is compared with the high-precision
reference; a discrepancy fails with the harness's explanation, an unsupported dtype or a missing
framework is a skip, a known difference (`--xentcheck-known FILE`) an xfail.

Without `--xentcheck` the plugin adds nothing: a project's own test run is unaffected.
"""

from __future__ import annotations

import pytest

_BACKENDS: dict[str, object] = {}
_KNOWN = pytest.StashKey[list[dict]]()  # the --xentcheck-known file's entries, loaded once per session


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("xentcheck", "softmax cross-entropy verification")
    g.addoption("--xentcheck", action="store_true", help="Collect the xentcheck suite as test items.")
    g.addoption("--xentcheck-backends", metavar="LIST",
                help="Comma-separated backends or plugin .py files (default: every known backend).")
    g.addoption("--xentcheck-dtypes", metavar="LIST", help="Comma-separated dtypes (default: all).")
    g.addoption("--xentcheck-cases", type=int, metavar="N", help="Only the first N cases of the suite.")
    g.addoption("--xentcheck-case", action="append", metavar="ID",
                help="Run this case id (repeatable) instead of the suite, as `xentcheck run --case`.")
    g.addoption("--xentcheck-seed", type=int, default=0, metavar="N", help="Seed of the case inputs (default 0).")
    g.addoption("--xentcheck-tolerances", default="xentcheck", choices=["xentcheck", "torch", "jax"],
                help="Tolerance table (default: xentcheck).")
    g.addoption("--xentcheck-known", metavar="FILE", help="Known-differences TOML: matching failures xfail.")


class XentcheckFailure(Exception):
    """A result out of tolerance, NaN/inf where the reference differs, or a raised error."""


def _specs(value: str | None) -> list[str]:
    from pathlib import Path

    from xentcheck.backends.registry import known_names

    if not value:
        return known_names()
    specs = []
    for name in (v.strip() for v in value.split(",") if v.strip()):
        if name.endswith(".py"):
            if not Path(name).is_file():
                raise pytest.UsageError(f"--xentcheck-backends: backend file not found: {name}")
            specs.append("file:" + str(Path(name).resolve()))
        elif name in known_names():
            specs.append(name)
        else:
            raise pytest.UsageError(f"--xentcheck-backends: unknown backend {name!r} (known: {', '.join(known_names())})")
    return specs


def _items(session: pytest.Session) -> list[pytest.Item]:
    from xentcheck.backends.registry import create
    from xentcheck.core.cases import Case, default_suite
    from xentcheck.core.dtypes import DTYPE_NAMES

    opt = session.config.getoption
    dtypes = [d.strip() for d in (opt("xentcheck_dtypes") or ",".join(DTYPE_NAMES)).split(",") if d.strip()]
    unknown = [d for d in dtypes if d not in DTYPE_NAMES]
    if unknown:
        raise pytest.UsageError(f"--xentcheck-dtypes: unknown dtype {unknown[0]!r} (known: {', '.join(DTYPE_NAMES)})")
    cases = default_suite(dtypes)
    if opt("xentcheck_case"):
        try:
            cases = [Case.from_id(i) for i in opt("xentcheck_case")]
        except ValueError as exc:
            raise pytest.UsageError(f"--xentcheck-case: {exc}") from None
    if opt("xentcheck_cases"):
        cases = cases[:opt("xentcheck_cases")]
    suite = XentcheckSuite.from_parent(session, name="xentcheck", nodeid="xentcheck")
    items: list[pytest.Item] = []
    from xentcheck.core.records import variant_info
    from xentcheck.problems import runs
    from xentcheck.run.plan import select_variants

    for spec in _specs(opt("xentcheck_backends")):
        backend = create(spec)  # class attributes only: frameworks are imported when an item runs
        variants = [v for v in backend.variants()
                    if v.impl in {s["impl"] for s in select_variants([variant_info(v)], "default", None, None)}]
        for case in cases:
            for v in variants:
                if case.labels not in v.label_forms or not runs(v, case):
                    continue
                impl = str(v.impl).replace(" ", "_")
                items.append(XentcheckItem.from_parent(
                    suite, name=f"test_{backend.name}[{impl}-{v.mode}-{case.id}]", spec=spec, case=case, variant=v))
    return items


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection, which runs in the same hook
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if config.getoption("xentcheck"):
        new = _items(session)
        items.extend(new)
        # report them as collected, so "collected N items" and --collect-only count them
        config.hook.pytest_collectreport(report=pytest.CollectReport("xentcheck", "passed", None, list(new)))


class XentcheckSuite(pytest.Collector):
    def collect(self):  # items are made in pytest_collection_modifyitems
        return []


def _backend(spec: str):
    if spec not in _BACKENDS:
        from xentcheck.backends.registry import create

        b = create(spec)
        try:
            b.load()
        except ImportError as exc:
            _BACKENDS[spec] = f"{b.name}: framework not installed ({exc})"
        else:
            _BACKENDS[spec] = b
    return _BACKENDS[spec]


def _known(config: pytest.Config) -> list[dict]:
    path = config.getoption("xentcheck_known")
    if not path:
        return []
    if _KNOWN not in config.stash:
        from xentcheck.regress import known

        try:
            config.stash[_KNOWN] = known.load(path)
        except known.KnownFileError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_KNOWN]


class XentcheckItem(pytest.Item):
    def __init__(self, *, spec: str, case, variant, **kw):
        super().__init__(**kw)
        self.spec, self.case, self.variant = spec, case, variant
        self.user_properties.append(("case_id", case.id))

    def runtest(self) -> None:
        from xentcheck.core.cases import make_inputs
        from xentcheck.core.evaluate import Subject, evaluate
        from xentcheck.core.metrics import BAD_VERDICTS
        from xentcheck.core.tolerances import Tolerances
        from xentcheck.problems import problem_of
        from xentcheck.run.worker import output_of

        backend = _backend(self.spec)
        if isinstance(backend, str):
            pytest.skip(backend)
        seed = self.config.getoption("xentcheck_seed")
        inputs = make_inputs(self.case, seed)
        v = self.variant
        result = evaluate(self.case, Subject(backend=backend.name, impl=v.impl, mode=v.mode, api=v.api, seed=seed,
                                             documented=v.documented),
                          output_of(backend, v, self.case, inputs, "cpu"),
                          Tolerances(self.config.getoption("xentcheck_tolerances")),
                          reference=lambda: problem_of(self.case).reference(self.case, inputs, v.semantics),
                          known=_known(self.config))
        assert result.reasons is not None  # evaluate() gives every result its reasons
        if result.verdict == "skipped":
            pytest.skip(result.reasons[0])
        if result.verdict == "known":
            assert result.known is not None  # a known result names its entry (known.mark_known)
            pytest.xfail(f"known difference {result.known['id']}: {result.known['link']} "
                         f"({result.original_verdict}: {'; '.join(result.reasons)})")
        if result.verdict in BAD_VERDICTS:
            raise XentcheckFailure(f"{result.verdict}: " + "; ".join(result.reasons))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, XentcheckFailure):
            return f"{self.case.id} on {self.spec}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"xentcheck {self.name}"
