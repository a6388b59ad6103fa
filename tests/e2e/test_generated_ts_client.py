"""The generated TypeScript client tier: @hey-api/openapi-ts turns /openapi.json into a typed SDK
with one function per operationId and one type per schema, without a warning or a renamed
duplicate; `tsc` (strict) accepts it; and a small part of the seed flow runs through it against a
real `crm serve`.

Needs `node` 20.19+ and `npm ci` in tests/support/tsclient (.ci/run does it); without them the
tier skips, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_generated_client import openapi_document

FOLDER = Path(__file__).resolve().parents[1] / "support" / "tsclient"
GENERATE_TIMEOUT = 120.0
TSC_TIMEOUT = 180.0  # tsc over ~11,000 generated lines takes 5-15 s on a busy 2-core machine
FLOW_TIMEOUT = 60.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXPORT = re.compile(r"^export (?:type|enum|const|interface) (\w+)", re.M)
SDK_FUNCTION = re.compile(r"^export const (\w+) = ", re.M)
# What types.gen.ts declares per operation besides the schemas, and once for the client.
OPERATION_TYPES = ("Data", "Errors", "Error", "Responses", "Response")
CLIENT_TYPES = {"ClientOptions"}


def node() -> str:
    """The node binary, or a skip naming what to install."""
    found = shutil.which("node")
    if found is None:
        pytest.skip("TypeScript client tier skipped: node is not installed (Node.js 20.19+)")
    if not (FOLDER / "node_modules" / "@hey-api" / "openapi-ts").is_dir():
        pytest.skip(f"TypeScript client tier skipped: run `npm ci` in {FOLDER}")
    return found


def run(*args: str, timeout: float, cwd: Path = FOLDER) -> tuple[int, str]:
    """Run a command; its exit status and its output (stdout then stderr, colours removed)."""
    done = subprocess.run(
        list(args),
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, ANSI.sub("", done.stdout + done.stderr)


def generate(source: str, out: Path) -> str:
    """Generate the client from a file or URL into `out`; the generator's output."""
    status, output = run(
        node(), str(FOLDER / "generate.mjs"), source, str(out), timeout=GENERATE_TIMEOUT
    )
    assert status == 0, output
    # The generator logs what it could not use and goes on; any such line is a loss.
    for word in ("warn", "error", "skip", "duplicate", "unsupported"):
        assert word not in output.lower(), output
    return output


def check_client(document: dict[str, Any], directory: Path) -> Path:
    """Generate from `document`, then find one SDK function per operationId and one type per
    schema, each under its own name, and nothing renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "openapi.json"
    spec.write_text(json.dumps(document))
    client = directory / "client"
    generate(str(spec), client)

    operations = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    functions = SDK_FUNCTION.findall((client / "sdk.gen.ts").read_text())
    # A second operation of one name becomes `name2`, silently: the sets differ then.
    assert sorted(functions) == sorted(operations), (
        f"missing {sorted(set(operations) - set(functions))}, "
        f"extra {sorted(set(functions) - set(operations))}"
    )

    schemas = set(document["components"]["schemas"])
    exported = set(EXPORT.findall((client / "types.gen.ts").read_text()))
    assert schemas <= exported, f"schemas without their type: {sorted(schemas - exported)}"
    per_operation = {
        name[0].upper() + name[1:] + kind for name in operations for kind in OPERATION_TYPES
    }
    # Two schemas that collapse into one name: one keeps it, the other becomes `Name2`.
    renamed = exported - schemas - per_operation - CLIENT_TYPES
    assert not renamed, f"types that are no schema's name: {sorted(renamed)}"
    return client


def tsc(tsconfig: dict[str, Any], directory: Path) -> None:
    """tsc over the files `tsconfig` includes, with the strict settings of the support folder."""
    path = directory / "tsconfig.json"
    path.write_text(json.dumps({"extends": str(FOLDER / "tsconfig.json"), **tsconfig}))
    status, output = run(
        node(),
        str(FOLDER / "node_modules" / "typescript" / "bin" / "tsc"),
        "-p",
        str(path),
        timeout=TSC_TIMEOUT,
    )
    assert status == 0, output


def test_ts_client_has_every_operation_and_model_and_type_checks(tmp_path: Path) -> None:
    check_client(openapi_document(), tmp_path)
    tsc({"compilerOptions": {"noEmit": True}, "include": ["client/**/*.ts"]}, tmp_path)


def test_a_name_collision_fails_the_ts_tier(tmp_path: Path) -> None:
    # Two operations with one operationId: the generator's strict validation stops.
    document = openapi_document()
    paths = document["paths"]
    paths["/self-service/v1/contacts/register"]["post"]["operationId"] = "registerContact"
    with pytest.raises(AssertionError, match="Duplicate `operationId`"):
        check_client(document, tmp_path / "operations")
    # Two schemas that become one type name: the second is renamed, which the tier catches.
    document = openapi_document()
    schemas = document["components"]["schemas"]
    schemas["Custom_Field"] = schemas["CustomField"]
    document["paths"]["/backoffice/v1/contacts"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"] = {"$ref": "#/components/schemas/Custom_Field"}
    with pytest.raises(
        AssertionError, match=re.escape("schemas without their type: ['Custom_Field']")
    ):
        check_client(document, tmp_path / "models")


def test_ts_client_runs_the_seed_flow(tmp_path: Path) -> None:
    """tests/support/tsclient/flow.ts, compiled with a client generated from a running server's
    /openapi.json, registers by phone, reads the code, validates it and reads the contact back
    on the Back-Office API."""
    from tests.e2e.test_examples import start_deployment

    node()  # skip before starting a server
    deployment = start_deployment(tmp_path)
    try:
        generate(f"{deployment.server.base_url}/openapi.json", tmp_path / "client")
        shutil.copy(FOLDER / "flow.ts", tmp_path / "flow.ts")
        tsc(
            {
                "compilerOptions": {"outDir": "build", "rootDir": "."},
                "include": ["flow.ts", "client/**/*.ts"],
            },
            tmp_path,
        )
        keys = deployment.tenant["keys"]
        status, out = run(
            node(),
            str(tmp_path / "build" / "flow.js"),
            deployment.server.base_url,
            keys["public_test"],
            keys["secret_test"],
            timeout=FLOW_TIMEOUT,
            cwd=tmp_path,
        )
        assert status == 0, out
        assert re.search(r"^1\. registerContact \+35799\d{6}: 201", out, re.M), out
        assert re.search(r"^2\. listOutbox: read code \d{6}$", out, re.M), out
        assert re.search(r"^3\. validateOtp: signed in as contact \S+$", out, re.M), out
        assert "4. getContact with the secret key: Ahmed Samir" in out, out
        assert "done: every step answered" in out, out

        # A wrong secret key: the SDK hands back the error body and the flow says which step.
        status, out = run(
            node(),
            str(tmp_path / "build" / "flow.js"),
            deployment.server.base_url,
            keys["public_test"],
            "sk_test_" + "0" * 32,
            timeout=FLOW_TIMEOUT,
            cwd=tmp_path,
        )
        assert status == 1, out
        assert "FAILED: listOutbox: expected 200, got 401" in out, out
    finally:
        deployment.server.stop()
