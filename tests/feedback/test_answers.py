"""Answer schemas: a choice's optional keyboard keys are checked where the request
arrives, so a page never gets a key list it cannot honour."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swergio_al.feedback.answers import schema_problem

CHOICES = ["cat", "dog", "bird"]


def choice(keys: Any) -> dict[str, Any]:
    return {"type": "choice", "choices": CHOICES, "keys": keys}


def test_keys_one_distinct_character_per_choice_are_accepted() -> None:
    assert schema_problem(choice(["c", "d", "b"])) is None
    assert schema_problem({"type": "choice", "choices": CHOICES}) is None  # keys optional


def test_bad_key_lists_are_refused_with_a_reason() -> None:
    assert "one per choice" in str(schema_problem(choice(["c", "d"])))
    assert "one per choice" in str(schema_problem(choice("cdb")))
    assert "single character" in str(schema_problem(choice(["c", "do", "b"])))
    assert "different" in str(schema_problem(choice(["c", "C", "b"])))
    assert "skip" in str(schema_problem(choice(["c", "s", "b"])))  # S skips on the page


@given(st.one_of(st.none(), st.integers(), st.text(),
                 st.lists(st.one_of(st.text(max_size=3), st.integers(), st.none()), max_size=5)))
def test_any_keys_value_gets_a_verdict_never_an_exception(keys: Any) -> None:
    problem = schema_problem(choice(keys))
    if problem is None:  # accepted: exactly what the page can use
        assert keys is None or (len(keys) == 3 and len({k.lower() for k in keys}) == 3)
