"""Validation details speak plainly: no Python type names, no pydantic prefixes."""

from __future__ import annotations

from datetime import date
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm.api.wording import plain_message


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=36)
    tags: list[str] = Field(default_factory=list, max_length=16)
    count: int = Field(0, ge=0)
    kind: Literal["PERSON", "COMPANY"] = "PERSON"
    born: date | None = None
    code: str = "x"

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if value == "bad":
            raise ValueError("A code is letters and digits.")
        return value


def messages(**body: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(body)
    return {str(e["loc"][0]): plain_message(e) for e in caught.value.errors()}


def test_each_kind_in_words() -> None:
    assert messages() == {"name": "Required."}
    assert messages(name="x" * 37)["name"] == "At most 36 characters."
    assert messages(name="a", tags=["t"] * 17)["tags"] == "At most 16 items."
    assert messages(name=5)["name"] == "Must be text."
    assert messages(name="a", count="many")["count"] == "Must be a whole number."
    assert messages(name="a", count=-1)["count"] == "Must be at least 0."
    assert messages(name="a", kind="ALIEN")["kind"] == "Must be 'PERSON' or 'COMPANY'."
    assert messages(name="a", born="yesterday")["born"] == "Must be a date (YYYY-MM-DD)."
    assert messages(name="a", other=1)["other"] == "Not a known field."


def test_own_validators_keep_their_words_without_the_prefix() -> None:
    assert messages(name="a", code="bad")["code"] == "A code is letters and digits."


def test_unknown_kinds_keep_pydantic_text() -> None:
    error = {"type": "something_new", "msg": "Something new happened", "loc": ("x",)}
    assert plain_message(error) == "Something new happened"
