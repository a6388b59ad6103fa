"""Errors of the contacts domain."""

from crm.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge


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


class AddressNotFound(NotFound):
    code = "ADDRESS_NOT_FOUND"
    message = "The contact has no such address."


class AddressLimitReached(Conflict):
    code = "ADDRESS_LIMIT_REACHED"
    message = "The contact has the most addresses it may have; remove one first."


class AddressNameTaken(Conflict):
    code = "ADDRESS_NAME_TAKEN"
    message = "Another address of this type already has this name."


class DeviceNotFound(NotFound):
    code = "DEVICE_NOT_FOUND"
    message = "The contact has no device with this registration token."


class PictureTooLarge(PayloadTooLarge):
    code = "PICTURE_TOO_LARGE"
    message = "The picture is larger than allowed."


class PictureMissing(InvalidRequest):
    code = "PICTURE_MISSING"
    message = "Send the picture as the `image` part of a multipart/form-data body."


class PictureTypeNotAllowed(InvalidRequest):
    code = "PICTURE_TYPE_NOT_ALLOWED"
    message = "A picture must be a PNG, JPEG or WEBP image."


class PictureTypeMismatch(InvalidRequest):
    code = "PICTURE_TYPE_MISMATCH"
    message = "The declared content type is not the type of the picture's content."


class CustomFieldUndefined(InvalidRequest):
    code = "CUSTOM_FIELD_UNDEFINED"
    message = "The tenant defines no custom field with this key."


class CustomFieldInvalidValue(InvalidRequest):
    code = "CUSTOM_FIELD_INVALID_VALUE"
    message = "The value does not fit the custom field's definition."


class CustomFieldDefinitionNotFound(NotFound):
    code = "CUSTOM_FIELD_DEFINITION_NOT_FOUND"
    message = "The tenant defines no custom field with this key."


class CustomFieldDefinitionLimitReached(Conflict):
    code = "CUSTOM_FIELD_DEFINITION_LIMIT_REACHED"
    message = "The tenant defines the most custom fields it may; remove one first."
