"""What crosses the Self-Service wire: request bodies with their v1/v2 spellings, and answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from crm import documents
from crm.contacts.contact_fields import (
    NAME_MEMBERS,
    UNSET,
    ContactFields,
    CustomFieldValue,
    consents_in,
    given_in,
    members_in,
    unset_if_none,
)
from crm.documents import CompanyProfile, DemographicsExtra
from crm.errors import FieldNotSupported
from crm.text import clean_text, parse_bool


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


StrBool = Annotated[bool, BeforeValidator(parse_bool)]
T = TypeVar("T")


# Names and titles follow the free-text rule of every surface (NFC, no invisible characters).
Name = Annotated[
    Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(clean_text)
    ]
    | None,
    BeforeValidator(_blank_to_none),
]
Short = Annotated[
    Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(clean_text)
    ]
    | None,
    BeforeValidator(_blank_to_none),
]
Country = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=8)] | None,
    BeforeValidator(_blank_to_none),
]
Language = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=10)] | None,
    BeforeValidator(_blank_to_none),
]
EmailText = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] | None,
    BeforeValidator(_blank_to_none),
]
PhoneText = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None,
    BeforeValidator(_blank_to_none),
]
Referral = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None,
    BeforeValidator(_blank_to_none),
]

# Long enough for any policy-valid password after NFKC; the policy gives the precise error.
PasswordText = Annotated[str, StringConstraints(max_length=4096)] | None
# An OpenID Connect ID token, a nonce, and a redirect sign-in's one-time result and state.
IdTokenText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=16384)] | None
OidcText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None


class _In(BaseModel):
    # Unknown members are ignored: CRM.COM clients send many fields this server has no use for.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class PhoneIn(_In):
    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    country_code: Country = None


def _blank_phone_to_none(value: Any) -> Any:
    """`{number: ""}`: what a generated client sends for a phone it must fill but has none of."""
    if isinstance(value, dict):
        number = value.get("number")
        if number is None or (isinstance(number, str) and not number.strip()):
            return None
    return value


def _empty_to_none(value: Any) -> Any:
    # Only the empty string: a password of spaces is still a (policy-checked) password.
    return None if value == "" else value


# A member CRM.COM's schema marks required though it does not apply to the request: a client
# generated from that schema fills it with an empty value, which means absent.
OptionalPhone = Annotated[PhoneIn | None, BeforeValidator(_blank_phone_to_none)]
OptionalPassword = Annotated[PasswordText, BeforeValidator(_empty_to_none)]


class CustomField(_In):
    key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    value: Annotated[str, StringConstraints(max_length=1000)] | None = None


def _custom_values(fields: list[CustomField]) -> list[CustomFieldValue]:
    return [CustomFieldValue(key=f.key, value=f.value) for f in fields]


class IdentityIn(_In):
    """v1 `identity {provider, phone_number, country_code, email, password}` or v2
    `identification {provider, phone {number, country_code}, email, password}`."""

    provider: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] = Field(
        validation_alias=AliasChoices("provider", "type")
    )
    email: EmailText = Field(None, validation_alias=AliasChoices("email", "email_address"))
    password: OptionalPassword = None
    phone_number: PhoneText = None
    phone: OptionalPhone = None
    country_code: Country = None
    # GOOGLE, APPLE, FACEBOOK, OIDC_OAUTH: the provider's ID token (and the nonce the app gave it).
    token: IdTokenText = None
    nonce: OidcText = None

    def phone_parts(self) -> tuple[str | None, str | None]:
        if self.phone is not None:
            return self.phone.number, self.phone.country_code or self.country_code
        return self.phone_number, self.country_code


# Members of CRM.COM's register schema this server does not keep (gift passes are another
# product): refused rather than silently dropped.
UNSUPPORTED_REGISTER_MEMBERS = ("pass_code", "pass_pin", "pass_pin ")


class RegisterIn(_In):
    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in UNSUPPORTED_REGISTER_MEMBERS:
                value = data.get(name)
                if value is not None and value != "":
                    member = name.strip()
                    raise FieldNotSupported(
                        f"{member} is not supported by this server.",
                        details=[{"field": member, "message": FieldNotSupported.message}],
                    )
        return data

    identity: IdentityIn = Field(validation_alias=AliasChoices("identity", "identification"))
    contact_type: Literal["PERSON", "COMPANY"] = Field(
        "PERSON", validation_alias=AliasChoices("contact_type", "type")
    )
    title: Short = None
    first_name: Name = None
    middle_name: Name = None
    last_name: Name = None
    company_name: Name = None
    language_code: Language = None
    country_of_agreement: Country = None
    custom_fields: Annotated[list[CustomField], Field(max_length=50)] | None = None
    referral_code: Referral = None
    service_acceptance: StrBool | None = Field(
        None, validation_alias=AliasChoices("service_acceptance", "accept_terms_&_conditions")
    )
    email_opt_out: StrBool | None = None
    sms_opt_out: StrBool | None = None

    def contact_fields(self) -> ContactFields:
        """The new contact's fields, those without a value left out; the flow checks the
        country and adds the identity's email."""
        custom = self.custom_fields
        return ContactFields(
            title=unset_if_none(self.title),
            first_name=unset_if_none(self.first_name),
            middle_name=unset_if_none(self.middle_name),
            last_name=unset_if_none(self.last_name),
            company_name=unset_if_none(self.company_name),
            language_code=unset_if_none(self.language_code),
            country_of_agreement=unset_if_none(self.country_of_agreement),
            custom_fields=UNSET if custom is None else _custom_values(custom),
            referral_code=unset_if_none(self.referral_code),
            service_acceptance=unset_if_none(self.service_acceptance),
            email_opt_out=unset_if_none(self.email_opt_out),
            sms_opt_out=unset_if_none(self.sms_opt_out),
        )


class CredentialIn(_In):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)]
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]


Credentials = Annotated[list[CredentialIn], Field(min_length=1, max_length=5)]
Channel = (
    Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, max_length=10)] | None
)


class OtpRequestIn(_In):
    method: Channel = Field(None, validation_alias=AliasChoices("method", "send_method"))
    credentials: Credentials


class ValidateIn(_In):
    auth_otp: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)]
    credentials: Credentials | None = None
    remember_me: StrBool | None = None


class AuthenticateIn(_In):
    """CRM.COM's schema requires `token`, `phone` and `mac_address` too: empty values in the
    members that do not apply (`""`, `{number: ""}`) read as absent; `token` and `mac_address`
    themselves are ignored (no provider here uses them)."""

    provider: Channel = None
    username: EmailText = Field(None, validation_alias=AliasChoices("username", "email"))
    password: OptionalPassword = None
    phone: OptionalPhone = None
    phone_number: PhoneText = None
    country_code: Country = None
    method: Channel = Field(None, validation_alias=AliasChoices("method", "send_method"))
    # GOOGLE, APPLE, FACEBOOK, OIDC_OAUTH: an ID token (and its nonce), or a redirect sign-in's
    # one-time `code` and `state`.
    token: IdTokenText = None
    nonce: OidcText = None
    code: OidcText = None
    state: OidcText = None


class IdentityAddIn(_In):
    """v2 `{provider, email, password, phone {number, country_code}}`; v1 `{username, password}`."""

    provider: Channel = Field(None, validation_alias=AliasChoices("provider", "type"))
    email: EmailText = Field(None, validation_alias=AliasChoices("email", "email_address"))
    username: EmailText = None
    password: OptionalPassword = None
    phone: OptionalPhone = None
    phone_number: PhoneText = None
    country_code: Country = None
    # Re-authentication: needed unless the session signed in within the last few minutes.
    current_password: PasswordText = None


class IdentityCodeIn(_In):
    """The code sent to an identity the signed-in contact added."""

    code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)]


class DateOfBirth(_In):
    year: int = Field(ge=1850, le=2200)
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)


class Demographics(DemographicsExtra):
    """CRM.COM's demographics; name day, passport, id details and statutory number come from
    crm.documents, shared with the Back-Office contact."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    gender: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    date_of_birth: DateOfBirth | None = None


class ProfilePhoneIn(_In):
    """The contact's phone as CRM.COM's profile carries it: a national number and its country
    (or a number with its calling code); without a country, the application's default."""

    type: Literal["MOBILE", "LANDLINE", "FAX"] = "MOBILE"
    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    country_code: Country = None


class ProfileUpdateIn(_In):
    """Partial: an absent member is left alone, an explicit null clears it."""

    @model_validator(mode="before")
    @classmethod
    def _blank_members(cls, data: Any) -> Any:
        if isinstance(data, dict):
            phone = data.get("phone")
            if isinstance(phone, dict) and _blank_phone_to_none(phone) is None:
                data = {k: v for k, v in data.items() if k != "phone"}
        return data

    title: Short = None
    first_name: Name = None
    middle_name: Name = None
    last_name: Name = None
    company_name: Name = None
    language_code: Language = None
    country_of_agreement: Country = None
    email: EmailText = Field(None, validation_alias=AliasChoices("email", "email_address"))
    custom_fields: Annotated[list[CustomField], Field(max_length=50)] | None = None
    referral_code: Referral = None
    demographics: Demographics | None = None
    # `{number: ""}` is dropped (left as stored); null removes the phone.
    phone: ProfilePhoneIn | None = None
    company_profile: CompanyProfile | None = None
    service_acceptance: StrBool | None = Field(
        None, validation_alias=AliasChoices("service_acceptance", "accept_terms_&_conditions")
    )
    email_opt_out: StrBool | None = None
    sms_opt_out: StrBool | None = None
    # Re-authentication for a new email: unless the session signed in within a few minutes.
    current_password: PasswordText = None

    def contact_fields(self) -> ContactFields:
        """The members sent, as the service's fields; the flow checks the country and email and
        turns `phone` into the contact's phones."""
        present = self.model_fields_set

        return ContactFields(
            **members_in(self, present, (*NAME_MEMBERS, "referral_code")),
            email_address=given_in(present, "email", self.email),
            custom_fields=given_in(
                present, "custom_fields", _custom_values(self.custom_fields or [])
            ),
            **consents_in(self, present),
            **self._document_fields(),
        )

    def _document_fields(self) -> dict[str, Any]:
        """The members of `demographics` and `company_profile` sent, as the service's fields
        (crm.documents maps those the Back-Office contact shares)."""
        out: dict[str, Any] = {}
        if "demographics" in self.model_fields_set:
            demo = self.demographics
            if demo is None:
                out.update(gender=None, birth_year=None, birth_month=None, birth_day=None)
            else:
                if "gender" in demo.model_fields_set:
                    out["gender"] = demo.gender
                if "date_of_birth" in demo.model_fields_set:
                    dob = demo.date_of_birth
                    out["birth_year"] = dob.year if dob else None
                    out["birth_month"] = dob.month if dob else None
                    out["birth_day"] = dob.day if dob else None
            out.update(documents.demographics_changes(demo, only_set=True))
        if "company_profile" in self.model_fields_set:
            out.update(documents.company_changes(self.company_profile, only_set=True))
        return out


class PasswordIn(_In):
    password: Annotated[str, StringConstraints(max_length=4096)]
    # Re-authentication: needed unless the session signed in within the last few minutes.
    current_password: PasswordText = None


class ResetPasswordIn(_In):
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    password: Annotated[str, StringConstraints(max_length=4096)]


class ForgotPasswordIn(_In):
    username: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] = Field(
        validation_alias=AliasChoices("username", "email", "email_address")
    )


class EmailVerificationIn(_In):
    email_address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] = Field(
        validation_alias=AliasChoices("email_address", "email")
    )


def without_none(value: Any) -> Any:
    """Self-Service answers omit members without value (CRM.COM's schema has no nulls there)."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value
