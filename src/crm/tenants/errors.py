"""Errors of the tenants domain."""

from crm.errors import InvalidRequest, NotFound


class TenantNotFound(NotFound):
    code = "TENANT_NOT_FOUND"
    message = "No such tenant."


class ApiKeyNotFound(NotFound):
    code = "API_KEY_NOT_FOUND"
    message = "No such API key."


class InvalidTenantName(InvalidRequest):
    code = "INVALID_TENANT_NAME"
    message = "A tenant name must be 1 to 200 printable characters."


class ApplicationNotFound(NotFound):
    code = "APPLICATION_NOT_FOUND"
    message = "No such application."
