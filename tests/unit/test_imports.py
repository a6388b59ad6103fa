"""The layering of src/crm, read from the imports: domains never import the API; identifiers
sit below contacts, contacts below identities, and the directory above both; only composition
roots build on `crm.runtime`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import crm

SRC = Path(crm.__file__).parent

# The composition roots: they wire settings, database, clock and providers into a running
# process (the app, its HTTP surfaces, the CLI, and the background loops). Only they may import
# `crm.runtime`; domain code receives what it needs as arguments.
COMPOSITION_ROOTS = (
    "crm.__main__",
    "crm.app",
    "crm.api",
    "crm.cli",
    "crm.console",
    "crm.background",
    "crm.maintenance",
    "crm.messaging.worker",
    "crm.runtime",
)
# The domains: business rules over their own tables, below every surface.
DOMAINS = (
    "crm.contacts",
    "crm.identities",
    "crm.tenants",
    "crm.messaging",
    "crm.idempotency",
    "crm.ratelimits",
    "crm.smsguard",
    "crm.security",
    "crm.deployment",
    "crm.operators",
    "crm.events",
    "crm.imports",
    "crm.identifiers",
    "crm.directory",
)
# Above both contacts and identities: what spans a contact and its identities (search, erasure).
# It may import both; neither imports it.
ABOVE_BOTH = ("crm.directory",)
# Imports that break the rules today, each removed as its code moves to its own room. The test
# fails when one disappears too, so this list only shrinks.
KNOWN_RUNTIME = {
    "crm.messaging.delivery",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    if not _within(name, "crm"):
        return False
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports() -> Iterator[tuple[str, str]]:
    """(importing module, imported module) for every import in src/crm, however nested."""
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield module, alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                for alias in node.names:
                    # `from crm.contacts import service` imports the module crm.contacts.service;
                    # `from crm.contacts.models import Contact` imports crm.contacts.models.
                    full = f"{base}.{alias.name}"
                    yield module, full if _is_module(full) else base


def _within(module: str, packages: tuple[str, ...] | str) -> bool:
    if isinstance(packages, str):
        packages = (packages,)
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_walk_sees_the_code() -> None:
    modules = {importer for importer, _ in _imports()}
    assert {"crm.app", "crm.identities.service", "crm.contacts.service"} <= modules


def test_no_domain_imports_a_surface() -> None:
    bad = sorted(
        (importer, imported)
        for importer, imported in _imports()
        if _within(importer, DOMAINS) and _within(imported, ("crm.api", "crm.cli", "crm.app"))
    )
    assert bad == []


def test_contacts_never_imports_identities() -> None:
    # One way only: identities builds on contacts (a sign-in identity belongs to a contact), and
    # what spans both lives in ABOVE_BOTH.
    bad = sorted(
        (importer, imported)
        for importer, imported in _imports()
        if _within(importer, "crm.contacts") and _within(imported, "crm.identities")
    )
    assert bad == []


def test_nothing_below_imports_what_spans_contacts_and_identities() -> None:
    bad = sorted(
        (importer, imported)
        for importer, imported in _imports()
        if _within(importer, ("crm.contacts", "crm.identities", "crm.identifiers"))
        and _within(imported, ABOVE_BOTH)
    )
    assert bad == []


def test_identifiers_sit_below_contacts_and_identities() -> None:
    # Normalising phones, emails and countries is shared by both domains, so it imports neither.
    bad = sorted(
        (importer, imported)
        for importer, imported in _imports()
        if _within(importer, "crm.identifiers")
        and _within(imported, ("crm.contacts", "crm.identities"))
    )
    assert bad == []


def test_runtime_only_in_composition_roots() -> None:
    users = {
        importer
        for importer, imported in _imports()
        if _within(imported, "crm.runtime") and not _within(importer, COMPOSITION_ROOTS)
    }
    assert users - KNOWN_RUNTIME == set()
    assert KNOWN_RUNTIME - users == set()  # a use removed: drop it from the list
