"""Tables of contacts, their phones, consent history and audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm.db import Base, PortableJSON, UTCDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SurrogateKey = BigInteger().with_variant(Integer(), "sqlite")


# What a search branch reads besides its own column: the default sort key with its tie-break,
# the row key and the erasure mark. With them in the index, each branch finds its top rows by an
# index-only scan (on a vacuumed table) and only the page itself is read from the table.
_SEARCH_COVERING = ["created_at", "id", "pk", "erased_at"]


def _prefix_index(name: str, *columns: str) -> Index:
    """A PostgreSQL pattern index on `columns` of a tenant's contacts, covering a search branch.

    Rows without the leading column cannot match a prefix and are left out (a NULL company
    name on every person, every erased contact's names); any `=` or `LIKE` on that column
    implies the predicate, so such queries can use the partial index.
    """
    return Index(
        name,
        "tenant_id",
        "mode",
        *columns,
        postgresql_ops={column: "text_pattern_ops" for column in columns},
        postgresql_include=_SEARCH_COVERING,
        postgresql_where=text(f"{columns[0]} IS NOT NULL"),
    )


def _document_index(column: str) -> Index:
    """A tenant's document number is held by one contact at most (both dialects)."""
    where = text(f"{column} IS NOT NULL")
    return Index(
        f"uq_contacts_tenant_id_mode_{column}",
        "tenant_id",
        "mode",
        column,
        unique=True,
        postgresql_where=where,
        sqlite_where=where,
    )


class Contact(Base):
    """One customer of a tenant in one mode. `id` and `code` are the tenant's own or generated.

    Erasure keeps the row as a tombstone (id, code, erased_at) so the id is never reused, and
    clears every personal field.
    """

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "id"),
        # Also serves exact `code` lookups and the CODE sort.
        UniqueConstraint("tenant_id", "mode", "code"),
        # The sorts: each ends in `id`, the tie-break that makes paging stable.
        Index("ix_contacts_tenant_mode_created", "tenant_id", "mode", "created_at", "id"),
        Index("ix_contacts_tenant_mode_updated", "tenant_id", "mode", "updated_at", "id"),
        Index("ix_contacts_tenant_mode_last_name", "tenant_id", "mode", "last_name_norm", "id"),
        # Prefix search (LIKE 'abc%') and exact match, one index per search_value branch (see
        # directory.search). PostgreSQL can use a btree for a LIKE prefix only with the pattern
        # operator class (or the C collation); SQLite ignores that and the options below.
        # "first last" matches a first-name prefix AND a last-name prefix inside one index;
        # the same index serves a first-name prefix alone.
        _prefix_index(
            "ix_contacts_tenant_mode_first_last_name", "first_name_norm", "last_name_norm"
        ),
        _prefix_index("ix_contacts_tenant_mode_last_name_prefix", "last_name_norm"),
        _prefix_index("ix_contacts_tenant_mode_company", "company_name_norm"),
        _prefix_index("ix_contacts_tenant_mode_email", "email_canonical"),
        _prefix_index("ix_contacts_tenant_mode_code_norm", "code_norm"),
        # Documents that identify one person: a code request may name them (see
        # contacts.documents). Most contacts hold none: the rows without one (NULLs never
        # collide) are left out of the index.
        _document_index("passport_number"),
        _document_index("id_number"),
        _document_index("statutory_number"),
    )

    pk: Mapped[int] = mapped_column(SurrogateKey, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(10))
    id: Mapped[str] = mapped_column(String(36))
    code: Mapped[str] = mapped_column(String(36))
    # Case-folded code: search_value matches codes case-insensitively.
    code_norm: Mapped[str | None] = mapped_column(String(36), nullable=True)
    contact_type: Mapped[str] = mapped_column(String(10), default="PERSON")
    title: Mapped[str | None] = mapped_column(String(40), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    middle_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    company_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Case- and accent-folded copies for indexed prefix search (see directory.search).
    first_name_norm: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_name_norm: Mapped[str | None] = mapped_column(String(200), nullable=True)
    company_name_norm: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email_address: Mapped[str | None] = mapped_column(String(254), nullable=True)
    email_canonical: Mapped[str | None] = mapped_column(String(254), nullable=True)
    language_code: Mapped[str | None] = mapped_column(String(10), nullable=True)
    country_of_agreement: Mapped[str | None] = mapped_column(String(3), nullable=True)
    gender: Mapped[str | None] = mapped_column(String(20), nullable=True)
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    birth_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    birth_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    addresses: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON, default=list)
    custom_fields: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON, default=list)
    tags: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    referral_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # CRM.COM's demographics beyond gender and birth date (contacts.documents). Document
    # numbers are kept in their matching form: no spaces or dashes, upper case.
    name_day_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name_day_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    passport_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    passport_country: Mapped[str | None] = mapped_column(String(3), nullable=True)
    passport_expiration: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    id_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    id_country: Mapped[str | None] = mapped_column(String(3), nullable=True)
    id_expiration: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    statutory_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A COMPANY's registration details (CRM.COM's company_profile).
    registration_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registration_country: Mapped[str | None] = mapped_column(String(3), nullable=True)
    tax_reference_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vat_registration_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    industry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sub_industries: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    # Shown with the contact; the matching copy, unique per tenant and mode, is
    # ContactLoyaltyIdentifier.
    loyalty_identifiers: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    service_acceptance: Mapped[bool] = mapped_column(Boolean, default=False)
    email_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ContactPhone(Base):
    """A phone of a contact, kept in its own table so exact-number search uses an index."""

    __tablename__ = "contact_phones"
    __table_args__ = (Index("ix_contact_phones_tenant_mode_e164", "tenant_id", "mode", "e164"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_pk: Mapped[int] = mapped_column(
        ForeignKey("contacts.pk", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    phone_type: Mapped[str] = mapped_column(String(10), default="MOBILE")
    country_code: Mapped[str | None] = mapped_column(String(3), nullable=True)
    number: Mapped[str] = mapped_column(String(40))
    e164: Mapped[str] = mapped_column(String(16))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


class ContactLoyaltyIdentifier(Base):
    """A loyalty identifier (card number, member number) of a contact: unique per tenant and
    mode, so a code request naming one finds exactly one contact."""

    __tablename__ = "contact_loyalty_identifiers"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "identifier"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_pk: Mapped[int] = mapped_column(
        ForeignKey("contacts.pk", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    identifier: Mapped[str] = mapped_column(String(64))


class ConsentEvent(Base):
    """History of consent flag changes: which flag, its new value, when and through which surface."""

    __tablename__ = "consent_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_pk: Mapped[int] = mapped_column(
        ForeignKey("contacts.pk", ondelete="CASCADE"), index=True
    )
    flag: Mapped[str] = mapped_column(String(40))
    value: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(40))  # SELF_SERVICE | BACK_OFFICE | IMPORT
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """Who changed which fields of a contact, and when (never the values of secrets)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_contact", "tenant_id", "mode", "contact_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    contact_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(80))  # api key id, contact session, or cli
    fields: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactDevice(Base):
    """A device of a contact that receives push notifications, keyed by its registration token.

    A token belongs to one app install, so it is unique per tenant and mode: when another contact
    signs in on the same install and registers it, the row moves to them, and pushes stop going
    to the contact who left.
    """

    __tablename__ = "contact_devices"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "registration_token"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_pk: Mapped[int] = mapped_column(
        ForeignKey("contacts.pk", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(10))
    registration_token: Mapped[str] = mapped_column(String(512))
    platform: Mapped[str | None] = mapped_column(String(10), nullable=True)
    mac_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    serial_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    electronic_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    application_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactPicture(Base):
    """A contact's picture: the random name it is stored and served under, never its contact id."""

    __tablename__ = "contact_pictures"

    contact_pk: Mapped[int] = mapped_column(
        ForeignKey("contacts.pk", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomFieldDefinition(Base):
    """A custom field key a tenant allows on its contacts, with the type and length of its value."""

    __tablename__ = "custom_field_definitions"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    value_type: Mapped[str] = mapped_column(String(10))
    max_length: Mapped[int] = mapped_column(Integer)
    allowed_values: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
