"""xentcheck.run.forked: work in a forked child, its result back in the parent; a failing child's work is
redone in the parent, so its error shows there."""

from __future__ import annotations

import os

import pytest

from xentcheck.run import forked


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def test_result_comes_back_from_a_child():
    pid, value = forked.start(_pid_and_square, 7)()
    assert value == 49 and pid != os.getpid()


def _fails_in_children(parent: int) -> str:
    if os.getpid() != parent:
        raise RuntimeError("child")
    return "redone in the parent"


def test_a_failing_child_is_redone_here():
    assert forked.start(_fails_in_children, os.getpid())() == "redone in the parent"


def _always_fails() -> None:
    raise ValueError("the error")


def test_an_error_of_the_work_itself_shows_in_the_parent():
    with pytest.raises(ValueError, match="the error"):
        forked.start(_always_fails)()
