"""What each environment asks for (pins, lockstep partners, the relaxed fallback), a version's
verdict from its results (by verdict, and by the error's size with --metric), and the report's
freeze difference and release-notes links."""

import math

import pytest

from xentcheck.bisect import pins
from xentcheck.bisect.report import freeze_diff, release_links
from xentcheck.bisect.subject import MetricRule, judge
from xentcheck.core.records import Metrics, Result

OUT = ("loss", "grad")  # a plain CE case's declared outputs (problems.outputs_of)

GOOD_FREEZE = {"jax": "0.4.38", "jaxlib": "0.4.38", "optax": "0.2.4", "numpy": "2.1.0", "ml-dtypes": "0.5.0",
               "scipy": "1.14.0", "mpmath": "1.3.0", "chex": "0.1.87", "absl-py": "2.1.0"}
GOOD_REQUIRES = {"jax": ["jaxlib", "ml-dtypes", "numpy", "opt-einsum", "scipy"], "jaxlib": ["ml-dtypes", "numpy", "scipy"],
                 "optax": ["absl-py", "chex", "jax", "jaxlib", "numpy"], "scipy": ["numpy"], "chex": ["jax", "numpy"],
                 "numpy": [], "ml-dtypes": ["numpy"], "mpmath": [], "absl-py": []}


def test_jaxlib_moves_with_jax_to_the_same_version_where_it_exists():
    theirs = {"jaxlib": {"0.5.1", "0.5.3"}}
    assert pins.partners("jax", "0.5.3", theirs) == {"jaxlib": "0.5.3"}
    assert pins.partners("jax", "0.5.2", theirs) == {"jaxlib": None}  # no jaxlib 0.5.2: jax's requirement decides
    assert pins.partners("JAX", "0.5.3", theirs) == {"jaxlib": "0.5.3"}
    assert pins.partners("tensorflow", "2.16.1", {}) == {"keras": None, "tensorboard": None, "tf-keras": None}
    assert pins.partners("optax", "0.2.5", theirs) == {}


def test_the_good_environment_names_what_the_backend_and_the_worker_need():
    reqs = pins.good_requirements("optax", "0.2.4", {}, {"jax": "jax==0.4.38"}, ["jax"])
    assert reqs == ["optax==0.2.4", "jax==0.4.38", "numpy", "ml-dtypes", "mpmath"]
    reqs = pins.good_requirements("jax", "0.4.38", {"jaxlib": "0.4.38"}, {}, ["jax"])
    assert reqs == ["jax==0.4.38", "jaxlib==0.4.38", "optax", "numpy", "ml-dtypes", "mpmath"]


def test_other_versions_pin_everything_else_to_the_good_environment():
    reqs = pins.pinned_requirements("jax", "0.5.3", {"jaxlib": "0.5.3"}, {"optax": "optax==0.2.4"}, GOOD_FREEZE)
    assert reqs[:3] == ["jax==0.5.3", "jaxlib==0.5.3", "optax==0.2.4"]
    assert sorted(reqs[3:]) == ["absl-py==2.1.0", "chex==0.1.87", "ml-dtypes==0.5.0", "mpmath==1.3.0", "numpy==2.1.0",
                                "scipy==1.14.0"]


def test_the_fallback_frees_the_moved_packages_dependencies_and_keeps_the_rest():
    reqs = pins.relaxed_requirements("jax", "0.6.0", {"jaxlib": "0.6.0"}, {"optax": "optax==0.2.4"}, GOOD_FREEZE,
                                     GOOD_REQUIRES)
    # jax and jaxlib need numpy, ml_dtypes and scipy: unpinned; optax (--with) and the unrelated stay pinned
    assert reqs == ["jax==0.6.0", "jaxlib==0.6.0", "optax==0.2.4", "absl-py==2.1.0", "chex==0.1.87", "mpmath==1.3.0",
                    "ml-dtypes", "numpy", "scipy"]
    assert pins.dependencies(["chex"], GOOD_REQUIRES) == {"chex", "jax", "jaxlib", "numpy", "ml-dtypes", "scipy"}


def test_with_pins_are_checked():
    assert pins.parse_with(["jax==0.4.38", "Optax>=0.2"], "toyxent") == {"jax": "jax==0.4.38", "optax": "Optax>=0.2"}
    for values, message in ((["jax=="], "not a requirement"), (["toyxent==1"], "is the package being bisected"),
                            (["jax==1", "JAX==2"], "twice")):
        with pytest.raises(ValueError, match=message):
            pins.parse_with(values, "toyxent")


def _rec(verdict, loss=None, grad=None, reason=""):
    r = Result(verdict=verdict, reasons=[reason] if reason else [])
    if loss is not None:
        r.metrics["loss"] = Metrics(ulp_err=loss)
    if grad is not None:
        r.metrics["grad"] = Metrics(ulp_err=grad)
    return r


def test_a_version_is_bad_on_a_bad_verdict_good_when_all_pass_and_a_skip_otherwise():
    bad = ("fail", "nonfinite")
    o = judge([_rec("pass", 0.5, 3.0), _rec("fail", 2.3e6, 0.4, "loss out of tolerance")], bad, OUT)
    assert (o.verdict, o.reason, o.errors, o.counts) == ("bad", "fail: loss out of tolerance", {"loss": 2.3e6, "grad": 3.0},
                                                          {"pass": 1, "fail": 1})
    assert judge([_rec("pass", 0.5, 3.0), _rec("widened", 0.1, 0.2)], bad, OUT).verdict == "good"
    o = judge([_rec("pass", 0.5, 3.0), _rec("error", reason="backend broken: optax failed to load")], bad, OUT)
    assert (o.verdict, o.reason) == ("skip", "error: backend broken: optax failed to load")
    assert judge([], bad, OUT).verdict == "skip"
    assert judge([_rec("crashed", reason="worker killed by SIGSEGV")], bad + ("crashed",), OUT).verdict == "bad"
    o = judge([_rec("nonfinite", grad=0.5)], bad, OUT)
    assert o.verdict == "bad" and o.errors["loss"] == math.inf


def test_with_a_metric_the_errors_growth_over_the_good_version_decides():
    rule = MetricRule("ulp_err", factor=2.0, floor=1.0)
    good = judge([_rec("pass", 0.45, 0.4)], (), OUT, rule)
    assert good.verdict == "good" and good.errors == {"loss": 0.45, "grad": 0.4}
    assert judge([_rec("pass", 0.85, 0.7)], (), OUT, rule, good.errors).verdict == "good"  # under the floor: noise
    assert judge([_rec("pass", 1.5, 0.4)], (), OUT, rule, {"loss": 1.0, "grad": 0.4}).verdict == "good"  # grew 1.5 x
    o = judge([_rec("pass", 3.5, 0.4)], (), OUT, rule, good.errors)  # passes its tolerance, but grew 7.8 x
    assert o.verdict == "bad" and o.reason.startswith("loss ulp_err 3.5 is 7.78 x the good version's 0.45")
    assert judge([_rec("pass", 2.0, 0.4)], (), OUT, rule, {"loss": 0.0, "grad": 0.4}).verdict == "bad"  # from exact
    assert judge([_rec("nonfinite", grad=0.4)], (), OUT, rule, good.errors).verdict == "bad"
    assert judge([_rec("error", reason="backend broken")], (), OUT, rule, good.errors).verdict == "skip"


def test_the_freeze_difference_and_release_links():
    assert freeze_diff({"optax": "0.2.5", "numpy": "2.1", "old": "1"}, {"optax": "0.2.6", "numpy": "2.1", "new": "2"}) == [
        {"name": "new", "good": None, "bad": "2"}, {"name": "old", "good": "1", "bad": None},
        {"name": "optax", "good": "0.2.5", "bad": "0.2.6"}]
    urls = {"documentation": "https://optax.readthedocs.io/", "homepage": "https://github.com/google-deepmind/optax",
            "repository": "https://github.com/google-deepmind/optax.git"}
    assert release_links(urls) == [{"label": "releases", "url": "https://github.com/google-deepmind/optax/releases"}]
    assert release_links({"Changelog": "https://x.example/changes", "Source": "https://github.com/a/b"}) == [
        {"label": "Changelog", "url": "https://x.example/changes"}]
    assert release_links({"Home-page": "https://x.example"}) == [{"label": "Home-page", "url": "https://x.example"}]


def test_an_installers_failure_is_told_from_its_first_error_on():
    from xentcheck.bisect.install import why
    uv = ("$ uv venv x\n[exit status 0]\n$ uv pip install --python x optax==0.2.8 jax==0.4.38\n"
          "Using Python 3.11.7 environment at: venv\nerror: No solution found when resolving dependencies\n"
          "  cause: Because optax>=0.2.8 depends on jax>=0.5.3 and you require optax==0.2.8, we can conclude that you "
          "require jax>=0.5.3.\n         And because you require jax==0.4.38, we can conclude that your requirements are "
          "unsatisfiable.\n[exit status 1]\n")
    assert why(uv) == ("error: No solution found when resolving dependencies cause: Because optax>=0.2.8 depends on "
                       "jax>=0.5.3 and you require optax==0.2.8, we can conclude that you require jax>=0.5.3. And because "
                       "you require jax==0.4.38, we can conclude that your requirements are unsatisfiable.")
    pip = ("$ python -m pip --python x install toyxent==1.1.0\nLooking in links: /w\nProcessing /w/toyxent-1.1.0.whl\n"
           "INFO: pip is looking at multiple versions of toyxent to determine which version is compatible.\n"
           "ERROR: Could not find a version that satisfies the requirement toyxent-helper>=9 (from toyxent) (from "
           "versions: none)\nERROR: No matching distribution found for toyxent-helper>=9\n[exit status 1]\n")
    assert why(pip) == ("ERROR: Could not find a version that satisfies the requirement toyxent-helper>=9 (from toyxent) "
                        "(from versions: none) ERROR: No matching distribution found for toyxent-helper>=9")
    assert why("$ uv pip install x\nline 1\nline 2\n[exit status 2]\n") == "line 1 line 2"
