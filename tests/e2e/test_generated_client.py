"""The generated-client tier: openapi-python-client turns /openapi.json into a Python client with
every operation and every model, and no warning (a skipped endpoint or a name collision)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crm.app import create_app
from tests.conftest import base_settings

GENERATE_TIMEOUT = 120.0


def generator() -> list[str]:
    """The generator's command line, or a skip naming what to install."""
    found = shutil.which("openapi-python-client") or str(
        Path(sys.executable).with_name("openapi-python-client")
    )
    if not Path(found).exists():
        pytest.skip(
            "generated-client tier skipped: openapi-python-client is not installed "
            "(pip install -e '.[test]')"
        )
    return [found]


def openapi_document() -> dict[str, Any]:
    app = create_app(base_settings(database_url="sqlite:///unused.db"))
    return app.openapi()


def generate(document: dict[str, Any], directory: Path) -> tuple[Path, str]:
    """Write the document, generate the client into directory/client; return it and the output."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "openapi.json"
    spec.write_text(json.dumps(document))
    # No post-hooks: formatting the output with ruff is the generator's default, not our test.
    config = directory / "config.json"
    config.write_text(json.dumps({"post_hooks": [], "project_name_override": "crm_client"}))
    out = directory / "client"
    done = subprocess.run(
        [
            *generator(),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(out),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return out, output


def _functions(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    return {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_generated_client_has_every_operation_and_model(tmp_path: Path) -> None:
    check_client(openapi_document(), tmp_path)


def check_client(document: dict[str, Any], tmp_path: Path) -> None:
    """Generate, then find one module per operation and one class per schema."""
    client, output = generate(document, tmp_path)
    # The generator reports what it could not use instead of failing; any such line is a loss.
    for word in ("Skipping", "Unable to", "Warning", "conflict", "duplicate"):
        assert word.lower() not in output.lower(), output

    operations = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    modules = {
        path.stem: path for path in (client / "api").rglob("*.py") if path.name != "__init__.py"
    }
    expected = {_snake(operation_id) for operation_id in operations}
    assert expected <= set(modules), sorted(expected - set(modules))
    # Two operations of one name become one module: the generator keeps the last, silently.
    assert len(modules) == len(operations), (
        f"{len(modules)} generated operations for {len(operations)} operations: "
        f"shared names {sorted({i for i in operations if operations.count(i) > 1})}"
    )
    for name in expected:
        # Each operation is callable both ways the generator offers.
        assert {"sync", "asyncio", "sync_detailed"} <= _functions(modules[name]), name

    exported = _exports(client / "models" / "__init__.py")
    for schema in document["components"]["schemas"]:
        assert schema in exported, (schema, sorted(exported))


def test_a_name_collision_fails_the_tier(tmp_path: Path) -> None:
    # The tier's own check: two operations with one operationId are caught, not shrugged off.
    document = openapi_document()
    paths = document["paths"]
    paths["/self-service/v1/contacts/register"]["post"]["operationId"] = "registerContact"
    with pytest.raises(AssertionError, match=re.escape("shared names ['registerContact']")):
        check_client(document, tmp_path / "operations")
    # And two schemas that become one class name.
    document = openapi_document()
    schemas = document["components"]["schemas"]
    schemas["Custom_Field"] = schemas["CustomField"]
    document["paths"]["/backoffice/v1/contacts"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"] = {"$ref": "#/components/schemas/Custom_Field"}
    with pytest.raises(AssertionError):
        check_client(document, tmp_path / "models")


def _exports(init: Path) -> set[str]:
    tree = ast.parse(init.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return set(value)
    raise AssertionError(f"no __all__ in {init}")


def _snake(name: str) -> str:
    out = ""
    for i, char in enumerate(name):
        if char.isupper() and i and not name[i - 1].isupper():
            out += "_"
        out += char.lower()
    return out


def test_generated_client_example_signs_in(tmp_path: Path) -> None:
    """examples/generated_client_signin.py, with a client generated from a running server's
    /openapi.json, registers, reads the code from the test outbox and validates it."""
    from tests.e2e.test_examples import run_example, start_deployment

    deployment = start_deployment(tmp_path)
    try:
        client_dir = tmp_path / "crm_client"
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"post_hooks": []}))
        done = subprocess.run(
            [
                *generator(),
                "generate",
                "--url",
                f"{deployment.server.base_url}/openapi.json",
                "--meta",
                "none",
                "--config",
                str(config),
                "--output-path",
                str(client_dir),
                "--fail-on-warning",
            ],
            capture_output=True,
            text=True,
            timeout=GENERATE_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        keys = deployment.tenant["keys"]
        ran = run_example(
            "generated_client_signin.py",
            "--client",
            str(client_dir),
            CRM_URL=deployment.server.base_url,
            CRM_PUBLIC_KEY=keys["public_test"],
            CRM_SECRET_KEY_API=keys["secret_test"],
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        out = ran.stdout
        assert re.search(r"^1\. registerContact \+35799\d{6}: 201", out, re.M), out
        assert re.search(r"^2\. listOutbox: read code \d{6}", out, re.M), out
        assert "3. validateOtp: signed in as contact " in out
        assert "4. getProfile with the bearer token: Ahmed Samir" in out
        assert "done: every step answered" in out

        # Without a generated client: a usage message, exit 2, no traceback.
        missing = run_example(
            "generated_client_signin.py",
            "--client",
            str(tmp_path / "nowhere"),
            CRM_URL=deployment.server.base_url,
            CRM_PUBLIC_KEY=keys["public_test"],
            CRM_SECRET_KEY_API=keys["secret_test"],
        )
        assert missing.returncode == 2, missing
        assert "no generated client" in missing.stderr and "Traceback" not in missing.stderr
    finally:
        deployment.server.stop()
