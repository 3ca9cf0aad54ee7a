"""`xentcheck cases`: the ids it lists are the ones `run` with the same options runs."""

import pytest

from xentcheck import cli
from xentcheck.run.plan import plan_from_options


def _listed(capsys, *args: str) -> list[str]:
    assert cli.main(["cases", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out.splitlines()


def _planned(suite: str, dtypes: str | None = None, n_cases: int | None = None) -> list[str]:
    plan = plan_from_options("numpy", (), dtypes, 0, n_cases, (), "cpu", "xentcheck", (), (), 300.0, suite)
    return [c.id for c in plan.cases]


@pytest.mark.parametrize("suite", ["default", "full"])
def test_cases_lists_the_suite_run_runs(capsys, suite):
    listed = _listed(capsys, "--suite", suite)
    assert listed == _planned(suite)


def test_full_suite_holds_the_default_one_and_more(capsys):
    default, full = _listed(capsys), _listed(capsys, "--suite", "full")
    assert set(default) < set(full) and len(full) > 2 * len(default)
    assert _listed(capsys, "--suite", "full", "--dtypes", "float16", "--cases", "7") == _planned("full", "float16", 7)


def test_an_unknown_suite_is_a_usage_error(capsys):
    assert cli.main(["cases", "--suite", "huge"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "'huge' is not one of 'default', 'full'" in err
