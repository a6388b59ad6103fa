"""Errors of the contacts domain."""

from crm.errors import Conflict, InvalidRequest, NotFound


class ContactNotFound(NotFound):
    code = "CONTACT_NOT_FOUND"
    message = "No such contact."


class ContactIdAlreadyExists(Conflict):
    code = "CONTACT_ID_ALREADY_EXISTS"
    message = "A contact with this id already exists (or existed and was erased)."


class ContactCodeAlreadyExists(Conflict):
    code = "CONTACT_CODE_ALREADY_EXISTS"
    message = "A contact with this code already exists."


class ImmutableField(InvalidRequest):
    code = "IMMUTABLE_FIELD"
    message = "This field cannot be changed after creation."


class CompanyNameRequired(InvalidRequest):
    code = "COMPANY_NAME_REQUIRED"
    message = "A COMPANY contact needs a company_name."
