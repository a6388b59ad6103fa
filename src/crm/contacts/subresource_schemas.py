"""What a contact's addresses, devices and a tenant's custom field definitions look like on the
wire (CRM.COM's member names, both APIs), and their mapping to the services' stored form."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from crm.clock import epoch
from crm.contacts.custom_fields import MAX_VALUE_LENGTH
from crm.contacts.models import ContactDevice, CustomFieldDefinition
from crm.contacts.schemas import CountryText, Text20, Text100, Text200, WireBool
from crm.paging import Paging
from crm.vocabulary import AddressType, CustomFieldType, DevicePlatform

# What CRM.COM's Google place ids and push registration tokens (FCM, APNs, web push) are made
# of. A token travels in a URL path (DELETE .../devices/{fcm_token}): no '/', '?', '#' or '%'.
PlaceId = Annotated[str, StringConstraints(max_length=255, pattern=r"^[A-Za-z0-9_-]+$")]
TOKEN_PATTERN = r"^[A-Za-z0-9_:.=~+-]+$"
RegistrationToken = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=TOKEN_PATTERN)
]
ShortRef = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class AddressBody(BaseModel):
    """An address as Add and Update Contact Address send it (`type`, `address_line_1` required)."""

    model_config = ConfigDict(extra="ignore")

    type: AddressType = Field(validation_alias=AliasChoices("type", "address_type"))
    name: Text100 | None = None
    is_primary: WireBool | None = None
    address_line_1: Text200
    address_line_2: Text200 | None = None
    state_province_county: Text100 | None = None
    town_city: Text100 | None = None
    postal_code: Text20 | None = None
    country_code: CountryText | None = None
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    google_place_id: PlaceId | None = None
    is_billing_address: WireBool | None = None

    @field_validator("address_line_1", mode="after")
    @classmethod
    def _line_1_required(cls, value: str | None) -> str:
        if not value:
            raise ValueError("address_line_1 is required")
        return value

    def stored(self) -> dict[str, Any]:
        """The stored form (the contact record's `addresses` item)."""
        out = self.model_dump(exclude={"type"})
        out["address_type"] = self.type.value
        return out


# The members an address shows, in CRM.COM's order; absent ones are left out, not null.
_ADDRESS_MEMBERS = (
    "name",
    "is_primary",
    "address_line_1",
    "address_line_2",
    "state_province_county",
    "town_city",
    "postal_code",
    "country_code",
    "lat",
    "lon",
    "google_place_id",
    "is_billing_address",
)


def address_out(stored: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": stored.get("id"), "type": stored.get("address_type") or "HOME"}
    for name in _ADDRESS_MEMBERS:
        value = stored.get(name)
        if value is not None:
            out[name] = value
    out["is_primary"] = bool(stored.get("is_primary"))
    return out


def one_page(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole list in CRM.COM's paging envelope (the lists are capped, so one page holds all)."""
    paging = Paging(page=1, size=len(items), total=len(items), has_more=False)
    return {"paging": paging.model_dump(), "content": items}


class DeviceBody(BaseModel):
    """Register Device: the registration token is what a push system needs, so it is required."""

    model_config = ConfigDict(extra="ignore")

    registration_token: RegistrationToken
    platform: DevicePlatform | None = None
    mac_address: (
        Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9A-Fa-f:.-]*$")] | None
    ) = None
    serial_number: Text100 | None = None
    electronic_id: Text100 | None = None
    application_id: ShortRef | None = None

    def details(self) -> dict[str, Any]:
        out = self.model_dump(exclude={"registration_token"})
        out["platform"] = self.platform.value if self.platform else None
        return out


def device_out(device: ContactDevice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": device.id,
        "registration_token": device.registration_token,
        "registration_date": epoch(device.registered_at) or 0,
    }
    for name in ("platform", "mac_address", "serial_number", "electronic_id"):
        value = getattr(device, name)
        if value is not None:
            out[name] = value
    return out


AllowedValue = Annotated[str, StringConstraints(min_length=1, max_length=MAX_VALUE_LENGTH)]


class CustomFieldDefinitionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: CustomFieldType = CustomFieldType.STRING
    max_length: Annotated[int, Field(ge=1, le=MAX_VALUE_LENGTH)] = 255
    allowed_values: Annotated[list[AllowedValue], Field(max_length=50)] = []
    description: Text200 | None = None

    @field_validator("allowed_values")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("allowed values must be unique")
        return value


class CustomFieldDefinitionOut(BaseModel):
    key: str
    type: str
    max_length: int
    allowed_values: list[str]
    description: str | None = None
    created_date: int
    updated_date: int


def definition_out(row: CustomFieldDefinition) -> CustomFieldDefinitionOut:
    return CustomFieldDefinitionOut(
        key=row.key,
        type=row.value_type,
        max_length=row.max_length,
        allowed_values=list(row.allowed_values or []),
        description=row.description,
        created_date=epoch(row.created_at) or 0,
        updated_date=epoch(row.updated_at) or 0,
    )
