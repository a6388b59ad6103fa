"""The OpenAPI document: the two ways of calling (api_key and the bearer token), a stable
operationId and a description on every operation, and schema names without module paths."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEMES = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "api_key",
        "description": "A public key (`pk_…`) on Self-Service, a secret key (`sk_…`) on Back-Office.",
    },
    "BearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access token from register, validate, authenticate or refresh (the "
        "refresh token, on refresh). `api_key` is optional alongside it and must then be of the "
        "same tenant and mode.",
    },
}


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# What any operation can answer, whatever it declares (API.md section 2).
_ALWAYS = {
    "400": "Malformed JSON or an invalid field (`details` names them).",
    "413": "The request body is over the limit.",
    "500": "Unexpected error; logged with the request id.",
    "503": "The database is unavailable; nothing was half-written.",
}


# Self-Service operations, by path under the version prefix. /self-service/v2 gets these names;
# /self-service/v1 (the same handlers) gets them with a "V1" suffix, so every id stays unique.
_SELF_SERVICE = {
    ("POST", "/contacts/register"): "registerContact",
    ("POST", "/contacts/otp"): "requestOtp",
    ("POST", "/contacts/validate_otp"): "validateOtp",
    ("POST", "/contacts/validate-otp"): "validateOtpLegacy",
    ("POST", "/contacts/authenticate"): "authenticateContact",
    ("POST", "/contacts/refresh"): "refreshToken",
    ("GET", "/contacts"): "contactExists",
    ("GET", "/contacts/verify_email"): "verifyEmail",
    ("POST", "/contacts/forgot_password"): "forgotPassword",
    ("POST", "/contacts/change_password"): "resetPassword",
    ("POST", "/contacts/request_email_verification"): "requestEmailVerification",
    ("GET", "/contacts/{id}"): "getProfile",
    ("PUT", "/contacts/{id}"): "updateProfile",
    ("DELETE", "/contacts/{id}"): "unregisterContact",
    ("POST", "/contacts/{id}/sign_out"): "signOut",
    ("POST", "/contacts/{id}/identities"): "addIdentity",
    ("POST", "/contacts/{id}/credentials"): "addCredentials",
    ("POST", "/contacts/{id}/identities/{identity_id}/otp"): "sendIdentityCode",
    ("POST", "/contacts/{id}/identities/{identity_id}/verify"): "verifyIdentity",
    ("POST", "/contacts/{id}/change_password"): "changePassword",
    ("GET", "/contacts/{id}/addresses"): "listContactAddresses",
    ("POST", "/contacts/{id}/addresses"): "addContactAddress",
    ("PUT", "/contacts/{id}/addresses/{address_id}"): "updateContactAddress",
    ("DELETE", "/contacts/{id}/addresses/{address_id}"): "deleteContactAddress",
    ("GET", "/contacts/{id}/devices"): "listContactDevices",
    ("POST", "/contacts/{id}/devices"): "registerContactDevice",
    ("DELETE", "/contacts/{id}/devices/{fcm_token}"): "removeContactDevice",
    ("PUT", "/contacts/{id}/image"): "uploadContactImage",
    ("DELETE", "/contacts/{id}/image"): "deleteContactImage",
}

# Every operation's operationId, by (method, path). A route missing here keeps FastAPI's long
# generated name, and tests/api/test_openapi_document.py fails until it is added.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "checkLiveness",
    ("GET", "/readyz"): "checkReadiness",
    ("GET", "/.well-known/jwks.json"): "getJwks",
    ("GET", "/metrics"): "getMetrics",
    **{(m, f"/self-service/v2{p}"): name for (m, p), name in _SELF_SERVICE.items()},
    **{(m, f"/self-service/v1{p}"): name + "V1" for (m, p), name in _SELF_SERVICE.items()},
    ("POST", "/backoffice/v1/contacts"): "createContact",
    ("POST", "/backoffice/v1/contacts/imports"): "createContactImport",
    ("POST", "/backoffice/v1/contacts/import"): "createContactImportAlias",
    ("GET", "/backoffice/v1/contacts/imports/{job_id}"): "getContactImport",
    ("GET", "/backoffice/v1/contacts"): "listContacts",
    ("GET", "/backoffice/v1/contacts/verify"): "verifyContact",
    ("GET", "/backoffice/v1/contacts/{ref}"): "getContact",
    ("PUT", "/backoffice/v1/contacts/{ref}"): "updateContact",
    ("DELETE", "/backoffice/v1/contacts/{ref}"): "eraseContact",
    ("GET", "/backoffice/v1/contacts/{ref}/audit"): "getContactAudit",
    ("GET", "/backoffice/v1/contacts/{ref}/consents"): "getContactConsents",
    ("POST", "/backoffice/v1/contacts/{ref}/identities"): "addContactIdentity",
    ("GET", "/backoffice/v1/contacts/{ref}/identities"): "listContactIdentities",
    ("DELETE", "/backoffice/v1/contacts/{ref}/identities/{identity_id}"): "removeContactIdentity",
    ("GET", "/backoffice/v1/contacts/{ref}/sessions"): "listContactSessions",
    ("DELETE", "/backoffice/v1/contacts/{ref}/sessions"): "revokeContactSessions",
    ("GET", "/backoffice/v1/integrations/{channel}"): "getIntegration",
    ("PUT", "/backoffice/v1/integrations/{channel}"): "setIntegration",
    ("DELETE", "/backoffice/v1/integrations/{channel}"): "deleteIntegration",
    ("GET", "/backoffice/v1/events"): "listEvents",
    ("GET", "/backoffice/v1/events/{event_id}"): "getEvent",
    ("POST", "/backoffice/v1/events/{event_id}/redeliver"): "redeliverEvent",
    ("POST", "/backoffice/v1/webhooks"): "createWebhook",
    ("GET", "/backoffice/v1/webhooks"): "listWebhooks",
    ("GET", "/backoffice/v1/webhooks/{webhook_id}"): "getWebhook",
    ("PUT", "/backoffice/v1/webhooks/{webhook_id}"): "updateWebhook",
    ("DELETE", "/backoffice/v1/webhooks/{webhook_id}"): "deleteWebhook",
    ("POST", "/backoffice/v1/webhooks/{webhook_id}/rotate_secret"): "rotateWebhookSecret",
    ("GET", "/backoffice/v1/webhooks/{webhook_id}/deliveries"): "listWebhookDeliveries",
    ("GET", "/backoffice/v1/outbox"): "listOutbox",
    ("POST", "/backoffice/v1/contacts/{ref}/identities/{identity_id}/unlock"): "unlockIdentity",
    ("GET", "/backoffice/v1/templates"): "listTemplates",
    ("GET", "/backoffice/v1/templates/{purpose}/{language}"): "getTemplate",
    ("PUT", "/backoffice/v1/templates/{purpose}/{language}"): "setTemplate",
    ("DELETE", "/backoffice/v1/templates/{purpose}/{language}"): "deleteTemplate",
    ("POST", "/backoffice/v1/templates/{purpose}/{language}/preview"): "previewTemplate",
    ("GET", "/backoffice/v1/identity_providers"): "listIdentityProviders",
    ("GET", "/backoffice/v1/identity_providers/{type}"): "getIdentityProvider",
    ("PUT", "/backoffice/v1/identity_providers/{type}"): "setIdentityProvider",
    ("DELETE", "/backoffice/v1/identity_providers/{type}"): "deleteIdentityProvider",
    ("GET", "/self-service/v2/contacts/oidc/callback"): "oidcCallback",
    ("POST", "/self-service/v2/contacts/oidc/callback"): "oidcCallbackForm",
    ("GET", "/self-service/v2/contacts/oidc/{type}"): "startOidcSignIn",
    ("POST", "/self-service/v2/contacts/{id}/oidc_identities"): "linkOidcIdentity",
    ("GET", "/backoffice/v1/contacts/{ref}/addresses"): "listBackOfficeContactAddresses",
    ("POST", "/backoffice/v1/contacts/{ref}/addresses"): "addBackOfficeContactAddress",
    ("PUT", "/backoffice/v1/contacts/{ref}/addresses/{address_id}"): (
        "updateBackOfficeContactAddress"
    ),
    ("DELETE", "/backoffice/v1/contacts/{ref}/addresses/{address_id}"): (
        "deleteBackOfficeContactAddress"
    ),
    ("GET", "/backoffice/v1/contacts/{ref}/devices"): "listBackOfficeContactDevices",
    ("POST", "/backoffice/v1/contacts/{ref}/devices"): "registerBackOfficeContactDevice",
    ("DELETE", "/backoffice/v1/contacts/{ref}/devices/{fcm_token}"): (
        "removeBackOfficeContactDevice"
    ),
    ("PUT", "/backoffice/v1/contacts/{ref}/image"): "uploadBackOfficeContactImage",
    ("DELETE", "/backoffice/v1/contacts/{ref}/image"): "deleteBackOfficeContactImage",
    ("GET", "/backoffice/v1/custom_fields"): "listCustomFieldDefinitions",
    ("PUT", "/backoffice/v1/custom_fields/{key}"): "defineCustomField",
    ("DELETE", "/backoffice/v1/custom_fields/{key}"): "removeCustomFieldDefinition",
}

# Two modules define models of the same name (the Back-Office contact and the Self-Service
# profile); FastAPI then names both by module path. The Back-Office ones keep the plain name.
_MODULE_PATH_NAME = re.compile(r"^crm__(?P<module>\w+?)__schemas__(?P<name>\w+)$")
_MODULE_PREFIXES = {"contacts": "", "identities": "SelfService"}


def _schema_names(schemas: dict[str, Any]) -> dict[str, str]:
    """Old name -> new name for every schema named by its module path."""
    renames: dict[str, str] = {}
    taken = set(schemas)
    for old in sorted(schemas):
        match = _MODULE_PATH_NAME.match(old)
        if match is None:
            continue
        module = match["module"]
        prefix = _MODULE_PREFIXES.get(module, module.title().replace("_", ""))
        new = prefix + match["name"]
        if new not in taken:  # never merge two models into one name
            renames[old] = new
            taken.add(new)
    return renames


def _rename_refs(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in refs:
            node["$ref"] = refs[ref]
        for value in node.values():
            _rename_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _rename_refs(value, refs)


def _describe(method: str, path: str, operation: dict[str, Any]) -> None:
    """A stable operationId and a description (the summary, when the handler has no docstring)."""
    operation_id = OPERATION_IDS.get((method.upper(), path))
    if operation_id is not None:
        operation["operationId"] = operation_id
    if not operation.get("description") and operation.get("summary"):
        summary = str(operation["summary"])
        operation["description"] = summary if summary.endswith(".") else summary + "."


def _untyped_answers(responses: dict[str, Any]) -> None:
    """A handler that builds its own JSON answer (no response_model) is documented by FastAPI as
    a JSON *string*, which generated clients then parse as one; it is any JSON value."""
    for status, response in responses.items():
        content = response.get("content", {}).get("application/json")
        if status.startswith("2") and content is not None and content.get("schema") == _STRING:
            content["schema"] = {}


_STRING = {"type": "string"}


def install(app: FastAPI) -> None:
    """Replace app.openapi with a generator that names each operation's credentials.

    Signed-in routes declare BearerAuth themselves (openapi_extra); every other operation that
    takes an `api_key` header gets ApiKey, so /docs' Authorize button fills the header in.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            # One schema per model, not "-Input"/"-Output" pairs a client would see twice.
            separate_input_output_schemas=False,
        )
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        renames = _schema_names(schemas)
        for old, new in renames.items():
            schemas[new] = schemas.pop(old)
            schemas[new]["title"] = new
        _rename_refs(
            spec,
            {f"#/components/schemas/{o}": f"#/components/schemas/{n}" for o, n in renames.items()},
        )
        components["securitySchemes"] = SCHEMES
        # Validation errors are 400 with the common error body here, never FastAPI's 422.
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                _describe(method, path, operation)
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                _untyped_answers(responses)
                for status, text in _ALWAYS.items():
                    responses.setdefault(status, {"description": text, "content": _ERROR_CONTENT})
                headers = {
                    p.get("name")
                    for p in operation.get("parameters", [])
                    if p.get("in") == "header"
                }
                if "security" not in operation and "api_key" in headers:
                    operation["security"] = [{"ApiKey": []}]
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
