"""Every error code a client can see is defined once in the whole project."""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict

import crm
from crm.errors import AppError


def _import_everything() -> None:
    # Importing every module registers every AppError subclass, wherever it lives.
    for module in pkgutil.walk_packages(crm.__path__, "crm."):
        if module.name.startswith("crm.migrations") or module.name == "crm.__main__":
            continue  # these run (migrations, the CLI) when imported
        importlib.import_module(module.name)


def _subclasses(cls: type[AppError]) -> list[type[AppError]]:
    found: dict[type[AppError], None] = {}  # a class with two AppError parents is seen twice
    pending = [cls]
    while pending:
        current = pending.pop()
        if current not in found:
            found[current] = None
            pending.extend(current.__subclasses__())
    return list(found)


def test_error_codes_are_unique() -> None:
    _import_everything()
    owners: dict[str, list[str]] = defaultdict(list)
    for cls in _subclasses(AppError):
        # A subclass that only refines the message inherits its parent's code: one definition.
        if "code" in vars(cls):
            owners[cls.code].append(f"{cls.__module__}.{cls.__qualname__}")
    assert len(owners) > 50  # the walk found the domains' errors, not only the base module's
    duplicated = {code: names for code, names in owners.items() if len(names) > 1}
    assert duplicated == {}


def test_error_codes_are_upper_snake() -> None:
    _import_everything()
    bad = [cls.code for cls in _subclasses(AppError) if not cls.code.replace("_", "").isupper()]
    assert bad == []
