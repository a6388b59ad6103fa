"""The operators domain's errors, each with its stable code."""

from __future__ import annotations

from crm.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthenticated


class OperatorNotFound(NotFound):
    code = "OPERATOR_NOT_FOUND"
    message = "No such operator."


class OperatorExists(Conflict):
    code = "OPERATOR_EXISTS"
    message = "An operator with this email already exists."


class InvalidOperatorRole(InvalidRequest):
    code = "OPERATOR_ROLE_INVALID"
    message = "The role must be one of: owner, admin, agent, viewer."


class SignInFailed(Unauthenticated):
    # One answer for an unknown email, a wrong password or code, and a disabled operator.
    code = "CONSOLE_SIGN_IN_FAILED"
    message = "The email, password or authentication code is not right."


class OperatorLocked(Forbidden):
    code = "OPERATOR_LOCKED"
    message = "Too many failed sign-ins; this operator is locked for a while."


class PermissionDenied(Forbidden):
    code = "CONSOLE_PERMISSION_DENIED"
    message = "Your role does not allow this."


class CsrfRejected(Forbidden):
    code = "CONSOLE_CSRF_REJECTED"
    message = "The form was stale or not sent from the console; reload the page and try again."


class LastOwner(Conflict):
    code = "OPERATOR_LAST_OWNER"
    message = "A tenant keeps at least one active owner."


class TotpCodeWrong(InvalidRequest):
    code = "OPERATOR_TOTP_CODE_WRONG"
    message = "The code is not the one your authenticator app shows now."


class TotpRequired(Forbidden):
    code = "OPERATOR_TOTP_REQUIRED"
    message = "Owners must set up a second factor (an authenticator app) before going on."
