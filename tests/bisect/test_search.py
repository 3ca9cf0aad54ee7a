"""Bisection and sweeps over a list of versions: how many tests, and what is found, with skips."""

import math

import pytest

from xentcheck.bisect import search


def _run(truth: list[str], sweep: bool = False):
    """Search `truth` (each index's verdict), endpoints known first, counting the tests made."""
    tested = []

    def test(i):
        tested.append(i)
        return truth[i]

    verdicts = {0: truth[0], len(truth) - 1: truth[-1]}
    found = search.sweep(len(truth), test, verdicts) if sweep else [search.bisect(len(truth), test, verdicts)]
    return found, tested, verdicts


@pytest.mark.parametrize("n", [2, 3, 5, 8, 9, 16, 17, 100])
def test_bisection_finds_every_first_bad_in_log2_n_tests(n):
    for first_bad in range(1, n):
        truth = ["good"] * first_bad + ["bad"] * (n - first_bad)
        (t,), tested, _ = _run(truth)
        assert (t.before, t.after, t.kind, t.skipped) == (first_bad - 1, first_bad, "regression", [])
        assert len(tested) <= math.ceil(math.log2(n)), (n, first_bad, tested)  # + the 2 endpoints: ceil(log2 N) + 2


def test_a_skip_is_passed_over_for_the_nearest_untested_version():
    truth = ["good", "good", "good", "good", "skip", "good", "bad", "bad", "bad"]
    (t,), tested, verdicts = _run(truth)
    assert (t.before, t.after, t.skipped) == (5, 6, [])
    assert tested == [4, 3, 5, 6]  # the middle (a skip), its lower neighbour, then halving again
    assert verdicts[4] == "skip"


def test_skips_beside_the_change_leave_it_undecided_among_them():
    truth = ["good", "good", "skip", "skip", "bad", "bad"]
    (t,), tested, _ = _run(truth)
    assert (t.before, t.after, t.skipped) == (1, 4, [2, 3])
    assert tested == [2, 1, 3, 4]


def test_a_sweep_tests_every_version_and_shows_every_transition():
    truth = ["good", "skip", "bad", "bad", "good", "bad"]
    found, tested, _ = _run(truth, sweep=True)
    assert tested == [1, 2, 3, 4]
    assert [(t.kind, t.before, t.after, t.skipped) for t in found] == [
        ("regression", 0, 2, [1]), ("fix", 3, 4, []), ("regression", 4, 5, [])]


def test_bisect_needs_good_and_bad_endpoints():
    with pytest.raises(ValueError, match="good first and a bad last"):
        search.bisect(3, lambda i: "good", {0: "good", 2: "good"})
