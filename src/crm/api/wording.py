"""Validation messages in plain words.

Request validation errors come from pydantic, whose messages speak of Python ("Input should be a
valid string", "List should have at most 16 items", "Value error, …"). Clients show `details`
next to the field, and the console shows the same words, so each common kind is said once here
as a sentence a customer or an agent understands. Kinds not listed keep pydantic's text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def _limit(word: str, key: str) -> Callable[[Mapping[str, Any]], str]:
    def say(ctx: Mapping[str, Any]) -> str:
        value = ctx.get(key)
        unit = "character" if word == "characters" else "item"
        plural = "" if value == 1 else "s"
        return f"{'At most' if 'max' in key else 'At least'} {value} {unit}{plural}."

    return say


def _bound(words: str, key: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda ctx: f"Must be {words} {ctx.get(key)}."


_SAY: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda ctx: "Required.",
    "string_type": lambda ctx: "Must be text.",
    "string_too_long": _limit("characters", "max_length"),
    "string_too_short": _limit("characters", "min_length"),
    "too_long": _limit("items", "max_length"),
    "too_short": _limit("items", "min_length"),
    "int_type": lambda ctx: "Must be a whole number.",
    "int_parsing": lambda ctx: "Must be a whole number.",
    "int_from_float": lambda ctx: "Must be a whole number.",
    "float_type": lambda ctx: "Must be a number.",
    "float_parsing": lambda ctx: "Must be a number.",
    "bool_type": lambda ctx: "Must be true or false.",
    "bool_parsing": lambda ctx: "Must be true or false.",
    "list_type": lambda ctx: "Must be a list.",
    "dict_type": lambda ctx: "Must be an object.",
    "model_type": lambda ctx: "Must be an object.",
    "model_attributes_type": lambda ctx: "Must be an object.",
    "date_type": lambda ctx: "Must be a date (YYYY-MM-DD).",
    "date_parsing": lambda ctx: "Must be a date (YYYY-MM-DD).",
    "date_from_datetime_parsing": lambda ctx: "Must be a date (YYYY-MM-DD).",
    "datetime_type": lambda ctx: "Must be a date and time (ISO 8601).",
    "datetime_parsing": lambda ctx: "Must be a date and time (ISO 8601).",
    "uuid_parsing": lambda ctx: "Must be an id.",
    "uuid_type": lambda ctx: "Must be an id.",
    "literal_error": lambda ctx: f"Must be {ctx.get('expected')}.",
    "enum": lambda ctx: f"Must be {ctx.get('expected')}.",
    "greater_than": _bound("more than", "gt"),
    "greater_than_equal": _bound("at least", "ge"),
    "less_than": _bound("less than", "lt"),
    "less_than_equal": _bound("at most", "le"),
    "string_pattern_mismatch": lambda ctx: "Has characters or a form that is not allowed here.",
    "extra_forbidden": lambda ctx: "Not a known field.",
    "url_parsing": lambda ctx: "Must be a URL.",
    "url_scheme": lambda ctx: f"Must be a URL starting with {ctx.get('expected_schemes')}.",
}


def plain_message(error: Mapping[str, Any]) -> str:
    """One pydantic error (`exc.errors()` item) as a sentence for the client."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in {"value_error", "assertion_error"}:
        # Our own validators already speak plainly; drop pydantic's "Value error, " prefix.
        raw = ctx.get("error")
        text = str(raw) if raw is not None else str(error.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            text = text.removeprefix(prefix)
        return text
    say = _SAY.get(kind)
    return say(ctx) if say is not None else str(error.get("msg", ""))
