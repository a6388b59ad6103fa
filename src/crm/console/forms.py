"""Turning console forms into the Back-Office API's own request models, and its validation
errors into the API's `details` (the same messages the API gives)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from crm.errors import AppError, InvalidRequest

M = TypeVar("M", bound=BaseModel)


def _field(loc: tuple[Any, ...]) -> str:
    # As the API's error mapper names fields: union member names carry no meaning for a person.
    parts = [str(p) for p in loc]
    return ".".join(p for p in parts if not p.startswith("function-") and "[" not in p) or "body"


def parse(model: type[M], values: dict[str, Any]) -> M:
    """`values` as `model`, or InvalidRequest with the API's details."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        details = [
            {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        raise InvalidRequest(details=details) from None


def blank_to_none(form: dict[str, str], *names: str) -> dict[str, Any]:
    """The named fields that were filled in, trimmed (an empty box means "not given")."""
    out: dict[str, Any] = {}
    for name in names:
        value = form.get(name, "").strip()
        if value:
            out[name] = value
    return out


def problem(exc: AppError) -> dict[str, Any]:
    """What a page shows of a refused action: the message and each field's own message."""
    fields: dict[str, str] = {}
    for item in exc.details or []:
        if isinstance(item, dict) and item.get("field"):
            name = str(item["field"])
            message = str(item.get("message", ""))
            fields.setdefault(name, message)
            fields.setdefault(name.rsplit(".", 1)[-1], message)
            # The console's one phone box stands for the API's `phones` list.
            if name.startswith("phones"):
                box = "phone_country" if name.endswith("country_code") else "phone_number"
                fields.setdefault(box, message)
    return {"code": exc.code, "message": exc.message, "fields": fields}
