"""The polling helper every test waits with: it returns what it waited for, and a wait that
fails says what it waited for and what it last saw."""

from __future__ import annotations

import itertools

import pytest

from tests.polling import wait_until


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, "", {"status": "successful"}, {"status": "ignored"}])
    assert wait_until(lambda: next(values), timeout_s=5, what="a job", interval_s=0) == {
        "status": "successful"
    }


def test_a_failed_wait_names_what_and_the_last_value() -> None:
    calls = itertools.count(1)
    with pytest.raises(
        AssertionError, match=r"the job to finish: not within 0.1 s \(last seen: \[\]\)"
    ):
        wait_until(lambda: [] if next(calls) else None, timeout_s=0.1, what="the job to finish")
    assert next(calls) > 2  # it kept asking until the time was up


class _NotYet:
    """A falsy value with a long description, like a big JSON body that is not there yet."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "y" * 10_000


def test_a_long_last_value_is_cut() -> None:
    with pytest.raises(AssertionError) as failure:
        wait_until(_NotYet, timeout_s=0, what="the body")
    message = str(failure.value)
    assert message.startswith("the body: not within 0 s (last seen: yyy")
    assert message.endswith("y...)")
    assert len(message) < 600
