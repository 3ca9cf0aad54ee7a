"""held_warnings: a library's warnings shown after a step that succeeds, dropped before its error."""

import warnings

import pytest

from xentcheck.core.held_warnings import held_warnings


def test_warnings_of_a_step_that_succeeds_are_shown_after_it():
    order = []
    with pytest.warns(UserWarning, match="pickle protocol") as caught:
        with held_warnings():
            warnings.warn("pickle protocol 4", UserWarning, stacklevel=1)
            order.append(len(caught))  # held back: not shown yet
    assert order == [0] and len(caught) == 1 and caught[0].filename == __file__


def test_warnings_of_a_step_that_fails_are_dropped():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="refused"), held_warnings():
            warnings.warn("pickle protocol 4", UserWarning, stacklevel=1)
            raise ValueError("refused")
    assert caught == []


def test_the_filters_in_force_still_decide():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("always", UserWarning)
        with held_warnings():
            warnings.warn("old", DeprecationWarning, stacklevel=1)
            warnings.warn("new", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["new"]
