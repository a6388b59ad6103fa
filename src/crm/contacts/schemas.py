"""What a contact looks like on the Back-Office wire (API.md section 4), and its mapping to the service."""

from __future__ import annotations

from collections.abc import Set
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from crm import documents
from crm.clock import epoch
from crm.contacts.contact_fields import (
    NAME_MEMBERS,
    UNSET,
    ContactFields,
    CustomFieldValue,
    Phone,
    Unset,
    consents_in,
    given_in,
    members_in,
)
from crm.contacts.models import ConsentEvent, Contact, ContactPhone
from crm.paging import Paging
from crm.text import clean_text, parse_bool

MAX_PHONES = 10
MAX_ADDRESSES = 10
MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_VALUE_BYTES = 1024
MAX_TAGS = 50

WireBool = Annotated[bool, BeforeValidator(parse_bool)]
T = TypeVar("T")


# Free-text fields: NFC, trimmed, no invisible characters; an empty string means absent.
Text20 = Annotated[str, StringConstraints(max_length=20), AfterValidator(clean_text)]
Text40 = Annotated[str, StringConstraints(max_length=40), AfterValidator(clean_text)]
Text100 = Annotated[str, StringConstraints(max_length=100), AfterValidator(clean_text)]
Text200 = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_text)]
# Shape-only limits here; the service checks the value (pattern, E.164, alpha-3, syntax).
RefText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
CountryText = Annotated[str, StringConstraints(max_length=8)]
EmailText = Annotated[str, StringConstraints(max_length=320)]


class PhoneIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    phone_type: Literal["MOBILE", "LANDLINE", "FAX"] = "MOBILE"
    country_code: CountryText | None = None
    number: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    is_primary: WireBool = False

    def service_phone(self) -> Phone:
        return Phone(
            phone_type=self.phone_type,
            country_code=self.country_code,
            number=self.number,
            is_primary=self.is_primary,
        )


class AddressIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    address_type: Literal["HOME", "BUSINESS", "ALTERNATIVE"] = Field(
        "HOME", validation_alias=AliasChoices("address_type", "type")
    )
    name: Text100 | None = None
    address_line_1: Text200 | None = None
    address_line_2: Text200 | None = None
    town_city: Text100 | None = None
    state_province_county: Text100 | None = None
    postal_code: Text20 | None = None
    country_code: CountryText | None = None
    is_primary: WireBool = False
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    google_place_id: Annotated[str, StringConstraints(max_length=255)] | None = None
    is_billing_address: WireBool | None = None


class DateOfBirth(BaseModel):
    year: Annotated[int, Field(ge=1900, le=2200)]
    month: Annotated[int, Field(ge=1, le=12)]
    day: Annotated[int, Field(ge=1, le=31)]


class Demographics(documents.DemographicsExtra):
    """CRM.COM's demographics: name day, passport, id details and statutory number come from
    contacts.documents."""

    model_config = ConfigDict(extra="ignore")

    gender: Literal["FEMALE", "MALE", "OTHER"] | None = None
    date_of_birth: DateOfBirth | None = None


class CustomField(BaseModel):
    key: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    ]
    value: Annotated[str, StringConstraints(max_length=MAX_CUSTOM_VALUE_BYTES)]

    @field_validator("value")
    @classmethod
    def _value_bytes(cls, value: str) -> str:
        if len(value.encode()) > MAX_CUSTOM_VALUE_BYTES:
            raise ValueError(f"a custom field value is at most {MAX_CUSTOM_VALUE_BYTES} bytes")
        return clean_text(value) or ""


Tag = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(clean_text)]
LanguageCode = Annotated[
    str, StringConstraints(max_length=10, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
]


class _ContactFields(BaseModel):
    """Fields shared by create and update; unknown fields are ignored (CRM.COM clients send more)."""

    model_config = ConfigDict(extra="ignore")

    title: Text40 | None = None
    first_name: Text200 | None = None
    middle_name: Text200 | None = None
    last_name: Text200 | None = None
    company_name: Text200 | None = None
    email_address: EmailText | None = None
    phones: Annotated[list[PhoneIn], Field(max_length=MAX_PHONES)] | None = None
    addresses: Annotated[list[AddressIn], Field(max_length=MAX_ADDRESSES)] | None = None
    language_code: LanguageCode | None = None
    country_of_agreement: CountryText | None = None
    demographics: Demographics | None = None
    custom_fields: Annotated[list[CustomField], Field(max_length=MAX_CUSTOM_FIELDS)] | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    company_profile: documents.CompanyProfile | None = None
    loyalty_identifiers: (
        Annotated[
            list[documents.LoyaltyIdentifier],
            Field(max_length=documents.MAX_LOYALTY_IDENTIFIERS),
        ]
        | None
    ) = Field(None, description="Unique per tenant and mode; a code request may name one.")
    # Booleans may be absent but never null: consent is either given or not.
    service_acceptance: WireBool = None  # type: ignore[assignment]
    email_opt_out: WireBool = None  # type: ignore[assignment]
    sms_opt_out: WireBool = None  # type: ignore[assignment]

    @field_validator("custom_fields")
    @classmethod
    def _unique_keys(cls, value: list[CustomField] | None) -> list[CustomField] | None:
        if value is not None and len({f.key for f in value}) != len(value):
            raise ValueError("custom field keys must be unique")
        return value

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, value: list[str | None] | None) -> list[str] | None:
        if value is None:
            return None
        return list(dict.fromkeys(t for t in value if t))

    def contact_fields(self, *, only_set: bool) -> ContactFields:
        """The service's fields; `only_set` leaves absent members unset (a partial update)."""
        present = self.model_fields_set if only_set else _ALL_MEMBERS

        phones, addresses, custom = self.phones, self.addresses, self.custom_fields
        return ContactFields(
            **members_in(self, present, (*NAME_MEMBERS, "email_address", "tags")),
            phones=given_in(
                present, "phones", None if phones is None else [p.service_phone() for p in phones]
            ),
            addresses=given_in(
                present,
                "addresses",
                None if addresses is None else [a.model_dump() for a in addresses],
            ),
            custom_fields=given_in(
                present,
                "custom_fields",
                None
                if custom is None
                else [CustomFieldValue(key=f.key, value=f.value) for f in custom],
            ),
            **consents_in(self, present),
            **self._document_fields(only_set=only_set, present=present),
        )

    def _document_fields(self, *, only_set: bool, present: Set[str]) -> dict[str, Any]:
        """The members of `demographics`, `company_profile` and `loyalty_identifiers` as the
        service's fields (crm.documents maps the shared ones)."""
        out: dict[str, Any] = {}
        if "demographics" in present:
            demo = self.demographics
            demo_set = demo.model_fields_set if demo is not None and only_set else None
            if demo is None or demo_set is None or "gender" in demo_set:
                out["gender"] = None if demo is None else demo.gender
            if demo is None or demo_set is None or "date_of_birth" in demo_set:
                born = None if demo is None else demo.date_of_birth
                out["birth_year"] = born.year if born else None
                out["birth_month"] = born.month if born else None
                out["birth_day"] = born.day if born else None
            out.update(documents.demographics_changes(demo, only_set=only_set))
        if "company_profile" in present:
            out.update(documents.company_changes(self.company_profile, only_set=only_set))
        if "loyalty_identifiers" in present:
            out.update(documents.loyalty_changes(self.loyalty_identifiers))
        return out


_ALL_MEMBERS = frozenset(_ContactFields.model_fields)


class ContactCreate(_ContactFields):
    id: RefText | None = Field(None, description="Your own id: 1-36 of A-Z a-z 0-9 - _.")
    code: RefText | None = Field(
        None, description="Cross-reference code: 1-36 of A-Z a-z 0-9 - _ . :"
    )
    contact_type: Literal["PERSON", "COMPANY"] = "PERSON"


class ContactUpdate(_ContactFields):
    # Accepted only with their current values, so a client may send back what it read.
    code: RefText | None = None
    contact_type: Literal["PERSON", "COMPANY"] | None = None

    def echoed(self, name: Literal["code", "contact_type"]) -> str | Unset | None:
        """`code` or `contact_type` as sent (the service refuses a change), UNSET when absent."""
        value: str | None = getattr(self, name)
        return value if name in self.model_fields_set else UNSET


class CreatedId(BaseModel):
    id: str


class PhoneOut(BaseModel):
    id: str
    phone_type: str
    country_code: str | None
    number: str = Field(description="E.164, for example +35799123456.")
    is_primary: bool


class AddressOut(BaseModel):
    id: str | None = None
    address_type: str | None = None
    address_line_1: str | None = None
    address_line_2: str | None = None
    town_city: str | None = None
    state_province_county: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    is_primary: bool = False
    name: str | None = None
    lat: float | None = None
    lon: float | None = None
    google_place_id: str | None = None
    is_billing_address: bool | None = None


class DocumentOut(BaseModel):
    number: str
    issuing_country_code: str | None = None
    expiration_date: int | None = Field(None, description="Epoch seconds.")


class DemographicsOut(BaseModel):
    gender: str | None = None
    date_of_birth: DateOfBirth | None = None
    name_day: documents.NameDay | None = None
    passport: DocumentOut | None = None
    id_details: DocumentOut | None = None
    statutory_number: str | None = None


class IndustryOut(BaseModel):
    id: str


class CompanyProfileOut(BaseModel):
    registration_number: str | None = None
    registration_country: str | None = None
    tax_reference_number: str | None = None
    vat_registration_number: str | None = None
    industry: IndustryOut | None = None
    sub_industries: list[IndustryOut] | None = None


class LoyaltyIdentifierOut(BaseModel):
    identifier: str


class ContactRead(BaseModel):
    id: str
    code: str
    contact_type: str
    title: str | None = None
    first_name: str | None = None
    middle_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    email_address: str | None = None
    phones: list[PhoneOut] = []
    addresses: list[AddressOut] = []
    language_code: str | None = None
    country_of_agreement: str | None = None
    demographics: DemographicsOut = DemographicsOut()
    company_profile: CompanyProfileOut | None = None
    loyalty_identifiers: list[LoyaltyIdentifierOut] = []
    custom_fields: list[CustomField] = []
    tags: list[str] = []
    service_acceptance: bool = False
    email_opt_out: bool = False
    sms_opt_out: bool = False
    avatar_url: str | None = None
    created_date: int = Field(description="Epoch seconds.")
    updated_date: int = Field(description="Epoch seconds.")


def contact_read(contact: Contact, phones: list[ContactPhone]) -> ContactRead:
    born = None
    if contact.birth_year and contact.birth_month and contact.birth_day:
        born = DateOfBirth(
            year=contact.birth_year, month=contact.birth_month, day=contact.birth_day
        )
    held = {name: getattr(contact, name) for name in documents.DOCUMENT_FIELDS}
    return ContactRead(
        id=contact.id,
        code=contact.code,
        contact_type=contact.contact_type,
        title=contact.title,
        first_name=contact.first_name,
        middle_name=contact.middle_name,
        last_name=contact.last_name,
        company_name=contact.company_name,
        email_address=contact.email_address,
        phones=[
            PhoneOut(
                id=p.id,
                phone_type=p.phone_type,
                country_code=p.country_code,
                number=p.e164,
                is_primary=p.is_primary,
            )
            for p in phones
        ],
        addresses=[AddressOut.model_validate(a) for a in contact.addresses or []],
        language_code=contact.language_code,
        country_of_agreement=contact.country_of_agreement,
        demographics=DemographicsOut.model_validate(
            {"gender": contact.gender, "date_of_birth": born, **documents.demographics_out(held)}
        ),
        company_profile=documents.company_profile_out(held),
        loyalty_identifiers=documents.loyalty_out(held) or [],
        custom_fields=[
            CustomField.model_construct(key=f["key"], value=f["value"])
            for f in contact.custom_fields or []
        ],
        tags=list(contact.tags or []),
        service_acceptance=contact.service_acceptance,
        email_opt_out=contact.email_opt_out,
        sms_opt_out=contact.sms_opt_out,
        created_date=epoch(contact.created_at) or 0,
        updated_date=epoch(contact.updated_at) or 0,
    )


class ContactFound(ContactRead):
    """A search result: the contact, and whether its profile email is proven."""

    email_verified: bool | None = Field(
        None,
        description="Whether `email_address` is a proven sign-in identity of this contact (its "
        "owner entered a code or followed a link sent to it, or the business created it as "
        "verified). `false`: nobody has proven the address, whoever typed it. `null`: no email. "
        "A search by email lists contacts holding it as a proven identity first.",
    )


class ContactPage(BaseModel):
    paging: Paging
    content: list[ContactFound]


class AuditEntry(BaseModel):
    id: str
    action: str
    actor: str
    fields: list[str]
    created_date: int


class AuditPageOut(BaseModel):
    paging: Paging
    content: list[AuditEntry]


class ConsentEntry(BaseModel):
    flag: str
    value: bool
    source: str
    changed_date: int


def consent_entry(event: ConsentEvent) -> ConsentEntry:
    return ConsentEntry(
        flag=event.flag,
        value=event.value,
        source=event.source,
        changed_date=epoch(event.changed_at) or 0,
    )


class ContactExists(BaseModel):
    contact_exists: bool


class PhoneCredential(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    country_code: CountryText | None = None


class IdentityCreate(BaseModel):
    """Add credentials (seed, Back-Office step 2): `{"provider": "EMAIL", "email", "password"?}`,
    `{"provider": "PHONE", "phone": {"number", "country_code"}}`, or v1 `{"username", "password"}`."""

    model_config = ConfigDict(extra="ignore")

    provider: Annotated[str, StringConstraints(max_length=20)] | None = None
    email: EmailText | None = Field(None, validation_alias=AliasChoices("email", "email_address"))
    username: EmailText | None = None
    # The password policy (length, common passwords) is the identities service's.
    password: Annotated[str, StringConstraints(max_length=4096)] | None = None
    phone: PhoneCredential | None = None
    phone_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    country_code: CountryText | None = None
    verified: WireBool = False

    def resolved(self) -> dict[str, Any]:
        """The identities service's arguments, with the v1 spellings folded in."""
        email = self.email or self.username
        number = self.phone.number if self.phone else self.phone_number
        country = (self.phone.country_code if self.phone else None) or self.country_code
        provider = self.provider or ("PHONE" if number and not email else "EMAIL")
        return {
            "provider": provider.strip().upper(),
            "email": email,
            "phone": number,
            "country_code": country,
            "password": self.password,
            "verified": self.verified,
        }
