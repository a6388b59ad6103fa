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


class ContactTypeImmutable(ImmutableField):
    code = "CONTACT_TYPE_IMMUTABLE"
    message = "contact_type cannot be changed after creation."


class ContactCodeImmutable(ImmutableField):
    code = "CONTACT_CODE_IMMUTABLE"
    message = "code cannot be changed after creation."


class InvalidContactId(InvalidRequest):
    code = "INVALID_CONTACT_ID"
    message = "A contact id is 1 to 36 letters, digits, '-' or '_'."


class InvalidContactCode(InvalidRequest):
    code = "INVALID_CONTACT_CODE"
    message = "A contact code is 1 to 36 letters, digits, '-', '_', '.' or ':'."


class MultiplePrimary(InvalidRequest):
    code = "MULTIPLE_PRIMARY"
    message = "At most one phone and one address may be primary."


class DuplicatePhone(InvalidRequest):
    code = "DUPLICATE_PHONE"
    message = "The same phone number is listed twice."


class InvalidDateOfBirth(InvalidRequest):
    code = "INVALID_DATE_OF_BIRTH"
    message = "date_of_birth must be a real date between 1900 and today."


class InvalidSearch(InvalidRequest):
    code = "INVALID_SEARCH"
    message = "The search parameters are not valid."


class VerifyNeedsOneIdentifier(InvalidRequest):
    code = "VERIFY_NEEDS_ONE_IDENTIFIER"
    message = "Give exactly one of email_address or phone."


class InvalidDocumentNumber(InvalidRequest):
    code = "INVALID_DOCUMENT_NUMBER"
    message = (
        "A document or loyalty number is 1 to 64 letters and digits (spaces, dashes, dots and "
        "slashes between them are dropped)."
    )


class DocumentInUse(Conflict):
    code = "DOCUMENT_IN_USE"
    message = "Another contact of this tenant already holds this document or loyalty number."


class InvalidNameDay(InvalidRequest):
    code = "INVALID_NAME_DAY"
    message = "name_day is a month (1-12) and a day that exists in it."
